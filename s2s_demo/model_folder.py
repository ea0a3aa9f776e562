"""Model folders: the on-disk format a model is stored, shipped and uploaded in.

A model folder holds ``config.json``, ``model.safetensors``, ``source.model``,
``target.model`` (sentencepiece) and a ``README.md`` model card, and optionally figures,
results and a neighbour index. This module reads and writes them; :mod:`s2s_demo.hub`
fetches them from the Hub, and :func:`s2s_demo.translator.load` turns one into a Translator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import safetensors
import safetensors.torch
import torch
import yaml

from .config import ConfigError, ModelConfig
from .model import Seq2Seq
from .neighbours import INDEX_FILE, TEXTS_FILE
from .tokenizer import SOURCE_FILE, TARGET_FILE, TokenizerPair

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, SOURCE_FILE, TARGET_FILE)
# what a download fetches and a push sends: the model, its card, figures, results and neighbour index
ALLOW_PATTERNS = [*REQUIRED_FILES, CARD_FILE, "*.png", "*.json", INDEX_FILE, TEXTS_FILE]
# What an upload of a model folder sends: its Hub files and the repo's LFS rules.
UPLOAD_PATTERNS = [*ALLOW_PATTERNS, ".gitattributes"]


class ModelLoadError(RuntimeError):
    """A model folder or Hub repo that cannot be loaded; the message names the problem."""


def load_config(folder: Path) -> ModelConfig:
    """A model folder's validated config.json (every required file checked to be there)."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(f"{folder} is missing {', '.join(missing)}")
    try:
        return ModelConfig.load(folder / CONFIG_FILE)
    except ConfigError as err:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: {err}") from err


def load_model(folder: Path, device: str = "cpu") -> Seq2Seq:
    """Build the model from config.json and load model.safetensors strictly."""
    model = Seq2Seq(load_config(folder))
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
