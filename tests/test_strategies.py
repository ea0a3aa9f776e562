"""Decoding strategies side by side (s2s_demo.strategies and /strategies)."""

import pytest

from s2s_demo.model_folder import save_folder
from s2s_demo.settings import DecodeSettings, SettingsError
from s2s_demo.strategies import MAX_SAMPLES, STRATEGIES, compare_strategies, mbr_pick
from s2s_demo.translator import InputError, load
from s2s_demo.ui.registry import ModelRegistry
from s2s_demo.ui.request import Request, RequestError, strategies_request

from .conftest import corpus_pairs, make_model


@pytest.fixture(scope="module")
def translator(tmp_path_factory, toy_tokenizer, toy_tokenizer_dir):
    folder = tmp_path_factory.mktemp("m") / "toy"
    save_folder(make_model(toy_tokenizer, seed=3), toy_tokenizer_dir, folder)
    return load(folder)


def test_every_strategy_returns_a_row_with_its_figures(translator, toy_sentences):
    settings = DecodeSettings(beam_size=3, length_penalty=1.0)
    result = compare_strategies(translator, toy_sentences[0], settings, samples=5, seed=4)
    assert [r["strategy"] for r in result["rows"]] == list(STRATEGIES)
    greedy = translator.translate(toy_sentences[0], DecodeSettings(method="greedy"))
    assert result["rows"][0]["translation"] == greedy.translation
    assert result["rows"][1]["translation"] == translator.translate(toy_sentences[0], settings).translation
    for row in result["rows"]:
        assert row["logprob"] <= 0 and row["score"] == pytest.approx(
            row["logprob"] / ((5 + row["tokens"]) / 6) ** 1.0)
        assert row["chrf"] is None and row["bleu"] is None
    for row in result["rows"][2:]:
        assert len(row["candidates"]) == 5 and row["translation"] == row["candidates"][0] or row["strategy"] == "mbr"
    mbr = result["rows"][-1]
    assert mbr["translation"] == mbr["candidates"][mbr_pick(mbr["candidates"])]
    again = compare_strategies(translator, toy_sentences[0], settings, samples=5, seed=4)
    assert [r["translation"] for r in again["rows"]] == [r["translation"] for r in result["rows"]]


def test_mbr_picks_the_consensus():
    assert mbr_pick(["the dog runs", "a cat sat", "qqq zzz", "a cat sat"]) in (1, 3)
    assert mbr_pick(["only one"]) == 0


def test_a_reference_scores_every_row_and_a_bad_one_is_explained(translator, toy_corpus):
    sources, targets = corpus_pairs(toy_corpus, "train")
    scored = compare_strategies(translator, sources[1], samples=2, reference=targets[1], seed=0)
    assert scored["reference_note"] is None
    assert all(0 <= r["chrf"] <= 100 and r["bleu"] is not None for r in scored["rows"])
    for bad, words in (("", "empty"), ("x" * 1001, "1,001 characters"), (sources[1], "reads as de, the source")):
        result = compare_strategies(translator, sources[1], samples=2, reference=bad, seed=0)
        assert words in result["reference_note"] and len(result["rows"]) == len(STRATEGIES)
        assert all(r["chrf"] is None for r in result["rows"])


def test_samples_are_capped_and_bad_text_refused(translator, toy_sentences):
    with pytest.raises(SettingsError, match=f"at most {MAX_SAMPLES} samples"):
        compare_strategies(translator, toy_sentences[0], samples=MAX_SAMPLES + 1)
    with pytest.raises(InputError):
        compare_strategies(translator, "   ")
    registry = ModelRegistry([translator])
    with pytest.raises(RequestError, match="samples"):
        strategies_request(registry, Request(toy_sentences[0], None), 0, None)
    result = strategies_request(registry, Request(toy_sentences[0], None, beam_size=2, seed=9), 3, None)
    assert result["seed"] == 9 and result["model"] == registry.default
