"""The calibration report's figures and the model temperature they lead to."""

import json
import math

import pytest
import torch

from s2s_demo.translator import load
from s2s_demo.model_folder import ModelLoadError, save_folder
from s2s_demo.config import ConfigError, ModelConfig
from s2s_demo.inference import InferenceEngine
from train import calibration

from .conftest import MULTI30K, make_model
from .test_model import _batch, _decode_log_probs


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    confidence = torch.full((100,), 0.7)
    correct = torch.arange(100) < 70
    assert calibration.expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-6)
    assert calibration.expected_calibration_error(confidence, torch.ones(100, dtype=torch.bool)) == pytest.approx(0.3)
    # two bins of ten: confidence 0.25 at accuracy 0.3, 0.85 at accuracy 0.7; ECE is the weighted mean gap
    confidence = torch.tensor([0.25] * 10 + [0.85] * 10)
    correct = torch.tensor([True] * 3 + [False] * 7 + [True] * 7 + [False] * 3)
    assert calibration.expected_calibration_error(confidence, correct) == pytest.approx((0.05 + 0.15) / 2)


def test_distribution_figures_on_a_known_distribution():
    # every row: the reference token gets p = 0.5, nine others 0.05 each, nothing outside the top 10
    log_probs = torch.full((4, 20), -1e9)
    log_probs[:, 0] = math.log(0.5)
    log_probs[:, 1:10] = math.log(0.5 / 9)
    log_probs = torch.log_softmax(log_probs, -1)
    # references: the top token twice, another top-10 token, and one outside the top 10 (id 15)
    figures = calibration.distribution_figures(log_probs, torch.tensor([0, 0, 1, 15]))
    assert figures["confidence"] == pytest.approx(0.5, abs=1e-4)
    assert figures["accuracy"] == 0.5 and figures["ece"] == pytest.approx(0.0, abs=1e-4)
    assert figures["mass_outside_top10"] == pytest.approx(0.0, abs=1e-4)
    assert figures["reference_outside_top10"] == 0.25
    assert figures["positions"] == 4


def test_fit_temperature_recovers_the_temperature_that_made_the_data():
    torch.manual_seed(0)
    logits = torch.randn(4000, 30) * 3
    tokens = torch.multinomial(torch.softmax(logits / 2.0, -1), 1).squeeze(1)  # drawn at T = 2
    assert calibration.fit_temperature(torch.log_softmax(logits, -1), tokens) == pytest.approx(2.0, rel=0.08)


def test_the_model_temperature_is_one_distribution_everywhere(toy_tokenizer, toy_sentences, tmp_path, toy_tokenizer_dir):
    model = make_model(toy_tokenizer, temperature=0.5)
    plain = make_model(toy_tokenizer)
    src, lengths = _batch(toy_tokenizer, toy_sentences[:2])
    tgt_in = torch.tensor([[2, 7, 8], [2, 9, 8]])
    expected = torch.log_softmax(plain(src, lengths, tgt_in) / 0.5, -1)
    torch.testing.assert_close(torch.log_softmax(model(src, lengths, tgt_in), -1), expected)  # training
    torch.testing.assert_close(_decode_log_probs(model, src, lengths, tgt_in)[0], expected, atol=1e-5, rtol=1e-5)
    engine_lp, _ = _decode_log_probs(InferenceEngine(model), src, lengths, tgt_in)  # page, API, CLI
    torch.testing.assert_close(engine_lp, expected, atol=1e-5, rtol=1e-5)
    folder = save_folder(model, toy_tokenizer_dir, tmp_path / "m")
    assert load(folder).model.config.temperature == 0.5  # stored in config.json
    with pytest.raises(ConfigError, match="temperature"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=10, temperature=0)


def test_report_and_fit_run_through_the_page_path(tmp_path, toy_tokenizer, toy_tokenizer_dir, capsys):
    folder = save_folder(make_model(toy_tokenizer, seed=4, src_lang="de", tgt_lang="en"), toy_tokenizer_dir,
                             tmp_path / "toy")
    calibration.main(["--model", str(folder), "--data", str(MULTI30K), "--limit", "6", "--sample-sentences", "2",
                      "--seeds", "2", "--threads", "1", "--fit"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{folder} val (6 sentences") and "junk samples" in out[0]
    fitted = ModelConfig.load(folder / "config.json").temperature
    assert out[1].startswith(f"fitted temperature {fitted} (was 1.0)")
    assert fitted != 1.0 and f"temperature {fitted}" in out[2]


def test_record_writes_results_and_one_card_section(tmp_path, toy_tokenizer, toy_tokenizer_dir, capsys):
    card = "---\nmodel_name: toy\n---\n# toy\n\n## Results\n\nr\n\n## Model\n\nm\n"
    folder = save_folder(make_model(toy_tokenizer, seed=5), toy_tokenizer_dir, tmp_path / "toy", card)
    args = ["--model", str(folder), "--data", str(MULTI30K), "--limit", "4", "--sample-sentences", "1",
            "--seeds", "1", "--threads", "1", "--record", "--json"]
    calibration.main(args)
    calibration.main(args)  # a second report replaces the section instead of adding one
    figures = json.loads(capsys.readouterr().out.splitlines()[0])
    assert json.loads((folder / "results.json").read_text())["calibration"] == figures
    text = (folder / "README.md").read_text()
    assert text.count(calibration.CARD_SECTION) == 1
    assert text.index("## Results") < text.index(calibration.CARD_SECTION) < text.index("## Model")
    assert f"| ECE of the top-1 token (15 bins) | {figures['ece']:.4f} |" in text


CALIBRATED = {"temperature": 1.3, "floor": 0.002, "floor_keep": 0.01}


def test_a_calibration_removes_the_floor_keeps_the_order_and_every_log_prob_finite():
    from s2s_demo.calibration import Calibration

    logits = torch.tensor([[4.0, 2.0, 0.0, -3.0, -9.0]])
    fitted = Calibration(**CALIBRATED)
    q = fitted.log_probs(logits).exp()[0]
    p = torch.softmax(logits / 1.3, -1)[0]
    weights = torch.maximum(p - 0.002, 0.01 * p)  # by hand: the floor off, a token below it keeps 1%
    torch.testing.assert_close(q, weights / weights.sum())
    assert torch.equal(q.argsort(), p.argsort()) and bool((q > 0).all())
    assert Calibration.from_config(None).identity
    # a token whose probability underflows float32 keeps 1% of it, as a finite log-prob
    deep = torch.tensor([[4.0, 2.0, -200.0]])
    log_q = fitted.log_probs(deep)[0]
    log_p = torch.log_softmax(deep.double() / 1.3, -1)[0]
    kept = torch.log(torch.maximum(log_p.exp() - 0.002, 0.01 * log_p.exp()))
    expected = torch.cat([kept[:2], log_p[2:] + math.log(0.01)])
    torch.testing.assert_close(log_q.double(), expected - torch.logsumexp(kept[:2], 0), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("bad, field", [({"temperature": 1.2, "floor": 0.001}, "calibration.floor_keep is missing"),
                                        ({**CALIBRATED, "floor": -0.1}, "calibration.floor must be"),
                                        ({**CALIBRATED, "temperature": "hot"}, "calibration.temperature must be"),
                                        ("1.2", "calibration must be an object")])
def test_a_bad_calibration_in_config_json_is_named_at_load(tmp_path, toy_tokenizer, toy_tokenizer_dir, bad, field):
    folder = save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "calibration": bad}))
    with pytest.raises(ModelLoadError, match=field):
        load(folder)


def test_the_calibrated_probability_is_one_number_everywhere(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                               toy_sentences):
    """The page and the API (the trace), scoring a reference and teacher forcing give one
    probability for a token; the network's own stays in the trace as network_prob."""
    from s2s_demo.calibration import Calibration
    from s2s_demo.decoding import teacher_forced_log_probs
    from s2s_demo.settings import DecodeSettings

    model = make_model(toy_tokenizer)
    model.config.calibration = CALIBRATED
    folder = save_folder(model, toy_tokenizer_dir, tmp_path / "m")
    translator = load(folder)
    assert not translator.model.calibration.identity
    text = toy_sentences[0]
    trace = translator.translate(text, DecodeSettings(method="greedy"))
    scored = translator.score_reference(text, trace.translation or "a", DecodeSettings(method="greedy"))
    forced = teacher_forced_log_probs(translator.engine, translator.source_ids(text), scored["token_ids"]).exp()
    first = trace.steps[0]
    assert scored["token_ids"][0] == first.token_id
    assert scored["probs"][0] == pytest.approx(first.model_prob, abs=1e-5)
    assert float(forced[0, first.token_id]) == pytest.approx(first.model_prob, abs=1e-5)
    assert first.network_prob is not None and first.network_prob != pytest.approx(first.model_prob, abs=1e-4)
    # network_prob is the network's own softmax: the same model decoding without its calibration
    network = load(folder)
    network.engine.model.calibration = Calibration()
    path = [step.token_id for step in trace.steps]
    own = teacher_forced_log_probs(network.engine, translator.source_ids(text), path).exp()
    assert [step.network_prob for step in trace.steps] == pytest.approx(
        [float(own[t, step.token_id]) for t, step in enumerate(trace.steps)], abs=1e-5)
    assert trace.to_dict()["calibration"] == CALIBRATED
    plain = load(save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, tmp_path / "plain"))
    assert plain.translate(text).steps[0].network_prob is None  # no calibration: one distribution


def test_a_calibrated_model_is_attributed_through_its_calibration(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                                 toy_sentences):
    """Attribution differentiates the calibrated log-probs: the calibration's gradient is the
    by-hand formula's, and a calibrated model's attribution runs (decoding's in-place ops would
    break the backward pass)."""
    from s2s_demo.calibration import Calibration

    logits = torch.tensor([[4.0, 2.0, 0.0, -3.0, -9.0, -40.0]], requires_grad=True)
    Calibration(**CALIBRATED).log_probs(logits)[0, 1].backward()
    by_hand = logits.detach().clone().requires_grad_(True)
    p = torch.softmax(by_hand / 1.3, -1)
    torch.log(torch.maximum(p - 0.002, 0.01 * p) / torch.maximum(p - 0.002, 0.01 * p).sum())[0, 1].backward()
    torch.testing.assert_close(logits.grad, by_hand.grad)

    model = make_model(toy_tokenizer)
    model.config.calibration = CALIBRATED
    translator = load(save_folder(model, toy_tokenizer_dir, tmp_path / "m"))
    attributed = translator.attribute(toy_sentences[0])
    scores = attributed["integrated_gradients"]
    assert attributed["token_ids"] and len(scores) == len(attributed["token_ids"])
    assert all(math.isfinite(v) for row in scores for v in row)
