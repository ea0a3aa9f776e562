"""Blend model folders of one architecture and vocabulary into a new folder (a "model soup",
Wortsman et al., 2022): the weighted mean of their weights, tensor by tensor.

    python -m train.soup --out runs/soup assets/models/en-de=0.5 runs/a/model=0.25 runs/b/model=0.25

Meant for fine-tunes that started from the same weights (they stay in one basin, so their mean
is a model, not noise). The shares must sum to 1. The first folder gives the config and the
sentencepiece models; every other folder must match both. Score the result on val
(``python -m train.evaluate --split val``) before trusting it; ``train.publish`` writes no card
for a soup, so the folder has none.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
from pathlib import Path

import torch

from s2s_demo.config import ModelConfig
from s2s_demo.model_folder import load_model, save_folder
from s2s_demo.tokenizer import SOURCE_FILE, TARGET_FILE


def parse_ingredient(text: str) -> tuple[Path, float]:
    """``folder=share`` -> (folder, share)."""
    folder, sep, share = text.rpartition("=")
    try:
        if not sep:
            raise ValueError
        return Path(folder), float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FOLDER=SHARE (e.g. runs/a/model=0.5)") from None


def soup(ingredients: list[tuple[Path, float]]) -> torch.nn.Module:
    """The weighted mean of the folders' models (float32), as a model of the first one's config."""
    if not ingredients:
        raise ValueError("a soup needs at least one folder")
    total = sum(share for _, share in ingredients)
    if abs(total - 1.0) > 1e-6 or any(share < 0 for _, share in ingredients):
        raise ValueError(f"the shares must be >= 0 and sum to 1; they sum to {total:g}")
    first = ingredients[0][0]
    base = load_model(first)
    states = []
    for folder, _ in ingredients:
        model = load_model(folder)
        if _architecture(model.config) != _architecture(base.config):
            raise ValueError(f"{folder} has another architecture or vocabulary than {first}")
        check_same_tokenizers(folder, first)
        states.append(model.state_dict())
    base.load_state_dict(weighted_mean(states, [share for _, share in ingredients]))
    return base


def check_same_tokenizers(folder: Path, first: Path) -> None:
    """Raise ValueError unless ``folder`` has ``first``'s sentencepiece models, byte for byte."""
    for name in (SOURCE_FILE, TARGET_FILE):
        if not filecmp.cmp(folder / name, first / name, shallow=False):
            raise ValueError(f"{folder}/{name} differs from {first}/{name}: the embeddings would not line up")


def weighted_mean(states: list[dict], shares: list[float]) -> dict:
    """``sum_i shares[i] * states[i]``, tensor by tensor, over state dicts with the same keys."""
    return {key: sum((share * state[key] for state, share in zip(states[1:], shares[1:])),
                     start=shares[0] * states[0][key])
            for key in states[0]}


def _architecture(config: ModelConfig) -> ModelConfig:
    """The config without what only training reads (dropout) or what is free text (extra)."""
    return dataclasses.replace(config, dropout=0.0, emb_dropout=0.0, extra={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ingredients", nargs="+", type=parse_ingredient, metavar="FOLDER=SHARE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        model = soup(args.ingredients)
    except ValueError as err:
        parser.error(str(err))
    save_folder(model, args.ingredients[0][0], args.out)
    print(f"wrote {args.out}: " + " + ".join(f"{share:g} x {folder}" for folder, share in args.ingredients))


if __name__ == "__main__":
    main()
