import json
import shutil

import pytest
import torch

from s2s_demo import hub
from s2s_demo.hub import fetch_checked
from s2s_demo.model_folder import ModelLoadError, save_folder
from s2s_demo.translator import load
from s2s_demo.ui.registry import MAX_VISITOR_MODELS, ModelRegistry
from s2s_demo.inference import ARITHMETICS, unsupported_reason
from s2s_demo.settings import DecodeSettings

from .conftest import HUB_PORT, make_model
from .hub_server import HubServer, commit_folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, toy_tokenizer, toy_tokenizer_dir):
    folder = tmp_path_factory.mktemp("model") / "toy-de-en"
    card = "---\nlanguage: [de, en]\nmodel_name: toy-de-en\ndescription: A toy model\n---\n# toy\n"
    save_folder(make_model(toy_tokenizer, seed=1), toy_tokenizer_dir, folder, card)
    return folder


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory, model_folder, toy_tokenizer, toy_tokenizer_dir):
    root = tmp_path_factory.mktemp("hub")
    server = HubServer(root, HUB_PORT)
    first = commit_folder(server.repo_path("s2s-demo/toy-de-en"), model_folder, "first weights")
    other = root / "other"
    save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, other)
    shutil.copy(model_folder / "README.md", other / "README.md")
    second = commit_folder(server.repo_path("s2s-demo/toy-de-en"), other, "second weights")
    # the repos visitors' loads are tested on (olah lists the repos it has when it starts)
    _commit_variant(server, root, "s2s-demo/pickled", model_folder,
                    lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"))
    _commit_variant(server, root, "s2s-demo/bad-config", model_folder, _bad_config)
    for i in range(MAX_VISITOR_MODELS):
        commit_folder(server.repo_path(f"s2s-demo/copy-{i}"), model_folder, "copy")
    server.start()
    server.commits = (first, second)
    yield server
    server.stop()


def _outputs(translator, sentences):
    settings = DecodeSettings(method="beam", beam_size=3, n_best=2)
    return [[(h.token_ids, h.logprob) for h in translator.translate(s, settings).hypotheses] for s in sentences]


def test_save_load_round_trip_is_identical(model_folder, toy_tokenizer, toy_sentences):
    original = make_model(toy_tokenizer, seed=1)
    loaded = load(model_folder)
    for name, tensor in original.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    assert loaded.model.generator.weight.data_ptr() == loaded.model.tgt_embed.weight.data_ptr()
    from s2s_demo.translator import Translator
    assert _outputs(loaded, toy_sentences[:3]) == _outputs(Translator(original, toy_tokenizer), toy_sentences[:3])
    assert loaded.name == "toy-de-en" and loaded.description == "A toy model"


def test_load_from_loopback_hub(hub_server, model_folder, toy_sentences):
    from_hub = load("s2s-demo/toy-de-en", revision=hub_server.commits[0])
    from_disk = load(model_folder)
    assert _outputs(from_hub, toy_sentences[:3]) == _outputs(from_disk, toy_sentences[:3])
    assert from_hub.folder != model_folder  # it really came through the Hub cache


def test_hub_revision_selects_weights(hub_server, toy_sentences):
    first = load("s2s-demo/toy-de-en", revision=hub_server.commits[0])
    latest = load("s2s-demo/toy-de-en")
    second = load("s2s-demo/toy-de-en", revision=hub_server.commits[1])
    assert _outputs(latest, toy_sentences[:2]) == _outputs(second, toy_sentences[:2])
    assert not torch.equal(first.model.src_embed.weight, second.model.src_embed.weight)


def test_unknown_hub_repo_is_a_clear_error(hub_server):
    with pytest.raises(ModelLoadError, match="not found"):
        load("s2s-demo/no-such-model")


def test_missing_folder_and_bad_ids(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load(tmp_path / "nothing-here")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load("not a repo id!")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load(tmp_path / "file.txt")


def _copy(model_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    return broken


def test_missing_file_is_named(model_folder, tmp_path):
    broken = _copy(model_folder, tmp_path)
    (broken / "target.model").unlink()
    with pytest.raises(ModelLoadError, match="missing target.model"):
        load(broken)


def test_corrupt_weights_are_named(model_folder, tmp_path):
    broken = _copy(model_folder, tmp_path)
    (broken / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        load(broken)


def test_truncated_weights_are_named(model_folder, tmp_path):
    broken = _copy(model_folder, tmp_path)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        load(broken)


def test_config_that_does_not_match_weights(model_folder, tmp_path):
    broken = _copy(model_folder, tmp_path)
    text = (broken / "config.json").read_text().replace('"dec_hidden_size": 32', '"dec_hidden_size": 48')
    (broken / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match="does not match config.json"):
        load(broken)
    text = text.replace('"dec_hidden_size": 48', '"dec_hidden_size": 32').replace('"attention": "general"',
                                                                                 '"attention": "none"')
    (broken / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match="does not match config.json"):
        load(broken)


def test_bad_config_json(model_folder, tmp_path):
    broken = _copy(model_folder, tmp_path)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load(broken)


def test_tokenizer_vocabulary_must_match(model_folder, tmp_path, toy_corpus):
    from s2s_demo.tokenizer import train_sentencepiece

    broken = _copy(model_folder, tmp_path)
    lines = (toy_corpus / "train.en").read_text(encoding="utf-8").splitlines()
    smaller = train_sentencepiece(lines, tmp_path / "smaller", vocab_size=60)
    shutil.copy(smaller, broken / "target.model")
    with pytest.raises(ModelLoadError, match="do not match config.json"):
        load(broken)


def test_parse_ref():
    assert hub.parse_ref("org/name@v1") == ("org/name", "v1")
    assert hub.parse_ref(" org/name ") == ("org/name", None)


def test_load_picks_the_inference_dtype(model_folder, toy_sentences):
    greedy = DecodeSettings(method="greedy")
    exact = load(model_folder)
    assert exact.engine.arithmetic == "float32"
    assert exact.translate(toy_sentences[0], greedy).arithmetic == "float32"
    for arithmetic in ARITHMETICS[1:]:
        if unsupported_reason(arithmetic):
            with pytest.raises(ModelLoadError, match=f"^{arithmetic} decoding needs"):
                load(model_folder, arithmetic=arithmetic)
            continue
        other = load(model_folder, arithmetic=arithmetic)
        assert other.translate(toy_sentences[0], greedy).to_dict()["arithmetic"] == arithmetic
    auto = load(model_folder, arithmetic="auto")
    assert auto.engine.arithmetic in ("float16", "float32")
    assert unsupported_reason(auto.engine.arithmetic) is None
    with pytest.raises(ValueError, match="arithmetic 'int4'"):
        load(model_folder, arithmetic="int4")


# ------------------------------------------------------------------ visitors' Hub models
def _commit_variant(server, root, repo: str, folder, change) -> None:
    variant = root / repo.replace("/", "-")
    shutil.copytree(folder, variant)
    change(variant)
    commit_folder(server.repo_path(repo), variant, "variant")


def _bad_config(folder) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["emb_size"] = -4
    (folder / "config.json").write_text(json.dumps(config))


def test_a_visitor_loads_a_hub_model_beside_the_shipped_ones(hub_server, model_folder, toy_sentences):
    registry = ModelRegistry([load(model_folder)])
    shipped = registry.names
    name = registry.add_from_hub(f"s2s-demo/toy-de-en@{hub_server.commits[0]}")
    assert registry.names == [*shipped, name] and registry.get(name).ref.startswith("s2s-demo/toy-de-en@")
    assert registry.add_from_hub(f"s2s-demo/toy-de-en@{hub_server.commits[0]}") == name  # loaded once
    assert _outputs(registry.get(name), toy_sentences[:2]) == _outputs(load(model_folder), toy_sentences[:2])
    for ref in ("s2s-demo/no-such-model", "../../etc/passwd", "s2s-demo/toy-de-en@no-such-revision"):
        with pytest.raises(ModelLoadError):
            registry.add_from_hub(ref)
    assert registry.names == [*shipped, name]


def test_hub_models_are_checked_before_their_weights_are_read(hub_server):
    with pytest.raises(ModelLoadError, match="has no model.safetensors: only safetensors weights load"):
        fetch_checked("s2s-demo/pickled")
    with pytest.raises(ModelLoadError, match="config.json: emb_size must be a positive integer"):
        fetch_checked("s2s-demo/bad-config")
    with pytest.raises(ModelLoadError, match="MB; the page loads models up to 0 MB"):
        fetch_checked("s2s-demo/toy-de-en", max_bytes=1000)
    with pytest.raises(ModelLoadError, match="owner/name"):
        fetch_checked("toy-de-en")


def test_one_hub_download_at_a_time(hub_server, model_folder):
    registry = ModelRegistry([load(model_folder)])
    with registry.download_lock:
        with pytest.raises(ModelLoadError, match="another model is downloading"):
            registry.add_from_hub("s2s-demo/toy-de-en")


def test_visitor_models_are_capped_and_shipped_ones_stay(hub_server, model_folder):
    registry = ModelRegistry([load(model_folder)])
    shipped = registry.names
    refs = [f"s2s-demo/toy-de-en@{c}" for c in hub_server.commits] + ["s2s-demo/toy-de-en"]
    refs += [f"s2s-demo/copy-{i}" for i in range(MAX_VISITOR_MODELS)]
    for ref in refs:
        registry.add_from_hub(ref)
    assert registry.names[: len(shipped)] == shipped
    assert len(registry.names) == len(shipped) + MAX_VISITOR_MODELS
    assert [registry.get(n).ref for n in registry.visitor_models] == refs[-MAX_VISITOR_MODELS:]
