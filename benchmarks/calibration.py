"""Do the probabilities the page shows mean what they say? Three figures, through the public API.

    python -m benchmarks.calibration --model assets/models/en-de --split test_2016_flickr --n 200 [--png out.png]

For the first ``--n`` sentences of ``--split``, each reference translation is forced as the
prefix of a greedy translation (``Translator.translate`` with ``forced_prefix``, as the page's
what-if does) and every step's ``model_top`` is read from the Trace:

- ECE of the top-1 token (15 equal-width bins): |accuracy - confidence| weighted by bin size,
  accuracy being whether the top token is the reference token;
- the tail: the mean probability outside the top 10, beside the share of reference tokens the
  model ranks outside its top 10 (a calibrated model leaves as much mass there as that);
- junk: the share of temperature-1 samples (no cut; the first ``--samples`` sentences x
  ``--seeds`` seeds) with a token of model probability < 0.001, beside the share of reference
  translations with such a token.

``--png`` draws the reliability diagram (accuracy against confidence per bin).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from s2s_demo.hub import parse_ref# noqa: E402
from s2s_demo.translator import load# noqa: E402
from s2s_demo.inference import ARITHMETIC_CHOICES# noqa: E402
from s2s_demo.settings import DecodeSettings  # noqa: E402
from train.calibration import ECE_BINS, JUNK_PROB, expected_calibration_error  # noqa: E402
from train.configuration import multi30k_dir  # noqa: E402
from train.prepare import read_split  # noqa: E402

from .common import machine_line  # noqa: E402


def forced_steps(translator, sources: list[str], targets: list[str]) -> list[list[dict]]:
    """Per sentence, the trace steps of its reference forced (ids, EOS last)."""
    out = []
    for source, target in tqdm(list(zip(sources, targets)), desc="references", unit="sentence", leave=False):
        ids = translator.tokenizer.encode_target(target) + [translator.model.config.eos_id]
        settings = DecodeSettings(method="greedy", forced_prefix=tuple(ids), max_length=len(ids) + 1,
                                  max_length_ratio=10.0)
        trace = translator.translate(source, settings).to_dict()
        out.append(trace["steps"])
    return out


def figures(sentences: list[list[dict]]) -> dict:
    """ECE, confidences and accuracies, tail and the references' junk share from forced steps."""
    confidence, correct, outside, ref_outside, junk_refs = [], [], [], [], 0
    for steps in sentences:
        junk_refs += any(step["model_prob"] < JUNK_PROB for step in steps)
        for step in steps:
            top = step["model_top"]
            confidence.append(top[0]["prob"])
            correct.append(top[0]["token_id"] == step["token_id"])
            outside.append(1.0 - sum(c["prob"] for c in top[:10]))
            ref_outside.append(all(c["token_id"] != step["token_id"] for c in top[:10]))
    conf, ok = torch.tensor(confidence), torch.tensor(correct)
    return {"ece": expected_calibration_error(conf, ok), "confidence": conf.mean().item(),
            "accuracy": ok.float().mean().item(), "outside_top10": sum(outside) / len(outside),
            "reference_outside_top10": sum(ref_outside) / len(ref_outside),
            "junk_references": junk_refs / len(sentences), "positions": len(confidence),
            "bins": _bins(conf, ok), "ece_noise": calibrated_ece_noise(conf)}


def calibrated_ece_noise(conf: torch.Tensor, draws: int = 500) -> tuple[float, float]:
    """The ECE a perfectly calibrated model would show at these confidences (N,) and this N:
    each position correct with probability equal to its confidence, ``draws`` times; the mean
    and the 90th percentile. An ECE within this is indistinguishable from calibrated."""
    generator = torch.Generator().manual_seed(0)
    eces = torch.tensor([expected_calibration_error(conf, torch.rand(conf.shape, generator=generator) < conf)
                         for _ in range(draws)])
    return eces.mean().item(), eces.quantile(0.9).item()


def _bins(conf: torch.Tensor, ok: torch.Tensor) -> list[tuple[float, float, int]]:
    index = (conf * ECE_BINS).long().clamp(max=ECE_BINS - 1)
    return [(conf[index == b].mean().item(), ok[index == b].float().mean().item(), int((index == b).sum()))
            for b in range(ECE_BINS) if (index == b).any()]


def junk_samples(translator, sources: list[str], seeds: int) -> float:
    """Share of temperature-1 samples with a token of model probability < JUNK_PROB."""
    junk = total = 0
    for source in tqdm(sources, desc="samples", unit="sentence", leave=False):
        for seed in range(seeds):
            trace = translator.translate(source, DecodeSettings(method="sample", seed=seed))
            junk += any(step.model_prob < JUNK_PROB for step in trace.steps)
            total += 1
    return junk / total


def reliability_png(bins: list[tuple[float, float, int]], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], color="#9ca3af", lw=1, label="calibrated")
    ax.plot([b[0] for b in bins], [b[1] for b in bins], "o-", color="#1d4ed8", label="this model")
    ax.set_xlabel("confidence of the top token")
    ax.set_ylabel("accuracy (top token = reference)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--samples", type=int, default=100, help="sentences to sample")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--arithmetic", "--dtype", choices=ARITHMETIC_CHOICES, default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--png", help="write the reliability diagram here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line())
    translator = load(*parse_ref(args.model), arithmetic=args.arithmetic)
    cfg = translator.model.config
    text = read_split({"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang,
                       "tgt_lang": cfg.tgt_lang}, args.split)
    sources, targets = text.source[: args.n], text.target[: args.n]
    f = figures(forced_steps(translator, sources, targets))
    samples = junk_samples(translator, sources[: args.samples], args.seeds)
    calibration = translator.model.calibration.to_dict() if not translator.model.calibration.identity else "none"
    print(f"{args.model} {args.split}[:{args.n}] ({f['positions']} positions, {args.arithmetic}, calibration {calibration})")
    print(f"ECE of the top-1 token: {f['ece']:.4f} (confidence {f['confidence']:.3f}, accuracy {f['accuracy']:.3f}); "
          f"a perfectly calibrated model at these confidences and {f['positions']} positions: "
          f"{f['ece_noise'][0]:.4f} on average, below {f['ece_noise'][1]:.4f} 9 times in 10")
    print(f"mass outside the top 10: {f['outside_top10']:.4f}; reference tokens outside the top 10: "
          f"{f['reference_outside_top10']:.4f}; gap {f['outside_top10'] - f['reference_outside_top10']:+.4f}")
    print(f"temperature-1 samples with a token of p < {JUNK_PROB}: {samples:.3f} "
          f"({min(args.samples, len(sources))} sentences x {args.seeds} seeds); references with one: "
          f"{f['junk_references']:.3f}")
    if args.png:
        reliability_png(f["bins"], f"{args.model.rstrip('/').split('/')[-1]}, {args.split}[:{args.n}]", args.png)
        print(f"reliability diagram: {args.png}")


if __name__ == "__main__":
    main()
