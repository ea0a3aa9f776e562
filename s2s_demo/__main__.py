"""Command line: ``python -m s2s_demo translate --model assets/models/de-en [FILE]``.

Reads one sentence per line from FILE (or standard input) and writes one translation per
line, batched, without traces.
"""

from __future__ import annotations

import argparse
import sys

from .hub import INFERENCE_DTYPE_CHOICES, ModelLoadError, load, parse_ref
from .runtime import tune_allocator
from .settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2s_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("translate", help="translate lines of text")
    tr.add_argument("file", nargs="?", help="input file (default: standard input)")
    tr.add_argument("--model", default="assets/models/de-en", help="model folder or Hub repo id[@revision]")
    tr.add_argument("--method", default="beam", choices=["greedy", "beam"])
    tr.add_argument("--beam-size", type=int, default=5)
    tr.add_argument("--length-penalty", type=float, help="default: the model card's tuned value")
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--dtype", choices=INFERENCE_DTYPE_CHOICES, default="float32",
                    help="what decoding multiplies in: float32 (exact), bfloat16 (faster on CPUs "
                         "with native bfloat16) or auto")
    args = parser.parse_args(argv)
    tune_allocator()
    try:
        translator = load(*parse_ref(args.model), inference_dtype=args.dtype)
        settings = translator.default_settings().replace(method=args.method, beam_size=args.beam_size)
        if args.length_penalty is not None:
            settings = settings.replace(length_penalty=args.length_penalty)
    except (ModelLoadError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stream = open(args.file, encoding="utf-8") if args.file else sys.stdin
    with stream:
        lines = [line.rstrip("\n") for line in stream]
    for line in translator.translate_batch(lines, settings, batch_size=args.batch_size):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
