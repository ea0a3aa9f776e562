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
from dataclasses import asdict, dataclass
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
from s2s_demo.model_folder import load_model
from s2s_demo.inference import InferenceEngine
from s2s_demo.model import Seq2Seq
from s2s_demo.runtime import cpu_name
from s2s_demo.settings import DecodeSettings
from s2s_demo.tokenizer import SOURCE_FILE, TARGET_FILE, SubwordSampling, TokenizerPair

from .configuration import load_config
from .data import Example, collate, epoch_seed, make_batches, tokenize
from .prepare import prepare, read_split
from . import checkpoints


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
    raise ValueError(f"unknown optimizer {name!r} (adamw, adam)")


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


def batch_loss(model, batch, label_smoothing: float) -> torch.Tensor:
    """Summed token cross-entropy of a batch (divide by batch.n_tokens for the mean)."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.tgt_out.reshape(-1),
                           ignore_index=model_config(model).pad_id,
                           label_smoothing=label_smoothing, reduction="sum")


def model_config(model) -> ModelConfig:
    return checkpoints.unwrap(model).config


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
            total += float(batch_loss(model, batch, 0.0))
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
@dataclass
class Progress:
    """Where a run is: everything the loop changes, saved in every checkpoint (as a dict)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_bleu: float = -1.0
    bad_validations: int = 0
    seconds: float = 0.0
    tokens: int = 0
    stopped: bool = False


class Trainer:
    """One training run of ``config`` on this process (``rank`` of ``world``): data, model,
    optimiser and progress in one place; :meth:`run` is the loop, read top to bottom."""

    def __init__(self, config: dict, rank: int = 0, world: int = 1) -> None:
        self.config, self.rank, self.world = config, rank, world
        self.tcfg, self.dcfg = config["training"], config["data"]
        self.out_dir = Path(self.tcfg["out_dir"])
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        if self.tcfg["threads"]:
            torch.set_num_threads(self.tcfg["threads"])
        self._prepare_data()
        torch.manual_seed(self.tcfg["seed"])
        random.seed(self.tcfg["seed"])
        self.model_cfg = ModelConfig(src_vocab_size=self.tokenizer.src_vocab_size,
                                     tgt_vocab_size=self.tokenizer.tgt_vocab_size, src_lang=self.dcfg["src_lang"],
                                     tgt_lang=self.dcfg["tgt_lang"], **config["model"])
        self.device = resolve_device(self.tcfg["device"], world)
        self.core = Seq2Seq(self.model_cfg).to(self.device)
        self.model = torch.nn.parallel.DistributedDataParallel(self.core) if world > 1 else self.core
        self.optimizer = build_optimizer(self.core, self.tcfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, self.tcfg))
        self.progress = self._start()

    def _prepare_data(self) -> None:
        """Tokenizers (made by rank 0), the tokenized training pairs and the validation subset."""
        tcfg, dcfg = self.tcfg, self.dcfg
        if self.rank == 0:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if tcfg["init_from"]:
                copy_tokenizer(Path(tcfg["init_from"]), self.out_dir / "data")
            prepare(self.config, self.out_dir)
        barrier(self.world)
        self.tokenizer = TokenizerPair.from_folder(self.out_dir / "data")
        self.train_text = read_split(dcfg, dcfg["train_split"])
        self.sampling = (SubwordSampling(tcfg["subword_alpha"], tcfg["subword_nbest_size"])
                         if tcfg["subword_alpha"] else None)
        self.train_examples = tokenize(self.train_text, self.tokenizer, dcfg["max_len"])
        valid = read_split(dcfg, dcfg["valid_split"])
        n = min(len(valid), tcfg["valid_max_sentences"])
        self.valid_examples = tokenize(type(valid)(valid.source[:n], valid.target[:n]), self.tokenizer)
        self.valid_refs = valid.target[:n]

    def _start(self) -> Progress:
        """Resume from last.pt, else start from ``init_from``'s weights or from scratch."""
        last = self.ckpt_dir / checkpoints.LAST
        progress = Progress()
        if last.exists():
            progress = Progress(**checkpoints.load(last, self.model, self.optimizer, self.scheduler))
            self._say(f"resumed from {last} at step {progress.step}")
        elif self.tcfg["init_from"]:
            init_weights(self.core, Path(self.tcfg["init_from"]))
            self._say(f"initialised from {self.tcfg['init_from']}")
        if self.rank == 0:
            _drop_rows_after(self.metrics_path, progress.step)
        self._say(f"model: {self.core.num_parameters():,} parameters; {len(self.train_examples):,} training pairs")
        return progress

    def run(self) -> Path:
        """Train until max_steps, max_epochs, early stopping or the wall-clock budget; export."""
        tcfg, progress = self.tcfg, self.progress
        self.bar = tqdm(total=tcfg["max_steps"], initial=progress.step, desc=self.out_dir.name,
                        disable=self.rank != 0 or None, dynamic_ncols=True)
        self.window = [0, time.perf_counter()]  # target tokens and start of the rate's window
        deadline = time.monotonic() + 60 * tcfg["max_minutes"] if tcfg["max_minutes"] else math.inf
        self.model.train()
        while not progress.stopped and progress.step < tcfg["max_steps"] and progress.epoch < tcfg["max_epochs"]:
            batches = self._epoch_batches()
            while progress.batch < len(batches) and progress.step < tcfg["max_steps"]:
                indices = batches[progress.batch + self.rank]
                progress.batch += self.world
                loss, n_tokens = self._train_step(indices)
                self._after_step(loss, n_tokens)
                if tcfg["max_minutes"] and broadcast_flag(time.monotonic() > deadline, self.world):
                    # a wall-clock budget (benchmarks): keep this step's weights for the export
                    self._checkpoint(step_only=True)
                    progress.stopped = True
                if progress.stopped:
                    break
            else:
                progress.epoch += 1
                progress.batch = 0
        return self._finish()

    def _epoch_batches(self) -> list[list[int]]:
        """This epoch's batches of example indices (a new segmentation first, with subword sampling)."""
        tcfg = self.tcfg
        if self.sampling is not None:
            self.train_examples = tokenize(self.train_text, self.tokenizer, self.dcfg["max_len"], self.sampling,
                                           seed=epoch_seed(tcfg["seed"], self.progress.epoch))
        batches = make_batches(self.train_examples, tcfg["batch_tokens"], tcfg["seed"], self.progress.epoch)
        return batches[: len(batches) - len(batches) % self.world]  # equal steps on every rank

    def _train_step(self, indices: list[int]) -> tuple[float, int]:
        """One optimiser step on a batch; returns its summed loss and its target tokens."""
        cfg, tcfg = self.model_cfg, self.tcfg
        start = time.perf_counter()
        batch = collate([self.train_examples[i] for i in indices], cfg.pad_id, cfg.bos_id, cfg.eos_id).to(self.device)
        loss = batch_loss(self.model, batch, tcfg["label_smoothing"])
        self.optimizer.zero_grad(set_to_none=True)
        (loss / batch.n_tokens).backward()
        if tcfg["clip_norm"]:
            torch.nn.utils.clip_grad_norm_(self.core.parameters(), tcfg["clip_norm"])
        self.optimizer.step()
        self.scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # so the step's seconds hold its GPU work
        self.progress.step += 1
        self.progress.seconds += time.perf_counter() - start
        self.progress.tokens += batch.n_tokens * self.world
        return loss.item(), batch.n_tokens

    def _after_step(self, loss: float, n_tokens: int) -> None:
        """Progress bar and log every 20 steps, validation and checkpoints on their schedules."""
        step, tcfg = self.progress.step, self.tcfg
        self.window[0] += n_tokens * self.world
        self.bar.update(1)
        if self.rank == 0 and step % 20 == 0:
            rate = self.window[0] / (time.perf_counter() - self.window[1])
            self.window = [0, time.perf_counter()]
            lr = self.scheduler.get_last_lr()[0]
            self.bar.set_postfix(loss=f"{loss / n_tokens:.3f}", tok_s=f"{rate:.0f}", lr=f"{lr:.2e}")
            _log(self.metrics_path, {"step": step, "epoch": self.progress.epoch, "train_loss": loss / n_tokens,
                                     "lr": lr, "tokens_per_s": rate})
        if step % tcfg["valid_every"] == 0:
            self._validate()
            self.progress.stopped = broadcast_flag(self.progress.stopped, self.world)
            self.window[1] = time.perf_counter()
        if step % tcfg["checkpoint_every"] == 0:
            self._checkpoint()

    def _validate(self) -> None:
        """Validate (rank 0), log, keep the best checkpoint, decide early stopping."""
        if self.rank != 0:
            return
        progress = self.progress
        result = validate(self.core, self.valid_examples, self.valid_refs, self.tokenizer, self.tcfg["batch_tokens"])
        result.update(step=progress.step, epoch=progress.epoch, train_seconds=progress.seconds,
                      train_tokens=progress.tokens, hardware=device_name(self.device), torch=torch.__version__)
        _log(self.metrics_path, result)
        tqdm.write(f"step {progress.step}: valid loss {result['valid_loss']:.3f} BLEU {result['valid_bleu']:.2f}")
        if result["valid_bleu"] > progress.best_bleu:
            progress.best_bleu, progress.bad_validations = result["valid_bleu"], 0
            checkpoints.save_best(self.ckpt_dir, self.core)
        else:
            progress.bad_validations += 1
            progress.stopped = progress.bad_validations >= self.tcfg["patience"]
        plot_curves(self.metrics_path, self.out_dir / "curves.png")

    def _checkpoint(self, step_only: bool = False) -> None:
        """step-N.pt (rank 0), and unless ``step_only`` last.pt and pruning."""
        if self.rank != 0:
            return
        state = (self.model, self.optimizer, self.scheduler, asdict(self.progress))
        checkpoints.save(self.ckpt_dir / f"step-{self.progress.step}.pt", *state)
        if not step_only:
            checkpoints.save(self.ckpt_dir / checkpoints.LAST, *state)
            checkpoints.prune(self.ckpt_dir, self.tcfg["keep_checkpoints"])

    def _finish(self) -> Path:
        self.bar.close()
        if self.rank == 0:
            checkpoints.save(self.ckpt_dir / checkpoints.LAST, self.model, self.optimizer, self.scheduler,
                             asdict(self.progress))
            checkpoints.export(self.core, self.out_dir, self.tcfg)
        barrier(self.world)
        if self.world > 1:
            dist.destroy_process_group()
        return self.out_dir / "model"

    def _say(self, message: str) -> None:
        if self.rank == 0:
            print(message, flush=True)


def train(config: dict, rank: int = 0, world: int = 1) -> Path:
    """Run :class:`Trainer` on ``config``; returns the exported model folder."""
    return Trainer(config, rank, world).run()


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
