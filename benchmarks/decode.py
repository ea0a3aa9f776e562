"""Decoding speed: per-sentence latency with full traces, and batched throughput.

    python -m benchmarks.decode --model assets/models/de-en --threads 2 [--dtype float32]

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
    parser.add_argument("--dtype", choices=INFERENCE_DTYPE_CHOICES, default="auto",
                        help="inference dtype of the decoding matmuls (auto: what the demo uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = load(*parse_ref(args.model), inference_dtype=args.dtype)
    cfg = translator.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    val = read_split(data, "val").source[: args.sentences]
    print(machine_line())
    dtype = translator.model.inference_dtype_name
    print(f"model: {args.model} ({translator.model.num_parameters():,} parameters), "
          f"inference dtype {dtype} (--dtype {args.dtype})")
    lp = translator.default_settings().length_penalty
    for name, settings in (("greedy", DecodeSettings(method="greedy")),
                           ("beam5", DecodeSettings(method="beam", beam_size=5, length_penalty=lp))):
        times = latencies_ms(lambda text: translator.translate(text, settings), val)
        print(f"latency {name:6s} (full trace, batch 1, {len(val)} val sentences): "
              f"median {statistics.median(times):.1f} ms, p90 {percentile(times, 90):.1f} ms")
    test = read_split(data, "test_2016_flickr").source
    for name, settings in (("greedy", DecodeSettings(method="greedy")),
                           ("beam5", DecodeSettings(method="beam", beam_size=5, length_penalty=lp))):
        start = time.perf_counter()
        translator.translate_batch(test, settings, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        print(f"batched {name:6s} (no traces, batch {args.batch_size}, {len(test)} test_2016 sentences): "
              f"{seconds:.1f} s, {len(test) / seconds:.1f} sentences/s")


if __name__ == "__main__":
    main()
