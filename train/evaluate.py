"""Score a model folder (or Hub repo id) on a corpus split with sacreBLEU and chrF.

    python -m train.evaluate --model assets/models/de-en --split test_2016_flickr
    python -m train.evaluate --model assets/models/de-en --split val --method greedy
    python -m train.evaluate --model assets/models/de-en --dtype bfloat16   # the demo's matmuls
"""

from __future__ import annotations

import argparse
import json
import time

import sacrebleu

from s2s_demo.hub import parse_ref
from s2s_demo.translator import load
from s2s_demo.inference import ARITHMETIC_CHOICES
from s2s_demo.runtime import tune_allocator
from s2s_demo.settings import LENGTH_PENALTY_TYPES, DecodeSettings

from .configuration import multi30k_dir
from .prepare import ParallelText, read_split


def evaluate(translator, text: ParallelText, settings: DecodeSettings, batch_size: int = 64) -> dict:
    """Corpus BLEU/chrF of ``translator`` on ``text`` with their sacreBLEU signatures."""
    start = time.perf_counter()
    hyps = translator.translate_batch(text.source, settings, batch_size=batch_size)
    seconds = time.perf_counter() - start
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hyps, [text.target])
    chrf_score = chrf.corpus_score(hyps, [text.target])
    return {"bleu": round(bleu_score.score, 2), "chrf": round(chrf_score.score, 2),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
            "sentences": len(hyps), "seconds": round(seconds, 2), "hypotheses": hyps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder or Hub repo id[@revision]")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--data", default=multi30k_dir(), help="Multi30k folder (default: $S2S_MULTI30K or ../shared/data/multi30k)")
    parser.add_argument("--corpus", default="multi30k", choices=["multi30k", "tsv", "parallel"])
    parser.add_argument("--method", default="beam", choices=["greedy", "beam"])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, help="default: the model card's tuned value")
    parser.add_argument("--length-penalty-type", choices=LENGTH_PENALTY_TYPES, default="gnmt",
                        help="gnmt: ((5 + len) / 6) ** alpha; average: len ** alpha")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=0, help="block repeated n-grams (0: off)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", help="write the translations here, one per line")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--arithmetic", "--dtype", choices=ARITHMETIC_CHOICES, default="float32",
                        help="inference dtype of the decoding matmuls (the cards report float32)")
    args = parser.parse_args(argv)
    tune_allocator()
    ref, revision = parse_ref(args.model)
    translator = load(ref, revision, arithmetic=args.arithmetic)
    cfg = translator.model.config
    text = read_split({"corpus": args.corpus, "path": args.data, "src_lang": cfg.src_lang,
                       "tgt_lang": cfg.tgt_lang}, args.split)
    settings = translator.default_settings().replace(method=args.method, beam_size=args.beam_size,
                                                     length_penalty_type=args.length_penalty_type,
                                                     no_repeat_ngram_size=args.no_repeat_ngram_size)
    if args.length_penalty is not None:
        settings = settings.replace(length_penalty=args.length_penalty)
    result = evaluate(translator, text, settings, args.batch_size)
    hyps = result.pop("hypotheses")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("\n".join(hyps) + "\n")
    result.update(model=args.model, split=args.split, method=args.method,
                  beam_size=args.beam_size if args.method == "beam" else 1,
                  length_penalty=settings.length_penalty, length_penalty_type=settings.length_penalty_type,
                  no_repeat_ngram_size=settings.no_repeat_ngram_size,
                  arithmetic=translator.engine.arithmetic)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} {args.split} {args.method} ({result['arithmetic']}): BLEU {result['bleu']:.2f} chrF {result['chrf']:.2f} "
              f"({result['sentences']} sentences, {result['seconds']:.1f} s)")
        print(f"  {result['bleu_signature']}\n  {result['chrf_signature']}")


if __name__ == "__main__":
    main()
