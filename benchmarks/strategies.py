"""Each decoding strategy of the Strategies tab on a test set: corpus BLEU and chrF.

    python -m benchmarks.strategies --model assets/models/en-de --split test_2016_flickr --n 200 --samples 8

Runs ``s2s_demo.strategies.compare_strategies`` (the code behind the tab and /strategies) on the
first ``--n`` sentences, one seed per sentence (its index), beam size 5 and the model's tuned
length penalty; the samplers' rows are their first sample, MBR chooses among the epsilon
samples. Prints a markdown table: strategy, BLEU, chrF (sacreBLEU corpus scores, cased), mean
model log-prob, and seconds.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import sacrebleu  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from s2s_demo.hub import parse_ref  # noqa: E402
from s2s_demo.strategies import DEFAULT_SAMPLES, STRATEGIES, compare_strategies  # noqa: E402
from s2s_demo.translator import load  # noqa: E402
from train.configuration import multi30k_dir  # noqa: E402
from train.prepare import read_split  # noqa: E402

from .common import machine_line  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line())
    translator = load(*parse_ref(args.model))
    cfg = translator.model.config
    text = read_split({"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang,
                       "tgt_lang": cfg.tgt_lang}, args.split)
    sources, references = text.source[: args.n], text.target[: args.n]
    settings = translator.default_settings()
    outputs = {name: [] for name in STRATEGIES}
    logprobs = {name: 0.0 for name in STRATEGIES}
    start = time.perf_counter()
    for index, source in enumerate(tqdm(sources, desc="strategies", unit="sentence")):
        result = compare_strategies(translator, source, settings, args.samples, seed=index)
        for row in result["rows"]:
            outputs[row["strategy"]].append(row["translation"])
            logprobs[row["strategy"]] += row["logprob"] / len(sources)
    seconds = time.perf_counter() - start
    print(f"{args.model} {args.split}[:{args.n}], beam size {settings.beam_size}, length penalty "
          f"{settings.length_penalty}, {args.samples} samples per sampler, {seconds:.0f} s in all")
    print("| strategy | BLEU | chrF | mean log-prob |\n|---|---:|---:|---:|")
    for name in STRATEGIES:
        bleu = sacrebleu.corpus_bleu(outputs[name], [references]).score
        chrf = sacrebleu.corpus_chrf(outputs[name], [references]).score
        print(f"| {name} | {bleu:.2f} | {chrf:.2f} | {logprobs[name]:.2f} |")


if __name__ == "__main__":
    main()
