"""Model folders in Hugging Face Hub format, loaded from disk or a Hub repo id.

A model folder holds ``config.json``, ``model.safetensors``, ``source.model``,
``target.model`` (sentencepiece) and a ``README.md`` model card. ``load(ref)`` takes a
local folder or a repo id (optionally a revision) and returns a ready Translator; both go
through ``load_folder`` so a shipped folder and a downloaded snapshot load the same way.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import safetensors
import safetensors.torch
import torch
import yaml
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from .config import ConfigError, ModelConfig
from .inference import ARITHMETICS, InferenceEngine, UnsupportedArithmetic
from .model import Seq2Seq
from .neighbours import INDEX_FILE, TEXTS_FILE
from .tokenizer import SOURCE_FILE, TARGET_FILE, TokenizerPair

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, SOURCE_FILE, TARGET_FILE)
# What a snapshot download fetches: the model folder and nothing else (no pickles).
# what a download fetches and a push sends: the model, its card, figures, results and neighbour index
ALLOW_PATTERNS = [*REQUIRED_FILES, CARD_FILE, "*.png", "*.json", INDEX_FILE, TEXTS_FILE]
INFERENCE_DTYPE_CHOICES = ("auto", *ARITHMETICS)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelLoadError(RuntimeError):
    """A model folder or Hub repo that cannot be loaded; the message names the problem."""


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"org/name@v1"`` -> ("org/name", "v1"); a plain path or id has no revision."""
    ref = ref.strip()
    if "@" in ref and not Path(ref).exists():
        name, revision = ref.rsplit("@", 1)
        return name, revision or None
    return ref, None


def resolve(ref: str | Path, revision: str | None = None) -> Path:
    """A local model folder for ``ref``: the folder itself, or a Hub snapshot."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; a model folder is needed")
        return path
    ref = str(ref)
    if ref.startswith((".", "/", "~")) or not REPO_ID.match(ref):
        raise ModelLoadError(f"model folder {ref!r} does not exist (and is not a Hub repo id)")
    try:
        return Path(snapshot_download(repo_id=ref, revision=revision, allow_patterns=ALLOW_PATTERNS))
    except RepositoryNotFoundError as err:
        raise ModelLoadError(f"Hub repo {ref!r} not found (or private without a token)") from err
    except RevisionNotFoundError as err:
        raise ModelLoadError(f"revision {revision!r} not found in Hub repo {ref!r}") from err
    except (LocalEntryNotFoundError, EntryNotFoundError) as err:
        raise ModelLoadError(f"Hub repo {ref!r} could not be downloaded and is not cached: {err}") from err
    except HfHubHTTPError as err:
        raise ModelLoadError(f"Hub error for {ref!r}: {err}") from err


def load_model(folder: Path, device: str = "cpu") -> Seq2Seq:
    """Build the model from config.json and load model.safetensors strictly."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(f"{folder} is missing {', '.join(missing)}")
    try:
        config = ModelConfig.load(folder / CONFIG_FILE)
    except ConfigError as err:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: {err}") from err
    model = Seq2Seq(config)
    try:
        # strict: a missing, extra or mis-shaped tensor is an error, never a silent default
        missing_keys, unexpected = safetensors.torch.load_model(model, folder / WEIGHTS_FILE,
                                                               strict=True, device=device)
    except safetensors.SafetensorError as err:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE} is not a valid safetensors file: {err}") from err
    except RuntimeError as err:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE} does not match {CONFIG_FILE}: {err}") from err
    model.to(device).eval()
    return model


def load_tokenizer(folder: Path, config: ModelConfig) -> TokenizerPair:
    try:
        tokenizer = TokenizerPair.from_folder(folder)
    except (OSError, RuntimeError) as err:
        raise ModelLoadError(f"{folder}: cannot read the sentencepiece models: {err}") from err
    sizes = (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    if sizes != (config.src_vocab_size, config.tgt_vocab_size):
        raise ModelLoadError(f"{folder}: tokenizer vocabularies {sizes} do not match config.json "
                             f"({config.src_vocab_size}, {config.tgt_vocab_size})")
    return tokenizer


def load(ref: str | Path, revision: str | None = None, device: str = "cpu",
         inference_dtype: str = "float32"):
    """A ready :class:`s2s_demo.translator.Translator` from a local folder or a Hub repo id.

    ``inference_dtype``: the arithmetic decoding multiplies the weights in (see
    :mod:`s2s_demo.inference`): "float32" (exact), "bfloat16", "float16", "int8", or "auto"
    (the fastest this CPU runs within 0.01 of float32's probabilities). One the CPU cannot
    run is a :class:`ModelLoadError` naming the missing CPU feature.
    """
    from .translator import Translator  # translator imports hub's helpers

    if inference_dtype not in INFERENCE_DTYPE_CHOICES:
        raise ValueError(f"inference_dtype {inference_dtype!r} is not one of {', '.join(INFERENCE_DTYPE_CHOICES)}")
    folder = resolve(ref, revision)
    model = load_model(folder, device)
    try:
        engine = InferenceEngine(model, inference_dtype)
    except UnsupportedArithmetic as err:
        raise ModelLoadError(str(err)) from err
    tokenizer = load_tokenizer(folder, model.config)
    return Translator(model, tokenizer, folder=folder, ref=str(ref), revision=revision, engine=engine)


def save_folder(model: Seq2Seq, tokenizer_dir: Path, folder: Path, card: str | None = None) -> Path:
    """Write a model folder: config, safetensors weights, sentencepiece models, card."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / CONFIG_FILE)
    # save_model drops the tied copy of shared tensors; load_model restores the tie
    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    cpu_model = Seq2Seq(model.config)
    cpu_model.load_state_dict(state)
    safetensors.torch.save_model(cpu_model, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    for name in (SOURCE_FILE, TARGET_FILE):
        if Path(tokenizer_dir).resolve() != folder.resolve():
            shutil.copy(Path(tokenizer_dir) / name, folder / name)
    if card is not None:
        (folder / CARD_FILE).write_text(card, encoding="utf-8")
    return folder


def read_front_matter(card: Path) -> tuple[dict, str]:
    """A card's (README.md's) YAML front matter and the text after it; ({}, text) when it has
    none, or none that YAML reads as a mapping."""
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}, text
    parts = text.split("---", 2)
    try:
        meta = yaml.safe_load(parts[1]) or {}
    except yaml.YAMLError:
        return {}, text
    body = parts[2].lstrip("\n") if len(parts) > 2 else ""
    return (meta, body) if isinstance(meta, dict) else ({}, text)


def write_front_matter(card: Path, meta: dict, body: str) -> None:
    """Write a card: ``meta`` as YAML front matter (Hub metadata), then ``body``."""
    card.write_text("---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n\n" + body,
                    encoding="utf-8")


# What an upload of a model folder sends: its Hub files and the repo's LFS rules.
UPLOAD_PATTERNS = [*ALLOW_PATTERNS, ".gitattributes"]


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool = False,
                repo_type: str = "model", allow_patterns: list[str] | None = UPLOAD_PATTERNS,
                commit_message: str = "Upload with s2s-demo") -> str:
    """Upload a folder to a Hub repo, created if missing (token from the argument or HF_TOKEN);
    returns the commit id, which pins what was uploaded. ``allow_patterns=None`` uploads every
    file (a Space)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    space = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                             allow_patterns=allow_patterns, commit_message=commit_message)
    return info.oid
