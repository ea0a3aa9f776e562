"""Build a model folder's nearest-training-example index (``s2s_demo.neighbours``).

    python -m train.neighbours --model assets/models/en-de            # Multi30k from S2S_MULTI30K

Takes ``--sentences`` training pairs (a fixed random sample), encodes them with the model's
float32 weights, keeps every source encoding and the decoder states of the first
``--state-sentences`` of them, reduces both by PCA and writes ``neighbours.safetensors`` and
``neighbours.json.gz`` into the folder, then measures the similarity floors on val (its sources
and the model's own translations of them, as the page measures a visitor's sentence).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from tqdm import tqdm

from s2s_demo.decoding import translate_ids
from s2s_demo.familiarity import quantile
from s2s_demo.translator import load
from s2s_demo.neighbours import INDEX_FILE, TEXTS_FILE, NeighbourIndex, Projection, encode_states
from s2s_demo.translator import MAX_SOURCE_TOKENS

from .configuration import multi30k_dir
from .prepare import read_split

FLOOR_QUANTILE = 0.01
FIT_ROWS = 50_000  # PCA is fitted on at most this many rows


def _batches(pairs: list[tuple[list[int], list[int]]], size: int):
    """Index batches of ``pairs`` (source ids, target ids) sorted by source length."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]))
    for start in range(0, len(order), size):
        yield order[start:start + size]


def encode_pairs(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 64
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sentence encodings (N, 2He) of every pair and, per pair, its decoder states (T_i, Hd),
    T_i = its target length with EOS (the target ids exclude BOS and EOS)."""
    cfg = model.config
    sentences = [None] * len(pairs)
    states = [None] * len(pairs)
    for rows in tqdm(list(_batches(pairs, batch_size)), desc="encoding", unit="batch", leave=False):
        src = [pairs[i][0] for i in rows]
        tgt = [[cfg.bos_id] + pairs[i][1] for i in rows]
        src_t = torch.full((len(rows), max(map(len, src))), cfg.pad_id)
        tgt_t = torch.full((len(rows), max(map(len, tgt))), cfg.pad_id)
        for r, (s, t) in enumerate(zip(src, tgt)):
            src_t[r, :len(s)], tgt_t[r, :len(t)] = torch.tensor(s), torch.tensor(t)
        encoding, out = encode_states(model, src_t, torch.tensor([len(s) for s in src]), tgt_t)
        for r, i in enumerate(rows):
            sentences[i] = encoding[r]
            states[i] = out[r, :len(tgt[r])]
    return torch.stack(sentences), states


def build(translator, sources: list[str], targets: list[str], state_sentences: int, dims: int, state_dims: int,
          val: list[str]) -> NeighbourIndex:
    """The index of the pairs (sources, targets), its floors measured on the ``val`` sources."""
    tok = translator.tokenizer
    pairs = [(tok.encode_source(s), tok.encode_target(t)) for s, t in zip(sources, targets)]
    encodings, states = encode_pairs(translator.model, pairs)
    state_rows = torch.cat(states[:state_sentences])
    generator = torch.Generator().manual_seed(0)
    fit = state_rows[torch.randperm(len(state_rows), generator=generator)[:FIT_ROWS]]
    sentence_projection, state_projection = Projection.fit(encodings, dims), Projection.fit(fit, state_dims)
    lengths = [len(s) for s in states[:state_sentences]]
    # the states as the folder stores them (float16 values): their floor is measured on what is served
    tensors = {"sentence_mean": sentence_projection.mean, "sentence_components": sentence_projection.components,
               "sentence_vectors": sentence_projection(encodings),
               "state_mean": state_projection.mean, "state_components": state_projection.components,
               "state_vectors": state_projection(state_rows).half().float(),
               "state_sentence": torch.arange(len(lengths)).repeat_interleave(torch.tensor(lengths)),
               "state_position": torch.cat([torch.arange(n) for n in lengths])}
    index = NeighbourIndex(tensors, {"sources": sources, "targets": targets, "similarity_floor": 0.0,
                                     "state_floor": 0.0})
    sentence_similarity, state_similarity = nearest_similarities(translator, index, val)
    index.similarity_floor = round(quantile(sentence_similarity, FLOOR_QUANTILE), 4)
    index.state_floor = round(quantile(state_similarity, FLOOR_QUANTILE), 4)
    index.info = {"sentences": len(sources), "state_sentences": min(state_sentences, len(sources)),
                  "states": len(state_rows), "dims": dims, "state_dims": state_dims,
                  "floor_quantile": FLOOR_QUANTILE, "val_sentences": len(val)}
    return index


def nearest_similarities(translator, index: NeighbourIndex, sources: list[str]) -> tuple[list[float], list[float]]:
    """For each source: its similarity to the nearest training sentence, and the mean over the
    decoder states of its translation (the model's default decoding, as the page measures a
    visitor's sentence) of each one's similarity to the nearest training state."""
    tok = translator.tokenizer
    source_ids = [tok.encode_source(s) for s in sources]
    outputs = translate_ids(translator.engine, source_ids, translator.default_settings())
    encodings, states = encode_pairs(translator.model, list(zip(source_ids, outputs)))
    near = [index.similarities(e, s) for e, s in zip(encodings, states)]  # what the page measures
    return [n["sentence"] for n in near], [n["states"] for n in near]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder to write the index into")
    parser.add_argument("--data", default=multi30k_dir(), help="Multi30k folder")
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--state-sentences", type=int, default=5_000)
    parser.add_argument("--dims", type=int, default=64, help="PCA dimensions of the sentence index")
    parser.add_argument("--state-dims", type=int, default=32, help="PCA dimensions of the decoder-state index")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    translator = load(args.model)
    cfg = translator.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    train, val = read_split(data, "train"), read_split(data, "val")
    keep = [i for i, s in enumerate(train.source)
            if s.strip() and len(translator.tokenizer.encode_source(s)) <= MAX_SOURCE_TOKENS]
    chosen = sorted(random.Random(0).sample(keep, min(args.sentences, len(keep))))
    index = build(translator, [train.source[i] for i in chosen], [train.target[i] for i in chosen],
                  args.state_sentences, args.dims, args.state_dims, val.source)
    folder = Path(translator.folder)
    index.save(folder)
    size = sum((folder / name).stat().st_size for name in (INDEX_FILE, TEXTS_FILE)) / 1e6
    print(f"{folder}: {index.info}, floors: sentence {index.similarity_floor}, states {index.state_floor}, "
          f"{size:.1f} MB")


if __name__ == "__main__":
    main()
