"""Our side of benchmarks/joey/compare.py: the same decoding figures as joey_decode.py,
through our Python API without traces (what Joey's API returns), one JSON line.

    python -m benchmarks.joey.ours_decode MODEL VAL_SRC TEST_SRC OUT --alpha 1.0 [--dtype bfloat16]

--dtype float32 (default) multiplies in the same precision as Joey NMT; bfloat16 is what
the demo uses on CPUs with native bfloat16.
"""

import argparse
import json
import statistics
import time

import torch

from benchmarks.common import latencies_ms, percentile
from s2s_demo.decoding import search
from s2s_demo.translator import load
from s2s_demo.inference import ARITHMETIC_CHOICES
from s2s_demo.settings import DecodeSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("val_src")
    parser.add_argument("test_src")
    parser.add_argument("out")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arithmetic", "--dtype", choices=ARITHMETIC_CHOICES, default="float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = load(args.model, arithmetic=args.arithmetic)
    with open(args.val_src, encoding="utf-8") as f:
        val = [line.rstrip("\n") for line in f][: args.sentences]
    with open(args.test_src, encoding="utf-8") as f:
        test = [line.rstrip("\n") for line in f]
    methods = {"greedy": DecodeSettings(method="greedy"),
               "beam5": DecodeSettings(method="beam", beam_size=5, length_penalty=args.alpha)}
    result = {"threads": torch.get_num_threads()}
    for name, settings in methods.items():
        def translate_one(text: str) -> str:
            # the same work as Translator.translate_batch on one sentence: ids in, text out
            hyp = search(translator.model, [translator.source_ids(text)], settings)[0].hypotheses[0]
            return translator.tokenizer.decode_target(hyp.tokens)

        times = latencies_ms(translate_one, val)
        result[f"latency_{name}_median_ms"] = statistics.median(times)
        result[f"latency_{name}_p90_ms"] = percentile(times, 90)
        # the demo page's path, with full traces, for reference
        trace_times = latencies_ms(lambda text: translator.translate(text, settings), val, warmup=0)
        result[f"latency_{name}_trace_median_ms"] = statistics.median(trace_times)
    for name, settings in methods.items():
        start = time.perf_counter()
        outputs = translator.translate_batch(test, settings, batch_size=args.batch_size)
        result[f"batched_{name}_s"] = time.perf_counter() - start
        if name == "beam5":
            with open(args.out, "w", encoding="utf-8") as f:
                f.write("\n".join(outputs) + "\n")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
