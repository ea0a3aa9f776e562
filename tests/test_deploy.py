"""The deploy dry run: the folders that would be uploaded, and the Space loading every model by
repo id at its pinned revision from a loopback Hub (olah), as it would on Spaces."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

from s2s_demo import deploy
from s2s_demo.model_folder import read_front_matter

from .conftest import ROOT, _free_port
from .hub_server import HubServer, commit_folder

MODELS = sorted(p.name for p in (ROOT / "assets" / "models").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy")
    revisions = deploy.deploy("s2s-demo", out)
    return out, revisions


def test_dry_run_stages_every_model_and_a_space_the_hub_accepts(staged):
    out, revisions = staged
    assert sorted(p.name for p in (out / "models").iterdir()) == MODELS
    assert list(revisions) == [deploy.model_repo_id("s2s-demo", name) for name in MODELS]
    for name in MODELS:
        folder = out / "models" / name
        assert {"config.json", "model.safetensors", "source.model", "target.model", "README.md",
                "neighbours.safetensors", "neighbours.json.gz", ".gitattributes"} <= {p.name for p in folder.iterdir()}
        assert (folder / "model.safetensors").stat().st_size > deploy.MAX_PLAIN_FILE  # so LFS matters
        assert deploy.oversized_plain_files(folder) == []
        card, _ = read_front_matter(folder / "README.md")
        assert card["license"] == deploy.WEIGHTS_LICENSE
    space = out / "space"
    assert deploy.oversized_plain_files(space) == []
    assert not (space / "assets" / "models").exists()  # the weights live in the model repos
    meta, body = read_front_matter(space / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["license"] == "cc-by-nc-4.0" and meta["models"] == list(revisions)
    assert body.startswith("# s2s-demo")
    assert (space / "models.txt").read_text().split() == [f"{r}@main" for r in revisions]
    assert (space / "requirements.txt").read_text().startswith(f"--extra-index-url {deploy.TORCH_CPU_INDEX}\n")


def test_oversized_files_outside_lfs_are_found(tmp_path):
    (tmp_path / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (tmp_path / "big.bin").write_bytes(b"\0" * (deploy.MAX_PLAIN_FILE + 1))
    (tmp_path / "big.safetensors").write_bytes(b"\0" * (deploy.MAX_PLAIN_FILE + 1))
    assert deploy.oversized_plain_files(tmp_path) == ["big.bin"]


def test_the_space_loads_every_model_by_repo_id_from_the_hub(staged, tmp_path):
    out, revisions = staged
    port = _free_port()
    server = HubServer(tmp_path / "hub", port)
    pinned = {repo: commit_folder(server.repo_path(repo), out / "models" / repo.split("s2s-demo-", 1)[1], "upload")
              for repo in revisions}
    space = deploy.stage_space(tmp_path / "space", pinned)
    server.start()
    try:
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "cache"),
               "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("S2S_MODELS", None)
        code = ("import app\n"
                "for name, t in app.registry.translators.items():\n"
                "    assert t.neighbours is not None, name  # the index came down with the model\n"
                "    print(name, t.ref, t.revision, t.translate('A man rides a bike.' if t.model.config.src_lang == 'en'"
                " else 'Ein Mann fährt Fahrrad.').translation, sep='\\t')\n"
                "print('errors', app.registry.errors)\n")
        done = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "errors {}"
    rows = [line.split("\t") for line in lines[:-1]]
    assert sorted(row[0] for row in rows) == MODELS
    assert {(row[1], row[2]) for row in rows} == set(pinned.items())
    assert all(row[3] for row in rows)  # each translated


class _RecordingHub:
    """Stands in for huggingface_hub.HfApi's two calls (no Hub on loopback takes uploads)."""

    calls: list = []

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, repo_type="model", **kwargs):
        self.calls.append(("create", repo_id, repo_type, kwargs.get("space_sdk")))

    def upload_folder(self, folder_path, repo_id, repo_type="model", allow_patterns=None, **kwargs):
        self.calls.append(("upload", repo_id, repo_type, allow_patterns,
                           (Path(folder_path) / "models.txt").read_text() if repo_type == "space" else None))
        return type("CommitInfo", (), {"oid": f"sha-of-{repo_id.split('/')[1]}"})()


def _two_model_folders(tmp_path):
    models = tmp_path / "models"
    for name in MODELS[:2]:
        deploy.stage_model(ROOT / "assets" / "models" / name, models / name)
        (models / name / ".gitattributes").unlink()
    return models


def test_push_pins_the_space_at_the_uploaded_revisions(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingHub)
    _RecordingHub.calls = []
    revisions = deploy.deploy("org", tmp_path / "out", push=True, models_dir=_two_model_folders(tmp_path))
    assert revisions == {f"org/s2s-demo-{n}": f"sha-of-s2s-demo-{n}" for n in MODELS[:2]}
    uploads = [c for c in _RecordingHub.calls if c[0] == "upload"]
    assert [c[1] for c in uploads] == [*revisions, "org/s2s-demo"]  # the models first, then the Space
    assert all(".gitattributes" in c[3] for c in uploads[:-1]) and uploads[-1][3] is None
    assert uploads[-1][4].split() == [f"{r}@{v}" for r, v in revisions.items()]
    assert ("create", "org/s2s-demo", "space", "gradio") in _RecordingHub.calls


def test_nothing_is_uploaded_when_a_folder_would_be_refused(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingHub)
    _RecordingHub.calls = []
    models = _two_model_folders(tmp_path)
    (models / MODELS[1] / "big.json").write_bytes(b"0" * (deploy.MAX_PLAIN_FILE + 1))  # no LFS rule for .json
    with pytest.raises(RuntimeError, match="files over 10 MB outside LFS"):
        deploy.deploy("org", tmp_path / "out", push=True, models_dir=models)
    assert _RecordingHub.calls == []
