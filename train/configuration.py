"""YAML training configs: one file per language pair and size under train/configs/."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

# Where the Multi30k files (``{split}.{lang}.gz``) are: one setting for training, evaluation
# and the benchmarks. A config's ``data.path`` wins; otherwise this variable, else the default.
MULTI30K_ENV = "S2S_MULTI30K"
MULTI30K_DEFAULT = "../shared/data/multi30k"


def multi30k_dir() -> str:
    """The Multi30k folder: ``$S2S_MULTI30K``, else ``../shared/data/multi30k``."""
    return os.environ.get(MULTI30K_ENV) or MULTI30K_DEFAULT

DEFAULTS = {
    "data": {"corpus": "multi30k", "train_split": "train", "valid_split": "val",
             "test_splits": [], "vocab_size": 8000, "joint_vocab": False,
             "sentencepiece_type": "unigram", "max_len": 100, "download": False,
             "train_limit": 0, "path": None},
    "model": {},
    "training": {
        "optimizer": "adamw", "lr": 0.002, "betas": [0.9, 0.98], "weight_decay": 0.0,
        "schedule": "inverse_sqrt", "warmup_steps": 200,
        "batch_tokens": 3000, "max_steps": 10000, "max_epochs": 100, "clip_norm": 1.0,
        "label_smoothing": 0.1, "valid_every": 200,
        "valid_max_sentences": 1014, "checkpoint_every": 100, "keep_checkpoints": 5,
        "average_checkpoints": 5, "patience": 6, "seed": 1, "threads": 0, "device": "cpu",
        "out_dir": "runs/model", "init_from": None, "max_minutes": 0,
        # subword regularization: 0 = the best segmentation only (see SubwordSampling)
        "subword_alpha": 0.0, "subword_nbest_size": 64,
        # share of the init_from weights blended into the export (0 = the fine-tune alone)
        "export_init_share": 0.0,
        # train.publish fits the softmax temperature on val before it measures anything
        "fit_temperature": False,
    },
    "card": {},
}


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config and fill in defaults; ``overrides`` maps section.key -> value."""
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}")
    config = {section: {**defaults, **(raw.get(section) or {})} for section, defaults in DEFAULTS.items()}
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        config[section][key] = value
    if not config["data"]["path"] and config["data"]["corpus"] == "multi30k":
        config["data"]["path"] = multi30k_dir()
    unknown_train = sorted(set(config["training"]) - set(DEFAULTS["training"]))
    if unknown_train:
        raise ValueError(f"{path}: unknown training keys {unknown_train}")
    _check_subword_sampling(path, config["training"])
    _check_export_blend(path, config["training"])
    return config


def _is_number(value) -> bool:
    """An int or float from YAML (``true`` is a bool, which Python also counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_export_blend(path, training: dict) -> None:
    share = training["export_init_share"]
    if not _is_number(share) or not 0 <= share < 1:
        raise ValueError(f"{path}: training.export_init_share must be a number in [0, 1), got {share!r}")
    if share and not training["init_from"]:
        raise ValueError(f"{path}: training.export_init_share blends the init_from weights into the "
                         "export, but training.init_from is not set")


def _check_subword_sampling(path, training: dict) -> None:
    """sentencepiece takes any numbers here and fails, if at all, deep inside training."""
    alpha, nbest = training["subword_alpha"], training["subword_nbest_size"]
    if not _is_number(alpha) or not 0 <= alpha <= 1:
        raise ValueError(f"{path}: training.subword_alpha must be a number in [0, 1] (0 = off), got {alpha!r}")
    if isinstance(nbest, bool) or not isinstance(nbest, int) or not (nbest == -1 or nbest >= 2):
        raise ValueError(f"{path}: training.subword_nbest_size must be -1 (all segmentations) or an "
                         f"integer >= 2, got {nbest!r}")
