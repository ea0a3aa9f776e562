"""What the explainer views cost beside the translation they explain.

    python -m benchmarks.explain --model assets/models/en-de [--sentences 20] [--threads 1]

On test_2016 sentences of 13-17 source pieces (Multi30k from S2S_MULTI30K): the median time of
a translation (``Translator.translate``, the model's tuned beam search) with and without the
neighbour index (the familiarity note's nearest-example check), with the LSTM's internals, the
attribution (input x gradient and integrated gradients at the default steps; and its largest
completeness gap), and the nearest training examples; the index's size on disk.
"""

from __future__ import annotations

import argparse
import statistics
import torch

from s2s_demo.translator import load
from s2s_demo.neighbours import INDEX_FILE, TEXTS_FILE
from train.configuration import multi30k_dir
from train.prepare import read_split

from .common import latencies_ms, machine_line


def _median_ms(call, texts: list[str]) -> float:
    return statistics.median(latencies_ms(call, texts, warmup=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="the app serves each request on 1")
    parser.add_argument("--arithmetic", "--dtype", default="auto", help="decoding arithmetic, as the app's S2S_ARITHMETIC")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    translator = load(args.model, arithmetic=args.arithmetic)
    cfg = translator.model.config
    test = read_split({"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang},
                      "test_2016_flickr")
    texts = [s for s in test.source if 13 <= len(translator.tokenizer.encode_source(s)) <= 17][: args.sentences]
    print(machine_line())
    print(f"{args.model} ({translator.engine.arithmetic}), {len(texts)} test_2016 sentences of 13-17 source pieces")
    index = translator.neighbours
    figures = {"translate": _median_ms(translator.translate, texts)}
    translator.neighbours = None
    figures["translate without the neighbour index"] = _median_ms(translator.translate, texts)
    translator.neighbours = index
    figures["translate with internals"] = _median_ms(lambda t: translator.translate(t, internals=True), texts)
    gaps = []
    figures["attribution (incl. search)"] = _median_ms(
        lambda t: gaps.append(translator.attribute(t)["completeness"]["max_relative_gap"]), texts)
    if index is not None:
        figures["nearest examples (incl. search)"] = _median_ms(translator.nearest_examples, texts)
    for name, ms in figures.items():
        print(f"  {name:40s} {ms:8.1f} ms (median)")
    print(f"  integrated gradients' largest completeness gap: {100 * max(gaps):.2f}% (median "
          f"{100 * statistics.median(gaps):.2f}%)")
    if index is not None:
        size = sum((translator.folder / name).stat().st_size for name in (INDEX_FILE, TEXTS_FILE)) / 1e6
        print(f"  neighbour index: {index.info.get('sentences')} sentences, {len(index.state_points)} decoder states, "
              f"{size:.1f} MB on disk")


if __name__ == "__main__":
    main()
