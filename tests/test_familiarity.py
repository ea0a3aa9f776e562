"""The familiarity measure: thresholds from val, and what it flags."""

import json

from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo import familiarity
from s2s_demo.settings import DecodeSettings

from .conftest import make_model


def test_fit_thresholds_and_measure_on_the_toy_model(toy_tokenizer, toy_sentences):
    sources = [toy_tokenizer.encode_source(s) for s in toy_sentences]
    thresholds = familiarity.fit_thresholds(toy_tokenizer, sources, [-0.5 - 0.01 * i for i in range(len(sources))])
    assert thresholds.logprob == familiarity.quantile([-0.5 - 0.01 * i for i in range(len(sources))], 0.01)
    # a training sentence with a confident translation is familiar
    plain = familiarity.measure(toy_tokenizer, sources[0], [-0.1, -0.2], thresholds)
    assert plain["unfamiliar"] is False and plain["reasons"] == []
    # characters the tokenizer cannot read, and an unsure translation, are named
    unreadable = toy_tokenizer.encode_source("مرحبا كيف حالك")
    odd = familiarity.measure(toy_tokenizer, unreadable, [-4.0, -5.0], thresholds)
    assert odd["unfamiliar"] is True and odd["unknown_pieces"] > 0
    assert any("cannot read" in r for r in odd["reasons"]) and any("unsure" in r for r in odd["reasons"])
    # no log-probs (sampled or forced tokens): only the source is judged
    assert familiarity.measure(toy_tokenizer, sources[0], None, thresholds)["mean_logprob"] is None
    # without thresholds nothing is flagged, but the measures are reported
    bare = familiarity.measure(toy_tokenizer, unreadable, [-4.0], None)
    assert bare["unfamiliar"] is None and bare["unknown_pieces"] > 0


def test_translator_reads_thresholds_from_results_json(tmp_path, toy_tokenizer, toy_tokenizer_dir, toy_sentences):
    folder = save_folder(make_model(toy_tokenizer, seed=6), toy_tokenizer_dir, tmp_path / "toy")
    assert load(folder).translate(toy_sentences[0]).familiarity["unfamiliar"] is None
    strict = familiarity.Thresholds(rare_score=-1e9, rare_share=1.0, logprob=0.0)  # every translation is unsure
    (folder / "results.json").write_text(json.dumps({"familiarity": strict.to_dict()}))
    translator = load(folder)
    trace = translator.translate(toy_sentences[0], DecodeSettings(method="greedy")).to_dict()
    assert trace["familiarity"]["unfamiliar"] is True and trace["familiarity"]["thresholds"] == strict.to_dict()
    sampled = translator.translate(toy_sentences[0], DecodeSettings(method="sample", seed=1)).familiarity
    assert sampled["mean_logprob"] is None and sampled["unfamiliar"] is False
    (folder / "results.json").write_text("{not json")
    assert load(folder).familiarity is None  # a broken results.json never stops the model


def test_the_trace_names_the_characters_the_model_cannot_read(random_translator, toy_sentences):
    trace = random_translator.translate(toy_sentences[0] + " 漢字")
    assert trace.familiarity["unknown_pieces"] >= 1
    assert trace.familiarity["unknown_characters"] == ["漢", "字"]
    assert "unknown_characters" not in random_translator.translate(toy_sentences[0]).familiarity
