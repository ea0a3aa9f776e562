"""Train a translator from a YAML config, with exact resume after a kill.

    python -m train.train --config train/configs/de-en.yaml
    torchrun --nproc_per_node=2 -m train.train --config train/configs/tiny.yaml

Writes to ``training.out_dir``: ``data/`` (sentencepiece), ``checkpoints/`` (last.pt and
step-N.pt; resume is automatic), ``metrics.jsonl``, ``curves.png`` and, at the end,
``model/`` (a Hub-format model folder of the averaged last checkpoints).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import sacrebleu
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from s2s_demo.config import ModelConfig
from s2s_demo.decoding import translate_ids
from s2s_demo.hub import load_model, save_folder
from s2s_demo.inference import InferenceEngine
from s2s_demo.model import Seq2Seq
from s2s_demo.runtime import cpu_name
from s2s_demo.settings import DecodeSettings
from s2s_demo.tokenizer import SOURCE_FILE, TARGET_FILE, SubwordSampling, TokenizerPair

from .configuration import load_config
from .data import Example, collate, epoch_seed, make_batches, tokenize
from .prepare import prepare, read_split
from .soup import weighted_mean


# ---------------------------------------------------------------- distributed helpers
def init_distributed() -> tuple[int, int]:
    """(rank, world size); torchrun's environment starts a gloo process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def broadcast_flag(flag: bool, world: int) -> bool:
    if world == 1:
        return flag
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


# ---------------------------------------------------------------- optimisation
def build_optimizer(model: torch.nn.Module, cfg: dict) -> torch.optim.Optimizer:
    name = cfg["optimizer"]
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                                 weight_decay=cfg["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]))
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    raise ValueError(f"unknown optimizer {name!r} (adamw, adam, sgd)")


def lr_factor(step: int, cfg: dict) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warm-up, then the schedule)."""
    warmup = max(1, cfg["warmup_steps"])
    if step < warmup:
        return (step + 1) / warmup
    kind = cfg["schedule"]
    if kind == "constant":
        return 1.0
    if kind == "inverse_sqrt":
        return math.sqrt(warmup / (step + 1))
    if kind == "cosine":
        progress = min(1.0, (step - warmup) / max(1, cfg["max_steps"] - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r} (constant, inverse_sqrt, cosine)")


def resolve_device(name: str, world: int) -> torch.device:
    """``training.device``: "cpu", "cuda" or "auto" (cuda when torch sees a GPU and the run
    is one process: several processes train on the CPU, with gloo)."""
    if name not in ("cpu", "cuda", "auto"):
        raise ValueError(f"training.device must be cpu, cuda or auto, got {name!r}")
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise ValueError("training.device=cuda, but torch sees no CUDA device (use cpu or auto)")
    device = torch.device("cuda" if name == "cuda" or (name == "auto" and cuda and world == 1) else "cpu")
    if device.type == "cuda" and world > 1:
        raise ValueError("training.device=cuda runs as one process; several processes (torchrun) train on CPU")
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: the LSTM sizes here need no more
    return device


def device_name(device: torch.device) -> str:
    """What the card says the run trained on."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} GPU"
    return f"{cpu_name()} CPU"


def batch_loss(model, batch, label_smoothing: float, teacher_forcing: float) -> torch.Tensor:
    """Summed token cross-entropy of a batch (divide by batch.n_tokens for the mean)."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in, teacher_forcing)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1),
                           ignore_index=model_config(model).pad_id,
                           label_smoothing=label_smoothing, reduction="sum")


def model_config(model) -> ModelConfig:
    return (model.module if hasattr(model, "module") else model).config


# ---------------------------------------------------------------- validation
def validate(model: Seq2Seq, examples: list[Example], references: list[str],
             tokenizer: TokenizerPair, batch_tokens: int) -> dict:
    """Validation loss/perplexity (teacher forcing) and greedy sacreBLEU, on the CPU
    (the decoding engine's; a model training on a GPU is validated as a CPU copy)."""
    cfg = model.config
    if next(model.parameters()).device.type != "cpu":
        model = cpu_copy(model)
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for idx in make_batches(examples, batch_tokens, seed=0, epoch=0):
            batch = collate([examples[i] for i in idx], cfg.pad_id, cfg.bos_id, cfg.eos_id)
            total += float(batch_loss(model, batch, 0.0, 1.0))
            tokens += batch.n_tokens
    # the demo's engine on a snapshot of the weights: the reference step is slower per step
    hyps_ids = translate_ids(InferenceEngine(model), [e.src for e in examples], DecodeSettings(method="greedy"))
    hyps = [tokenizer.decode_target(ids) for ids in hyps_ids]
    bleu = sacrebleu.corpus_bleu(hyps, [references])
    model.train()
    return {"valid_loss": total / tokens, "valid_ppl": math.exp(min(total / tokens, 50)),
            "valid_bleu": bleu.score}


def cpu_copy(model: Seq2Seq) -> Seq2Seq:
    copy = Seq2Seq(model.config)
    copy.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    return copy


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model, optimizer, scheduler, progress: dict) -> None:
    """Atomic write of everything resume needs (a crash mid-write keeps the old file)."""
    payload = {
        "model": (model.module if hasattr(model, "module") else model).state_dict(),
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


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    # weights_only: our own checkpoints hold only tensors and plain containers
    payload = torch.load(path, map_location="cpu", weights_only=True)
    (model.module if hasattr(model, "module") else model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    version, gauss = payload["python_rng_meta"]
    random.setstate((version, tuple(payload["python_rng"]), gauss))
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload["progress"]


def average_checkpoints(paths: list[Path]) -> dict:
    """Element-wise mean of the model weights in ``paths``."""
    avg = None
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
        if avg is None:
            avg = {k: v.clone().double() for k, v in state.items()}
        else:
            for k, v in state.items():
                avg[k] += v.double()
    return {k: (v / len(paths)).float() for k, v in avg.items()}


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    steps = sorted(ckpt_dir.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for path in steps[:-keep] if keep > 0 else steps:
        path.unlink()


# ---------------------------------------------------------------- plots
def plot_curves(metrics_path: Path, out_path: Path) -> None:
    """Training loss and validation BLEU against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(metrics_path)
    train = [r for r in rows if "train_loss" in r]
    valid = [r for r in rows if "valid_bleu" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot([r["step"] for r in train], [r["train_loss"] for r in train], label="train")
    ax[0].plot([r["step"] for r in valid], [r["valid_loss"] for r in valid], "o-", label="valid")
    ax[0].set_xlabel("step"), ax[0].set_ylabel("loss per token"), ax[0].legend()
    ax[1].plot([r["step"] for r in valid], [r["valid_bleu"] for r in valid], "o-", color="C2")
    ax[1].set_xlabel("step"), ax[1].set_ylabel("valid BLEU (greedy)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- main loop
def train(config: dict, rank: int = 0, world: int = 1) -> Path:
    tcfg = config["training"]
    out_dir = Path(tcfg["out_dir"])
    ckpt_dir = out_dir / "checkpoints"
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if tcfg["init_from"]:
            copy_tokenizer(Path(tcfg["init_from"]), out_dir / "data")
        prepare(config, out_dir)
    barrier(world)
    tokenizer = TokenizerPair.from_folder(out_dir / "data")
    dcfg = config["data"]
    train_text = read_split(dcfg, dcfg["train_split"])
    sampling = (SubwordSampling(tcfg["subword_alpha"], tcfg["subword_nbest_size"])
                if tcfg["subword_alpha"] else None)
    train_examples = tokenize(train_text, tokenizer, dcfg["max_len"])
    valid_text = read_split(dcfg, dcfg["valid_split"])
    n_valid = min(len(valid_text), tcfg["valid_max_sentences"])
    valid_examples = tokenize(type(valid_text)(valid_text.source[:n_valid], valid_text.target[:n_valid]), tokenizer)
    valid_refs = valid_text.target[: n_valid]

    torch.manual_seed(tcfg["seed"])
    random.seed(tcfg["seed"])
    model_cfg = ModelConfig(src_vocab_size=tokenizer.src_vocab_size, tgt_vocab_size=tokenizer.tgt_vocab_size,
                            src_lang=dcfg["src_lang"], tgt_lang=dcfg["tgt_lang"], **config["model"])
    device = resolve_device(tcfg["device"], world)
    model = Seq2Seq(model_cfg).to(device)
    core = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = build_optimizer(core, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tcfg))
    progress = {"step": 0, "epoch": 0, "batch": 0, "best_bleu": -1.0, "bad_validations": 0,
                "seconds": 0.0, "tokens": 0, "stopped": False}
    last = ckpt_dir / "last.pt"
    if last.exists():
        progress = load_checkpoint(last, model, optimizer, scheduler)
        if rank == 0:
            print(f"resumed from {last} at step {progress['step']}", flush=True)
    elif tcfg["init_from"]:
        init_weights(core, Path(tcfg["init_from"]))
        if rank == 0:
            print(f"initialised from {tcfg['init_from']}", flush=True)
    metrics_path = out_dir / "metrics.jsonl"
    if rank == 0:
        _drop_rows_after(metrics_path, progress["step"])
        print(f"model: {core.num_parameters():,} parameters; {len(train_examples):,} training pairs",
              flush=True)
    bar = tqdm(total=tcfg["max_steps"], initial=progress["step"], desc=out_dir.name,
               disable=rank != 0 or None, dynamic_ncols=True)
    window_tokens, window_start = 0, time.perf_counter()
    deadline = time.monotonic() + 60 * tcfg["max_minutes"] if tcfg["max_minutes"] else math.inf
    model.train()
    while not progress["stopped"] and progress["step"] < tcfg["max_steps"] \
            and progress["epoch"] < tcfg["max_epochs"]:
        if sampling is not None:  # a new segmentation of the corpus every epoch
            train_examples = tokenize(train_text, tokenizer, dcfg["max_len"], sampling,
                                      seed=epoch_seed(tcfg["seed"], progress["epoch"]))
        batches = make_batches(train_examples, tcfg["batch_tokens"], tcfg["seed"], progress["epoch"])
        batches = batches[: len(batches) - len(batches) % world]  # equal steps on every rank
        while progress["batch"] < len(batches) and progress["step"] < tcfg["max_steps"]:
            idx = batches[progress["batch"] + rank]
            progress["batch"] += world
            step_start = time.perf_counter()
            batch = collate([train_examples[i] for i in idx], model_cfg.pad_id, model_cfg.bos_id,
                            model_cfg.eos_id).to(device)
            loss = batch_loss(model, batch, tcfg["label_smoothing"], tcfg["teacher_forcing"])
            optimizer.zero_grad(set_to_none=True)
            (loss / batch.n_tokens).backward()
            if tcfg["clip_norm"]:
                torch.nn.utils.clip_grad_norm_(core.parameters(), tcfg["clip_norm"])
            optimizer.step()
            scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize()  # so the step's seconds hold its GPU work
            progress["step"] += 1
            progress["seconds"] += time.perf_counter() - step_start
            progress["tokens"] += batch.n_tokens * world
            window_tokens += batch.n_tokens * world
            bar.update(1)
            step = progress["step"]
            if rank == 0 and step % 20 == 0:
                rate = window_tokens / (time.perf_counter() - window_start)
                window_tokens, window_start = 0, time.perf_counter()
                bar.set_postfix(loss=f"{loss.item() / batch.n_tokens:.3f}", tok_s=f"{rate:.0f}",
                                lr=f"{scheduler.get_last_lr()[0]:.2e}")
                _log(metrics_path, {"step": step, "epoch": progress["epoch"],
                                    "train_loss": loss.item() / batch.n_tokens,
                                    "lr": scheduler.get_last_lr()[0], "tokens_per_s": rate})
            if step % tcfg["valid_every"] == 0:
                _validate_and_track(core, valid_examples, valid_refs, tokenizer, tcfg, progress,
                                    metrics_path, out_dir, rank, device_name(device))
                progress["stopped"] = broadcast_flag(progress["stopped"], world)
                window_start = time.perf_counter()
            if rank == 0 and step % tcfg["checkpoint_every"] == 0:
                save_checkpoint(ckpt_dir / f"step-{step}.pt", model, optimizer, scheduler, progress)
                save_checkpoint(last, model, optimizer, scheduler, progress)
                prune_checkpoints(ckpt_dir, tcfg["keep_checkpoints"])
            if tcfg["max_minutes"] and broadcast_flag(time.monotonic() > deadline, world):
                # a wall-clock budget (benchmarks): keep this step's weights for the export
                if rank == 0:
                    save_checkpoint(ckpt_dir / f"step-{step}.pt", model, optimizer, scheduler, progress)
                progress["stopped"] = True
            if progress["stopped"]:
                break
        else:
            progress["epoch"] += 1
            progress["batch"] = 0
    bar.close()
    if rank == 0:
        save_checkpoint(last, model, optimizer, scheduler, progress)
        export_model(core, out_dir, tcfg)
    barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return out_dir / "model"


def _validate_and_track(core, valid_examples, valid_refs, tokenizer, tcfg, progress,
                        metrics_path, out_dir, rank, hardware: str) -> None:
    """Validate (rank 0), log, keep the best checkpoint, decide early stopping."""
    if rank != 0:
        return
    result = validate(core, valid_examples, valid_refs, tokenizer, tcfg["batch_tokens"])
    result.update(step=progress["step"], epoch=progress["epoch"],
                  train_seconds=progress["seconds"], train_tokens=progress["tokens"],
                  hardware=hardware, torch=torch.__version__)
    _log(metrics_path, result)
    tqdm.write(f"step {progress['step']}: valid loss {result['valid_loss']:.3f} "
               f"BLEU {result['valid_bleu']:.2f}")
    if result["valid_bleu"] > progress["best_bleu"]:
        progress["best_bleu"], progress["bad_validations"] = result["valid_bleu"], 0
        torch.save({"model": core.state_dict()}, out_dir / "checkpoints" / "best.pt")
    else:
        progress["bad_validations"] += 1
        progress["stopped"] = progress["bad_validations"] >= tcfg["patience"]
    plot_curves(metrics_path, out_dir / "curves.png")


def export_model(core: Seq2Seq, out_dir: Path, tcfg: dict) -> Path:
    """Average the last checkpoints into ``out_dir/model`` (plain copy if there is one); with
    ``training.export_init_share`` > 0, blend that average with the ``init_from`` weights."""
    ckpts = sorted((out_dir / "checkpoints").glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    ckpts = ckpts[-tcfg["average_checkpoints"]:] if tcfg["average_checkpoints"] else ckpts[-1:]
    weights = average_checkpoints(ckpts) if ckpts else {k: v.cpu() for k, v in core.state_dict().items()}
    if tcfg["export_init_share"]:
        start = load_model(Path(tcfg["init_from"])).state_dict()
        weights = blend_weights(start, weights, tcfg["export_init_share"])
    export = Seq2Seq(core.config)
    export.load_state_dict(weights)
    return save_folder(export, out_dir / "data", out_dir / "model")


def blend_weights(start: dict, tuned: dict, start_share: float) -> dict:
    """``start_share * start + (1 - start_share) * tuned``, tensor by tensor: interpolating a
    fine-tune with the weights it started from (Wortsman et al., 2022, "WiSE-FT") can beat both."""
    return weighted_mean([start, tuned], [start_share, 1 - start_share])


def copy_tokenizer(model_folder: Path, data_dir: Path) -> None:
    """Reuse a published model's sentencepiece files, so its embeddings keep their meaning."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in (SOURCE_FILE, TARGET_FILE):
        if not (data_dir / name).exists():
            shutil.copy(model_folder / name, data_dir / name)


def init_weights(model: Seq2Seq, model_folder: Path) -> None:
    """Fine-tune start: weights of a published folder (safetensors, strict), fresh optimiser.
    Fails with the mismatching names when the architecture differs from the folder's."""
    published = load_model(model_folder)
    try:
        # dropout may differ (a fine-tune may regularise differently); shapes may not
        model.load_state_dict(published.state_dict(), strict=True)
    except RuntimeError as err:
        raise ValueError(f"training.init_from={model_folder} does not fit this config's model "
                         f"section: {err}") from err


def read_log(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``, oldest first."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _drop_rows_after(path: Path, step: int) -> None:
    """Forget the log rows of steps past the checkpoint we resume from: those steps run again."""
    if not path.exists():
        return
    rows = read_log(path)
    kept = [row for row in rows if row["step"] <= step]
    if len(kept) < len(rows):
        path.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")


def _log(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file under train/configs/")
    parser.add_argument("--out-dir", help="override training.out_dir")
    parser.add_argument("--max-steps", type=int, help="override training.max_steps")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=YAML",
                        help="override any config value, e.g. training.lr=0.001")
    args = parser.parse_args(argv)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.out_dir:
        overrides["training.out_dir"] = args.out_dir
    if args.max_steps is not None:
        overrides["training.max_steps"] = args.max_steps
    config = load_config(args.config, overrides)
    rank, world = init_distributed()
    folder = train(config, rank, world)
    if rank == 0:
        print(f"model folder: {folder}")


if __name__ == "__main__":
    main()
