"""How far each decoding arithmetic moves the numbers the page shows, and BLEU.

    python -m benchmarks.arithmetic --model assets/models/en-de [--sentences 200] [--bleu]

For the first --sentences val sentences, the float32 engine decodes greedily (the page's
translation); then every arithmetic this CPU runs steps the same model along that output
(``InferenceEngine.encode``/``step``, the path every search calls). At each step the page
shows the top-10 of the softmax and the chosen token: the figure is the largest
|p - p_float32| over those tokens (the top-10 of either arithmetic and the chosen one), over
all steps and sentences, with the 99.9th percentile and how many greedy outputs stay the
same. ``--bleu``: test_2016_flickr beam 5 (the model's tuned length penalty) in each, the
README's BLEU. Acceptance: every probability within 0.01 and BLEU within 0.2 of float32.
"""

from __future__ import annotations

import argparse
import time

import sacrebleu
import torch

from s2s_demo.decoding import search, teacher_forced_log_probs
from s2s_demo.hub import parse_ref
from s2s_demo.translator import load
from s2s_demo.inference import ARITHMETICS, InferenceEngine, unsupported_reason
from s2s_demo.settings import DecodeSettings
from train.configuration import multi30k_dir
from train.prepare import read_split

from .common import machine_line, percentile

TOP_N = 10


def step_probs(engine, source: list[int], target: list[int]) -> torch.Tensor:
    """Probabilities (T, V) at each step of ``target`` (ids ending with EOS) given ``source``."""
    return teacher_forced_log_probs(engine, source, target).exp()


def page_differences(exact: torch.Tensor, other: torch.Tensor, target: list[int]) -> list[float]:
    """Per step, the largest |difference| over the tokens the page shows (top-N of either, chosen)."""
    diffs = []
    for t, token in enumerate(target):
        ids = torch.cat([exact[t].topk(TOP_N).indices, other[t].topk(TOP_N).indices, torch.tensor([token])])
        diffs.append((exact[t, ids] - other[t, ids]).abs().max().item())
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bleu", action="store_true", help="also score test_2016_flickr beam 5 in each")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = load(*parse_ref(args.model), arithmetic="float32")
    cfg = translator.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    val = read_split(data, "val").source[: args.sentences]
    print(machine_line())
    engines = {"float32": translator.engine}
    for arithmetic in ARITHMETICS[1:]:
        reason = unsupported_reason(arithmetic)
        if reason:
            print(f"skipped {reason}")
        else:
            engines[arithmetic] = InferenceEngine(translator.model, arithmetic)
    greedy = DecodeSettings(method="greedy")
    sources = [translator.source_ids(text) for text in val]
    outputs = [search(translator.engine, [ids], greedy)[0].hypotheses[0].tokens for ids in sources]
    exact = [step_probs(translator.engine, s, t) for s, t in zip(sources, outputs)]
    steps = sum(len(t) for t in outputs)
    print(f"model: {args.model}; {len(val)} val sentences, {steps} greedy steps; page tokens per step: "
          f"the top-{TOP_N} of either arithmetic and the chosen one")
    for name, engine in list(engines.items())[1:]:
        diffs = [d for s, t, e in zip(sources, outputs, exact) for d in page_differences(e, step_probs(engine, s, t), t)]
        same = sum(search(engine, [s], greedy)[0].hypotheses[0].tokens == t for s, t in zip(sources, outputs))
        print(f"{name:9s} largest |p - p_float32| {max(diffs):.4f}, 99.9th percentile "
              f"{percentile(diffs, 99.9):.4f}, median {percentile(diffs, 50):.5f}; steps over 0.01: "
              f"{sum(d > 0.01 for d in diffs)} of {len(diffs)}; same greedy output {same} of {len(val)}")
    if args.bleu:
        test = read_split(data, "test_2016_flickr")
        settings = translator.default_settings()
        for name, engine in engines.items():
            translator.engine = engine
            start = time.perf_counter()
            hyps = translator.translate_batch(test.source, settings)
            bleu = sacrebleu.corpus_bleu(hyps, [test.target]).score
            print(f"{name:9s} test_2016_flickr beam {settings.beam_size} (alpha {settings.length_penalty}): "
                  f"BLEU {bleu:.2f} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
