"""Importing Joey NMT recurrent models: against Joey's own outputs (tests/data/joey, made by
``train/joey_fixture.py`` with joeynmt 2.3.0), and every way an import can go wrong."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from s2s_demo.__main__ import main as cli
from s2s_demo.decoding import search
from s2s_demo.joey import JoeyImportError, import_joey
from s2s_demo.settings import DecodeSettings
from s2s_demo.translator import load

FIXTURES = Path(__file__).parent / "data" / "joey"
MODELS = ("lstm-bahdanau", "gru-luong")


@pytest.fixture(scope="module", params=MODELS)
def imported(request, tmp_path_factory):
    source = FIXTURES / request.param
    folder = import_joey(source / "model.ckpt", source / "config.yaml", tmp_path_factory.mktemp("joey") / "m")
    return load(folder), json.loads((source / "outputs.json").read_text(encoding="utf-8"))


def _settings(joey: dict, **kw) -> DecodeSettings:
    # Joey: at most max_output_length tokens, EOS banned at the first step; here the cap counts
    # the EOS, so one more; the length ratio is set high enough never to bind first
    return DecodeSettings(max_length=joey["max_output_length"] + 1, max_length_ratio=10.0, min_length=1, **kw)


def _best(translator, sentence: str, settings: DecodeSettings):
    return search(translator.engine, [translator.source_ids(sentence)], settings)[0].hypotheses[0]


def _pieces(translator, tokens: list[int], joey_pieces: list[str]) -> list[str]:
    """Our pieces, EOS included as Joey lists it; at the length cap Joey's output has no EOS
    where ours has the one the cap forces."""
    pieces = translator.tokenizer.target_pieces(tokens)
    return pieces if joey_pieces[-1:] == ["</s>"] else pieces[:-1]


def test_greedy_outputs_and_log_probs_match_joey(imported):
    translator, joey = imported
    settings = _settings(joey, method="greedy")
    for sentence, expected in zip(joey["sentences"], joey["greedy"], strict=True):
        best = _best(translator, sentence, settings)
        assert _pieces(translator, best.tokens, expected["pieces"]) == expected["pieces"], sentence
        n = len(expected["log_probs"])
        assert max(abs(a - b) for a, b in zip(best.token_logprobs[:n], expected["log_probs"])) < 1e-4
        assert translator.translate_batch([sentence], settings)[0] == expected["text"]


def test_beam_outputs_match_joey(imported):
    """Every output Joey ended with EOS is ours too, with its score. Outputs that ran into the
    length cap differ by definition: Joey scores the unfinished hypotheses as they stand at the
    cap, this project ends each with the EOS the cap forces (its log-prob counted), so there
    only the length is compared."""
    translator, joey = imported
    settings = _settings(joey, method="beam", beam_size=joey["beam_size"], length_penalty=joey["beam_alpha"])
    ended = 0
    for sentence, expected in zip(joey["sentences"], joey["beam"], strict=True):
        best = _best(translator, sentence, settings)
        if expected["pieces"][-1] != "</s>":
            assert len(best.tokens) == joey["max_output_length"] + 1, sentence
            continue
        ended += 1
        assert _pieces(translator, best.tokens, expected["pieces"]) == expected["pieces"], sentence
        assert best.score == pytest.approx(expected["score"], abs=1e-4)
    assert ended >= 15


def test_an_imported_model_feeds_every_view(imported):
    translator, joey = imported
    sentence = joey["sentences"][0]
    trace = translator.translate(sentence, _settings(joey, method="beam", beam_size=3), internals=True)
    steps = len(trace.steps)
    assert steps > 0 and all(len(step.attention) == len(trace.source_pieces) for step in trace.steps)
    decoder = trace.internals["decoder"][0]
    assert len(decoder["forget_gate"]) == steps and len(decoder["cell"][0]) == translator.model.config.dec_hidden_size
    assert len(trace.beam_nodes) > steps  # the beam tree
    explained = translator.attribute(sentence, trace.hypotheses[0].token_ids, steps=4)
    assert len(explained["integrated_gradients"]) == steps
    assert explained["completeness"]["max_relative_gap"] < 0.5


def test_the_cli_imports_and_the_folder_loads_like_any_other(tmp_path, capsys):
    source = FIXTURES / "lstm-bahdanau"
    assert cli(["import-joey", str(source / "model.ckpt"), str(source / "config.yaml"), "--out", str(tmp_path / "m")]) == 0
    assert "de→en" in capsys.readouterr().out
    card = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert "bahdanau attention (here: additive)" in card and "input feeding on" in card
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert (config["encoder_rnn"], config["bridge"], config["combine_bias"]) == ("lstm", "last_hidden", True)


# ------------------------------------------------------------------ bad input
def _copy(tmp_path: Path, name: str = "lstm-bahdanau") -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _edit_config(folder: Path, change) -> Path:
    cfg = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    change(cfg)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return folder / "config.yaml"


@pytest.mark.parametrize("change,message", [
    (lambda c: c["model"]["encoder"].update(type="transformer"), "Transformer model"),
    (lambda c: c["model"]["decoder"].update(rnn_type="gru"), "only LSTM decoders"),
    (lambda c: c["model"]["encoder"].update(bidirectional=False), "unidirectional"),
    (lambda c: c["model"]["decoder"].update(init_hidden="last"), "init_hidden 'last'"),
    (lambda c: c["data"]["src"].update(tokenizer_type="subword-nmt"), "only sentencepiece"),
    (lambda c: c["data"]["trg"].update(lowercase=True), "lowercase"),
    (lambda c: c["model"]["decoder"].update(hidden_size=32), "shapes disagree with its config"),
])
def test_a_config_that_cannot_map_is_named(tmp_path, change, message):
    folder = _copy(tmp_path)
    with pytest.raises(JoeyImportError, match=message):
        import_joey(folder / "model.ckpt", _edit_config(folder, change), tmp_path / "out")


def test_a_vocabulary_that_disagrees_with_sentencepiece_is_named(tmp_path):
    folder = _copy(tmp_path)
    vocab = (folder / "trg_vocab.txt").read_text(encoding="utf-8").splitlines()
    (folder / "trg_vocab.txt").write_text("\n".join(vocab[:-3]) + "\n", encoding="utf-8")
    with pytest.raises(JoeyImportError, match="trg vocabulary size mismatch: Joey's vocabulary has"):
        import_joey(folder / "model.ckpt", folder / "config.yaml", tmp_path / "out")


def test_a_shuffled_vocabulary_is_permuted_into_place(tmp_path):
    folder = _copy(tmp_path)
    joey = json.loads((folder / "outputs.json").read_text(encoding="utf-8"))
    vocab = (folder / "trg_vocab.txt").read_text(encoding="utf-8").splitlines()
    order = [0, 1, 2, 3] + list(range(len(vocab) - 1, 3, -1))  # Joey keeps its specials first
    (folder / "trg_vocab.txt").write_text("\n".join(vocab[i] for i in order) + "\n", encoding="utf-8")
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    state = ckpt["model_state"]
    for name in ("trg_embed.lut.weight", "decoder.output_layer.weight"):
        state[name] = state[name][order]
    torch.save(ckpt, folder / "model.ckpt")
    shuffled = load(import_joey(folder / "model.ckpt", folder / "config.yaml", tmp_path / "out"))
    settings = _settings(joey, method="greedy")
    assert shuffled.translate_batch(joey["sentences"][:5], settings) == [g["text"] for g in joey["greedy"][:5]]


def test_checkpoint_problems_are_named(tmp_path):
    folder = _copy(tmp_path)
    data = (folder / "model.ckpt").read_bytes()
    (folder / "model.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(JoeyImportError, match="not a readable Joey NMT checkpoint"):
        import_joey(folder / "model.ckpt", folder / "config.yaml", tmp_path / "out")
    ckpt = {"model_state": torch.load(FIXTURES / "lstm-bahdanau" / "model.ckpt", weights_only=True)["model_state"]}
    ckpt["model_state"]["decoder.extra_layer.weight"] = torch.zeros(2, 2)
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(JoeyImportError, match="no place for: decoder.extra_layer.weight"):
        import_joey(folder / "model.ckpt", folder / "config.yaml", tmp_path / "out")
    del ckpt["model_state"]["decoder.extra_layer.weight"], ckpt["model_state"]["decoder.bridge_layer.bias"]
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(JoeyImportError, match="no parameter 'decoder.bridge_layer.bias'"):
        import_joey(folder / "model.ckpt", folder / "config.yaml", tmp_path / "out")


def test_the_cli_reports_a_bad_import_in_one_line(tmp_path, capsys):
    source = FIXTURES / "lstm-bahdanau"
    assert cli(["import-joey", str(tmp_path / "missing.ckpt"), str(source / "config.yaml"), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: checkpoint")
