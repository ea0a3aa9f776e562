"""Deploy to the Hugging Face Hub: every shipped model as a model repo, the app as a Space.

    python -m s2s_demo deploy --owner your-name --out runs/deploy            # dry run: folders only
    python -m s2s_demo deploy --owner your-name --out runs/deploy --push     # upload (HF_TOKEN)

A git push of this repository to a Space is refused (its history holds model.safetensors
blobs of ~40 MB, and the Hub takes files over 10 MB only through LFS/Xet), so deployment goes
through huggingface_hub's upload API, which handles large files itself:

1. each folder under ``assets/models/`` is staged as ``<out>/models/<name>/`` (card, config,
   weights, tokenizers, results, curves, ``.gitattributes``) and uploaded to
   ``<owner>/s2s-demo-<name>``; the upload's commit id pins it;
2. the Space is staged as ``<out>/space/``: ``app.py``, ``s2s_demo/``, ``requirements.txt``,
   ``README.md`` (the landing page, whose front matter lists the model repos under ``models:``
   and carries the weights' licence), ``.gitattributes`` and ``models.txt`` (one
   ``repo@revision`` a line), from which the app loads every model by repo id.

Without ``--push`` the revisions are "main": the folders are what would be uploaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .hub import push_folder
from .model_folder import ALLOW_PATTERNS, CARD_FILE, read_front_matter, write_front_matter

ROOT = Path(__file__).resolve().parents[1]
MODELS_FILE = "models.txt"
# The Hub's usual LFS patterns (those a new repo's .gitattributes has) that these repos use.
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in (
    "*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.model", "*.h5", "*.onnx", "*.msgpack",
    "*.npy", "*.npz", "*.gz", "*.zip", "*.tar", "*.png", "*.jpg", "*.parquet", "*.arrow",
    "*tfevents*"))
MAX_PLAIN_FILE = 10 * 1024 * 1024  # the Hub refuses larger files outside LFS/Xet
WEIGHTS_LICENSE = "cc-by-nc-4.0"  # Multi30k's terms (non-commercial), so the weights' and the Space's
SPACE_FILES = ("app.py", "requirements.txt")
SPACE_PACKAGE = "s2s_demo"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def model_repo_id(owner: str, name: str) -> str:
    return f"{owner}/s2s-demo-{name}"


def stage_model(folder: Path, out: Path) -> Path:
    """Copy a model folder's Hub files (what a download fetches) and a .gitattributes to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(folder.iterdir()):
        if item.is_file() and any(item.match(pattern) for pattern in ALLOW_PATTERNS):
            shutil.copy(item, out / item.name)
    (out / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")
    return out


def stage_space(out: Path, models: dict[str, str], root: Path = ROOT) -> Path:
    """The Space folder: the app, its package, requirements, the landing page with ``models:``
    and the weights' licence, and ``models.txt`` (``models``: repo id -> revision)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in SPACE_FILES:
        shutil.copy(root / name, out / name)
    # PyPI's torch wheel for Linux is the CUDA build (GBs); the Space runs on CPU
    requirements = (out / "requirements.txt").read_text(encoding="utf-8")
    (out / "requirements.txt").write_text(f"--extra-index-url {TORCH_CPU_INDEX}\n{requirements}", encoding="utf-8")
    shutil.copytree(root / SPACE_PACKAGE, out / SPACE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "assets" / "screenshots", out / "assets" / "screenshots")
    meta, body = read_front_matter(root / CARD_FILE)
    meta.update(license=WEIGHTS_LICENSE, models=list(models))
    write_front_matter(out / CARD_FILE, meta, body)
    (out / MODELS_FILE).write_text("".join(f"{repo}@{rev}\n" for repo, rev in models.items()), encoding="utf-8")
    (out / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")
    return out


def oversized_plain_files(folder: Path) -> list[str]:
    """Files over 10 MB that no LFS pattern of the folder's .gitattributes covers (the Hub refuses them)."""
    patterns = [line.split()[0] for line in (folder / ".gitattributes").read_text().splitlines()
                if "filter=lfs" in line]
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and p.stat().st_size > MAX_PLAIN_FILE and not any(p.match(pt) for pt in patterns)]


def check_uploadable(folder: Path) -> None:
    """Refuse a staged folder the Hub would refuse, before anything is uploaded."""
    oversized = oversized_plain_files(folder)
    if oversized:
        raise RuntimeError(f"{folder}: files over 10 MB outside LFS: {oversized}")


def deploy(owner: str, out: Path, space: str | None = None, push: bool = False,
           token: str | None = None, models_dir: Path = ROOT / "assets" / "models") -> dict[str, str]:
    """Stage (and with ``push``, upload) every model and the Space; returns repo id -> revision.
    Every folder is staged and checked before the first upload; with ``push`` the Space is
    staged again to pin the revisions the model uploads made."""
    staged = {model_repo_id(owner, folder.name): stage_model(folder, out / "models" / folder.name)
              for folder in sorted(p for p in models_dir.iterdir() if p.is_dir())}
    revisions = dict.fromkeys(staged, "main")
    staged_space = stage_space(out / "space", revisions)
    for folder in [*staged.values(), staged_space]:
        check_uploadable(folder)
    space = space or f"{owner}/s2s-demo"
    if push:
        for repo_id, folder in staged.items():
            revisions[repo_id] = push_folder(folder, repo_id, token, commit_message=f"s2s-demo {folder.name}")
        staged_space = stage_space(out / "space", revisions)
        push_folder(staged_space, space, token, repo_type="space", allow_patterns=None,
                    commit_message="s2s-demo app")
    for repo_id, revision in revisions.items():
        print(f"model {repo_id}@{revision}", flush=True)
    print(f"space {space}: {'uploaded' if push else 'staged'} from {staged_space}", flush=True)
    return revisions
