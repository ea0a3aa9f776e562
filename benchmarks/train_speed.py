"""Training throughput of a config on this machine: target tokens/s and s/epoch.

    python -m benchmarks.train_speed --config train/configs/de-en.yaml --steps 30 --threads 2

Runs real optimiser steps (forward, backward, clipping, AdamW) on the config's data after
a few warm-up steps; needs the run's sentencepiece models (made by train.prepare if absent).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from s2s_demo.config import ModelConfig
from s2s_demo.model import Seq2Seq
from s2s_demo.tokenizer import TokenizerPair
from train.configuration import load_config
from train.data import collate, make_batches, tokenize
from train.prepare import prepare, read_split
from train.train import batch_loss, build_optimizer

from .common import machine_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="train/configs/de-en.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    tcfg, dcfg = config["training"], config["data"]
    out_dir = Path(tcfg["out_dir"])
    if not (out_dir / "data" / "source.model").exists():
        out_dir = Path(tempfile.mkdtemp())
    data_dir = prepare(config, out_dir)
    tokenizer = TokenizerPair.from_folder(data_dir)
    examples = tokenize(read_split(dcfg, dcfg["train_split"]), tokenizer, dcfg["max_len"])
    model_cfg = ModelConfig(src_vocab_size=tokenizer.src_vocab_size, tgt_vocab_size=tokenizer.tgt_vocab_size,
                            **config["model"])
    model = Seq2Seq(model_cfg).train()
    optimizer = build_optimizer(model, tcfg)
    batches = make_batches(examples, tcfg["batch_tokens"], tcfg["seed"], 0)
    epoch_tokens = sum(len(e.tgt) + 1 for e in examples)
    tokens, seconds = 0, 0.0
    for i, idx in enumerate(batches[: args.warmup + args.steps]):
        batch = collate([examples[j] for j in idx], model_cfg.pad_id, model_cfg.bos_id, model_cfg.eos_id)
        start = time.perf_counter()
        loss = batch_loss(model, batch, tcfg["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        (loss / batch.n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["clip_norm"])
        optimizer.step()
        if i >= args.warmup:
            seconds += time.perf_counter() - start
            tokens += batch.n_tokens
    rate = tokens / seconds
    print(machine_line())
    print(f"config: {args.config} ({model.num_parameters():,} parameters, batches of <= "
          f"{tcfg['batch_tokens']} tokens, attention {model_cfg.attention})")
    print(f"training: {rate:.0f} target tokens/s over {args.steps} steps; "
          f"{epoch_tokens:,} target tokens per epoch -> {epoch_tokens / rate:.0f} s per epoch")


if __name__ == "__main__":
    main()
