"""A run's checkpoints: save and load (exact resume), list by step, prune, average, export.

A run folder holds ``checkpoints/step-N.pt`` (every ``training.checkpoint_every`` steps, the
newest ``keep_checkpoints`` kept), ``checkpoints/last.pt`` (what resume reads) and
``checkpoints/best.pt`` (the weights of the best validation BLEU). The export, ``model/``, is
the mean of the last ``average_checkpoints`` step checkpoints, optionally blended with the
weights the run started from (``export_init_share``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from s2s_demo.model_folder import load_model, save_folder
from s2s_demo.model import Seq2Seq

from .soup import weighted_mean

LAST = "last.pt"
BEST = "best.pt"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def save(path: Path, model, optimizer, scheduler, progress: dict) -> None:
    """Atomic write of everything resume needs (a crash mid-write keeps the old file)."""
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": progress,
        "torch_rng": torch.get_rng_state(),
        "python_rng": list(random.getstate()[1]),
        "python_rng_meta": [random.getstate()[0], random.getstate()[2]],
    }
    if torch.cuda.is_initialized():  # dropout masks on a GPU come from its own generator
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint into the model, optimiser, schedule and RNGs; returns its progress."""
    # weights_only: our own checkpoints hold only tensors and plain containers
    payload = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    version, gauss = payload["python_rng_meta"]
    random.setstate((version, tuple(payload["python_rng"]), gauss))
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload["progress"]


def save_best(ckpt_dir: Path, model) -> None:
    torch.save({"model": unwrap(model).state_dict()}, ckpt_dir / BEST)


def step_of(path: Path) -> int:
    """``step-1200.pt`` -> 1200."""
    return int(path.stem.split("-")[1])


def step_paths(ckpt_dir: Path) -> list[Path]:
    """The step checkpoints of a run, oldest first."""
    return sorted(ckpt_dir.glob("step-*.pt"), key=step_of)


def prune(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (all of them when keep is 0)."""
    paths = step_paths(ckpt_dir)
    for path in paths[:-keep] if keep > 0 else paths:
        path.unlink()


def average(paths: list[Path]) -> dict:
    """Element-wise mean of the model weights in ``paths`` (summed in float64)."""
    states = [{k: v.double() for k, v in torch.load(p, map_location="cpu", weights_only=True)["model"].items()}
              for p in paths]
    return {k: v.float() for k, v in weighted_mean(states, [1 / len(paths)] * len(paths)).items()}


def blend(start: dict, tuned: dict, start_share: float) -> dict:
    """``start_share * start + (1 - start_share) * tuned``, tensor by tensor: interpolating a
    fine-tune with the weights it started from (Wortsman et al., 2022, "WiSE-FT") can beat both."""
    return weighted_mean([start, tuned], [start_share, 1 - start_share])


def export(core: Seq2Seq, out_dir: Path, tcfg: dict) -> Path:
    """Average the last checkpoints into ``out_dir/model`` (plain copy if there is one); with
    ``training.export_init_share`` > 0, blend that average with the ``init_from`` weights."""
    paths = step_paths(out_dir / "checkpoints")
    paths = paths[-tcfg["average_checkpoints"]:] if tcfg["average_checkpoints"] else paths[-1:]
    weights = average(paths) if paths else {k: v.cpu() for k, v in core.state_dict().items()}
    if tcfg["export_init_share"]:
        weights = blend(load_model(Path(tcfg["init_from"])).state_dict(), weights, tcfg["export_init_share"])
    model = Seq2Seq(core.config)
    model.load_state_dict(weights)
    return save_folder(model, out_dir / "data", out_dir / "model")
