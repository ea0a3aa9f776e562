"""Decoding speed: per-sentence latency with full traces, and batched throughput.

    python -m benchmarks.decode --model assets/models/de-en --threads 2 [--dtype float32] [--rounds 5]

Latency: the first --sentences sentences of Multi30k val, one at a time, through
Translator.translate (the page's code path: full traces), greedy and beam 5.
Throughput: the whole test_2016_flickr split through translate_batch (no traces).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from s2s_demo.hub import INFERENCE_DTYPE_CHOICES, load, parse_ref
from s2s_demo.runtime import OPT_OUT_ENV, tune_allocator
from s2s_demo.settings import DecodeSettings
from train.prepare import read_split

from .common import latencies_ms, machine_line, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/de-en")
    parser.add_argument("--data", default="../shared/data/multi30k")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="the targets are for 2 cores")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1,
                        help="latency passes over the sentences (each round's median is printed too)")
    parser.add_argument("--dtype", choices=INFERENCE_DTYPE_CHOICES, default="auto",
                        help="inference dtype of the decoding matmuls (auto: what the demo uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tuned = tune_allocator()  # as the app does
    translator = load(*parse_ref(args.model), inference_dtype=args.dtype)
    cfg = translator.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    val = read_split(data, "val").source[: args.sentences]
    print(machine_line())
    dtype = translator.model.inference_dtype_name
    print(f"model: {args.model} ({translator.model.num_parameters():,} parameters), "
          f"inference dtype {dtype} (--dtype {args.dtype}); malloc thresholds "
          f"{'fixed' if tuned else f'glibc default ({OPT_OUT_ENV}=0 or not glibc)'}")
    lp = translator.default_settings().length_penalty
    latency_settings = {"greedy": DecodeSettings(method="greedy"),
                        "beam5": DecodeSettings(method="beam", beam_size=5, length_penalty=lp)}
    times = {name: [] for name in latency_settings}
    for round_ in range(args.rounds):  # rounds interleave the methods: a VM's speed drifts
        for name, settings in latency_settings.items():
            round_times = latencies_ms(lambda text: translator.translate(text, settings), val)
            times[name].extend(round_times)
            if args.rounds > 1:
                print(f"  round {round_ + 1} {name:6s}: median {statistics.median(round_times):.1f} ms")
    for name, values in times.items():
        print(f"latency {name:6s} (full trace, batch 1, {len(val)} val sentences x {args.rounds} rounds): "
              f"median {statistics.median(values):.1f} ms, p90 {percentile(values, 90):.1f} ms")
    test = read_split(data, "test_2016_flickr").source
    for name, settings in latency_settings.items():
        start = time.perf_counter()
        translator.translate_batch(test, settings, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        print(f"batched {name:6s} (no traces, batch {args.batch_size}, {len(test)} test_2016 sentences): "
              f"{seconds:.1f} s, {len(test) / seconds:.1f} sentences/s")


if __name__ == "__main__":
    main()
