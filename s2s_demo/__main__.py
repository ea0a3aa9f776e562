"""Command line.

``python -m s2s_demo translate --model assets/models/de-en [FILE]`` reads one sentence per line
from FILE (or standard input) and writes one translation per line, batched, without traces; a
line it cannot translate (too long, say) gives an empty line and its reason on standard error,
and ``--strict`` makes that exit with status 1.
``python -m s2s_demo deploy --owner NAME --out DIR [--push]`` stages (and uploads) the shipped
models as Hub model repos and the app as a Space (see s2s_demo/deploy.py).
``python -m s2s_demo import-joey CKPT CONFIG.yaml --out DIR`` converts a Joey NMT recurrent
model into a model folder (see s2s_demo/joey.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .hub import parse_ref
from .model_folder import ModelLoadError
from .translator import load
from .inference import ARITHMETIC_CHOICES
from .runtime import tune_allocator
from .settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2s_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("translate", help="translate lines of text")
    tr.add_argument("file", nargs="?", help="input file (default: standard input)")
    tr.add_argument("--model", default="assets/models/de-en", help="model folder or Hub repo id[@revision]")
    tr.add_argument("--method", default="beam", choices=["greedy", "beam", "sample"])
    tr.add_argument("--beam-size", type=int, default=5)
    tr.add_argument("--length-penalty", type=float, help="default: the model card's tuned value")
    for name in SAMPLERS:  # Hugging Face's names, as in the API and the page
        tr.add_argument(f"--{name.replace('_', '-')}", type=int if name == "top_k" else float,
                        help=f"sampling: {name} (default: off)")
    tr.add_argument("--seed", type=int, help="sampling: the random seed (default: a fresh one)")
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--strict", action="store_true",
                    help="exit with status 1 when a line could not be translated (default: 0)")
    tr.add_argument("--arithmetic", "--dtype", choices=ARITHMETIC_CHOICES, default="float32",
                    help="what decoding multiplies in: float32 (exact), bfloat16, float16, int8 or "
                         "auto (see s2s_demo/inference.py)")
    dep = sub.add_parser("deploy", help="publish the shipped models and the Space to the Hub")
    dep.add_argument("--owner", required=True, help="Hub user or organisation that owns the repos")
    dep.add_argument("--space", help="Space repo id (default: OWNER/s2s-demo)")
    dep.add_argument("--out", default="runs/deploy", help="where the staged folders go")
    dep.add_argument("--push", action="store_true", help="upload (needs HF_TOKEN); without it, a dry run")
    imp = sub.add_parser("import-joey", help="convert a Joey NMT recurrent model into a model folder")
    imp.add_argument("checkpoint", help="Joey NMT checkpoint (.ckpt)")
    imp.add_argument("config", help="its Joey NMT YAML config")
    imp.add_argument("--out", required=True, help="the model folder to write")
    args = parser.parse_args(argv)
    if args.command == "import-joey":
        return import_joey_command(args)
    if args.command == "deploy":
        from .deploy import deploy

        deploy(args.owner, Path(args.out), space=args.space, push=args.push)
        return 0
    tune_allocator()
    try:
        translator = load(*parse_ref(args.model), arithmetic=args.arithmetic)
        settings = translator.default_settings().replace(method=args.method, beam_size=args.beam_size)
        if args.length_penalty is not None:
            settings = settings.replace(length_penalty=args.length_penalty)
        chosen = {name: getattr(args, name) for name in (*SAMPLERS, "seed") if getattr(args, name) is not None}
        settings = settings.replace(**chosen)
    except (ModelLoadError, SettingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stream = open(args.file, encoding="utf-8") if args.file else sys.stdin
    with stream:
        lines = [line.rstrip("\n") for line in stream]
    outputs = translator.translate_batch(lines, settings, batch_size=args.batch_size)
    for line in outputs:
        print(line)
    for index, reason in sorted(outputs.errors.items()):
        print(f"line {index + 1} not translated: {reason}", file=sys.stderr)
    return 1 if args.strict and outputs.errors else 0


def import_joey_command(args) -> int:
    from .joey import JoeyImportError, import_joey

    try:
        folder = import_joey(Path(args.checkpoint), Path(args.config), Path(args.out))
        translator = load(folder)  # the folder must load as any other
    except (JoeyImportError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {folder} ({translator.pair}, {translator.model.num_parameters():,} parameters)")
    return 0


SAMPLERS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
            "repetition_penalty")


if __name__ == "__main__":
    sys.exit(main())
