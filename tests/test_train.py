"""Training: overfitting a toy corpus, exact resume, multi-process (DDP) training."""

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
from unittest import mock

import pytest
import torch
import yaml

from s2s_demo.translator import load
from s2s_demo.model_folder import load_model, save_folder
from s2s_demo.config import ModelConfig
from s2s_demo.settings import DecodeSettings
from s2s_demo.tokenizer import SubwordSampling
from train.configuration import load_config
from train.data import tokenize
from train.prepare import ParallelText
from train.train import train

from .conftest import ROOT, make_model


def write_config(tmp_path, toy_corpus, out_dir, **training):
    config = {
        "data": {"corpus": "parallel", "path": str(toy_corpus), "src_lang": "de", "tgt_lang": "en",
                 "vocab_size": 120},
        "model": {"emb_size": 48, "enc_hidden_size": 64, "dec_hidden_size": 96, "dropout": 0.0,
                  "emb_dropout": 0.0, "attention": "general"},
        "training": {"lr": 0.01, "schedule": "constant", "warmup_steps": 1, "batch_tokens": 200,
                     "label_smoothing": 0.0, "max_steps": 250, "valid_every": 1000, "checkpoint_every": 50,
                     "average_checkpoints": 1, "out_dir": str(out_dir), "threads": 1, **training},
    }
    path = tmp_path / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_tiny_model_overfits_and_translates_its_training_set(tmp_path, toy_corpus):
    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "run"))
    folder = train(config)
    translator = load(folder)
    sources = (toy_corpus / "train.de").read_text(encoding="utf-8").splitlines()
    targets = (toy_corpus / "train.en").read_text(encoding="utf-8").splitlines()
    tok = translator.tokenizer
    expected = [tok.decode_target(tok.encode_target(t)) for t in targets]
    got = translator.translate_batch(sources, DecodeSettings(method="greedy"))
    assert got == expected
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("train_loss") >= 10


@pytest.mark.parametrize("subword_alpha", [0.0, 0.2])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, toy_corpus, subword_alpha):
    # with subword sampling, the epoch being resumed must get the same segmentation again
    kw = {"max_steps": 60, "checkpoint_every": 10, "subword_alpha": subword_alpha}
    straight = load_config(write_config(tmp_path, toy_corpus, tmp_path / "straight", **kw))
    straight["model"].update(dropout=0.3, emb_dropout=0.2)  # the RNG state must be restored too
    train(straight)

    broken = load_config(write_config(tmp_path, toy_corpus, tmp_path / "broken", **{**kw, "max_steps": 47}))
    broken["model"].update(dropout=0.3, emb_dropout=0.2)
    train(broken)
    ckpts = tmp_path / "broken" / "checkpoints"
    # a kill at step 47 with the step-30 checkpoint last written (its log has step 40's row)
    shutil.copy(ckpts / "step-30.pt", ckpts / "last.pt")
    broken["training"]["max_steps"] = 60
    train(broken)

    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ckpts / "last.pt", weights_only=True)
    assert a["progress"]["step"] == b["progress"]["step"] == 60
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    # the log forgets the rows of the steps that ran again (31-47)
    logged = [json.loads(line) for line in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("train_loss")) for r in logged] == [(r["step"], r.get("train_loss")) for r in expected]


def test_subword_sampling_is_seeded_varied_and_keeps_the_text(toy_corpus, toy_tokenizer):
    text = ParallelText((toy_corpus / "train.de").read_text(encoding="utf-8").splitlines(),
                        (toy_corpus / "train.en").read_text(encoding="utf-8").splitlines())
    sampling = SubwordSampling(alpha=0.2)
    best = tokenize(text, toy_tokenizer)
    first = tokenize(text, toy_tokenizer, sampling=sampling, seed=7)
    assert tokenize(text, toy_tokenizer, sampling=sampling, seed=7) == first
    other = tokenize(text, toy_tokenizer, sampling=sampling, seed=8)
    assert other != first
    assert sum(a.tgt != b.tgt for a, b in zip(first, best)) >= len(best) // 4
    assert sum(a.src != b.src for a, b in zip(first, best)) >= len(best) // 4
    for sampled, plain in zip(first, best):  # another split of the same text, EOS kept
        assert toy_tokenizer.decode_target(sampled.tgt) == toy_tokenizer.decode_target(plain.tgt)
        assert toy_tokenizer.source.decode(sampled.src[:-1]) == toy_tokenizer.source.decode(plain.src[:-1])
        assert sampled.src[-1] == toy_tokenizer.source.eos_id()


@pytest.mark.parametrize("key,value", [("subword_alpha", -0.1), ("subword_alpha", 2.0),
                                       ("subword_alpha", "high"), ("subword_nbest_size", 0),
                                       ("subword_nbest_size", 1), ("subword_nbest_size", 2.5)])
def test_bad_subword_sampling_settings_name_the_key(tmp_path, toy_corpus, key, value):
    path = write_config(tmp_path, toy_corpus, tmp_path / "run", **{key: value})
    with pytest.raises(ValueError, match=f"training.{key}"):
        load_config(path)


def test_fine_tune_starts_from_a_published_folder(tmp_path, toy_corpus):
    first = train(load_config(write_config(tmp_path, toy_corpus, tmp_path / "first", max_steps=20)))
    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "second", max_steps=1, lr=0.0,
                                      init_from=str(first)))
    second = train(config)
    # the tokenizer files are the first run's, and at lr 0 the weights are unchanged
    for name in ("source.model", "target.model"):
        assert (second / name).read_bytes() == (first / name).read_bytes()
    a, b = load_model(first), load_model(second)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_export_blends_the_fine_tune_with_its_start(tmp_path, toy_corpus):
    first = train(load_config(write_config(tmp_path, toy_corpus, tmp_path / "first", max_steps=20)))
    path = write_config(tmp_path, toy_corpus, tmp_path / "tuned", max_steps=10, init_from=str(first))
    tuned = load_model(train(load_config(path))).state_dict()
    # a finished run exports again on rerun: the same checkpoints, now blended with the start
    blended = load_model(train(load_config(path, {"training.export_init_share": 0.25}))).state_dict()
    start = load_model(first).state_dict()
    moved = 0
    for name, x in blended.items():
        torch.testing.assert_close(x, 0.25 * start[name] + 0.75 * tuned[name], rtol=0, atol=1e-7)
        moved += not torch.equal(start[name], tuned[name])
    assert moved > 0  # the fine-tune changed weights, so the blend is not the start itself


@pytest.mark.parametrize("share,init_from,message", [
    (1.0, "x", "must be a number in"), (-0.1, "x", "must be a number in"), (0.5, None, "init_from is not set")])
def test_bad_export_blend_settings_are_named(tmp_path, toy_corpus, share, init_from, message):
    path = write_config(tmp_path, toy_corpus, tmp_path / "bad", export_init_share=share, init_from=init_from)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_fine_tune_from_another_architecture_names_the_mismatch(tmp_path, toy_corpus):
    first = train(load_config(write_config(tmp_path, toy_corpus, tmp_path / "first", max_steps=2)))
    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "wide", max_steps=1, init_from=str(first)))
    config["model"]["dec_hidden_size"] = 128
    with pytest.raises(ValueError, match="does not fit"):
        train(config)


def test_wall_clock_budget_stops_training_and_exports(tmp_path, toy_corpus):
    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "budget", max_steps=10**6,
                                      max_minutes=0.002))  # 0.12 s: a few steps at most
    folder = train(config)
    step = torch.load(tmp_path / "budget" / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"]
    assert 1 <= step < 10**6
    assert load(folder).translate_batch(["ein Hund"], DecodeSettings(method="greedy"))


@pytest.mark.parametrize("device,message", [
    ("tpu", "must be cpu, cuda or auto"),
    pytest.param("cuda", "sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_unusable_training_device_is_named_before_training(tmp_path, toy_corpus, device, message):
    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "dev", device=device))
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not list((tmp_path / "dev" / "checkpoints").glob("*.pt"))


def test_validation_rows_record_the_hardware_for_the_card(tmp_path, toy_corpus):
    from train.publish import training_summary
    from train.train import read_log

    config = load_config(write_config(tmp_path, toy_corpus, tmp_path / "hw", max_steps=4, valid_every=2,
                                      device="auto"))
    train(config)
    rows = [r for r in read_log(tmp_path / "hw" / "metrics.jsonl") if "valid_bleu" in r]
    expected = "GPU" if torch.cuda.is_available() else "CPU"
    assert len(rows) == 2 and all(r["hardware"].endswith(expected) for r in rows)
    summary = training_summary(tmp_path / "hw")
    assert summary["hardware"] == rows[-1]["hardware"] and summary["torch"] == torch.__version__


@pytest.mark.timeout(600)
def test_torchrun_two_processes(tmp_path, toy_corpus):
    config = write_config(tmp_path, toy_corpus, tmp_path / "ddp", max_steps=20, checkpoint_every=10,
                          valid_every=10, valid_max_sentences=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "train.train", "--config", str(config)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model folder" in result.stdout
    translator = load(tmp_path / "ddp" / "model")
    assert isinstance(translator.translate(translator.tokenizer.source.decode([10, 11])).translation, str)
    progress = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert progress["step"] == 20
    assert "valid_bleu" in (tmp_path / "ddp" / "metrics.jsonl").read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "train" / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_name_only_known_model_fields(path):
    config = load_config(path)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(config["model"]) <= known, sorted(set(config["model"]) - known)
    assert config["data"]["src_lang"] != config["data"]["tgt_lang"]


def test_soup_is_the_weighted_mean_and_refuses_what_does_not_line_up(tmp_path, toy_tokenizer, toy_tokenizer_dir):
    from train.soup import main as soup_main

    folders = []
    for seed in (1, 2, 3):
        folders.append(save_folder(make_model(toy_tokenizer, seed=seed), toy_tokenizer_dir, tmp_path / f"m{seed}"))
    out = tmp_path / "soup"
    argv = ["soup", "--out", str(out), f"{folders[0]}=0.5", f"{folders[1]}=0.25", f"{folders[2]}=0.25"]
    with mock.patch.object(sys, "argv", argv):
        soup_main()
    states = [load_model(f).state_dict() for f in folders]
    mixed = load_model(out).state_dict()
    for key, value in mixed.items():
        torch.testing.assert_close(value, 0.5 * states[0][key] + 0.25 * states[1][key] + 0.25 * states[2][key])
    trace = load(out).translate("ein Hund")  # a usable folder: it loads and decodes to an end
    assert trace.hypotheses and trace.steps and trace.steps[-1].piece == "</s>"

    wider = save_folder(make_model(toy_tokenizer, seed=4, dec_hidden_size=48), toy_tokenizer_dir, tmp_path / "w")
    for args, message in (([f"{folders[0]}=0.5", f"{folders[1]}=0.4"], "sum to 1"),
                          ([f"{folders[0]}=0.5", f"{wider}=0.5"], "another architecture"),
                          ([f"{folders[0]}"], "FOLDER=SHARE")):
        with mock.patch.object(sys, "argv", ["soup", "--out", str(tmp_path / "bad"), *args]), \
                pytest.raises(SystemExit), mock.patch("sys.stderr", new_callable=io.StringIO) as err:
            soup_main()
        assert message in err.getvalue()


def test_ensemble_averages_its_members_probabilities(toy_tokenizer, toy_sentences):
    from s2s_demo.decoding import search, translate_ids
    from train.distill import Ensemble

    models = [make_model(toy_tokenizer, seed=seed) for seed in (1, 2)]
    src = torch.tensor([toy_tokenizer.encode_source(toy_sentences[0])])
    lengths = torch.tensor([src.size(1)])
    with torch.inference_mode():
        ensemble = Ensemble(models)
        state = ensemble.encode(src, lengths)
        prev = torch.tensor([models[0].config.bos_id])
        log_probs, _, _ = ensemble.step(prev, state)
        members = [m.step(prev, m.encode(src, lengths))[0] for m in models]
    torch.testing.assert_close(log_probs.exp(), (members[0].exp() + members[1].exp()) / 2)
    sources = [toy_tokenizer.encode_source(s) for s in toy_sentences[:4]]
    beam = DecodeSettings(method="beam", beam_size=3)
    assert translate_ids(Ensemble(models[:1]), sources, beam) == translate_ids(models[0], sources, beam)
    recorded = search(Ensemble(models), sources[:1], beam, record=True)[0]
    assert recorded.hypotheses and recorded.steps[0].attention is not None



def test_ensemble_loads_only_teachers_with_the_same_tokenizers(tmp_path, toy_tokenizer, toy_tokenizer_dir):
    from train.distill import load_ensemble

    a = save_folder(make_model(toy_tokenizer, seed=1), toy_tokenizer_dir, tmp_path / "a")
    b = save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, tmp_path / "b")
    teacher = load_ensemble([str(a), str(b)], "float32")
    assert len(teacher.engine.members) == 2
    assert teacher.translate("ein Hund").steps  # the ensemble decodes through the page's path
    other = tmp_path / "other"
    shutil.copytree(b, other)
    shutil.copy(other / "target.model", other / "source.model")  # another source vocabulary
    with pytest.raises(ValueError, match="source.model differs"):
        load_ensemble([str(a), str(other)], "float32")

def test_distilled_corpus_holds_the_original_pairs_then_the_teachers_translations(tmp_path, toy_corpus):
    from train.distill import write_corpus
    from train.prepare import read_split

    data = {"corpus": "parallel", "path": str(toy_corpus), "src_lang": "de", "tgt_lang": "en"}
    train_text = read_split(data, "train")
    distilled = [f"translation {i}" for i in range(len(train_text))]
    write_corpus(tmp_path / "kd", data, train_text, distilled, other_splits=("val", "test_2016_flickr"))
    kd = {"corpus": "multi30k", "path": str(tmp_path / "kd"), "src_lang": "de", "tgt_lang": "en"}
    written = read_split(kd, "train")
    assert written.source == train_text.source * 2
    assert written.target == train_text.target + distilled
    assert read_split(kd, "val").target == read_split(data, "val").target
    assert not (tmp_path / "kd" / "test_2016_flickr.de.gz").exists()  # the toy corpus has none
    with pytest.raises(ValueError, match="distilled lines"):
        write_corpus(tmp_path / "bad", data, train_text, distilled[:-1])


def test_publish_fits_the_temperature_and_records_calibration(tmp_path):
    """train.publish on the committed Multi30k excerpt: card, results and the calibration report."""
    from train.publish import main as publish

    config = {"data": {"corpus": "multi30k", "src_lang": "de", "tgt_lang": "en", "vocab_size": 200,
                       "train_limit": 300, "test_splits": ["test_2016_flickr"]},
              "model": {"emb_size": 16, "enc_hidden_size": 16, "dec_hidden_size": 32, "dropout": 0.0,
                        "emb_dropout": 0.0},
              "training": {"lr": 0.01, "schedule": "constant", "warmup_steps": 1, "batch_tokens": 400,
                           "label_smoothing": 0.0, "max_steps": 30, "valid_every": 30, "checkpoint_every": 15,
                           "average_checkpoints": 1, "valid_max_sentences": 20, "threads": 1,
                           "out_dir": str(tmp_path / "run"), "fit_temperature": True}}
    path = tmp_path / "excerpt.yaml"
    path.write_text(yaml.safe_dump(config))
    train(load_config(path))
    out = tmp_path / "published"
    publish(["--config", str(path), "--out", str(out)])
    temperature = ModelConfig.load(out / "config.json").temperature
    assert temperature != 1.0  # fitted on val
    results = json.loads((out / "results.json").read_text())
    assert results["calibration"]["temperature"] == temperature
    assert set(results["familiarity"]) == {"rare_score", "rare_share", "logprob"}
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and f"temperature of {temperature}" in card
