"""Sequence-level knowledge distillation (Kim and Rush, 2016): translate a corpus's training
sources with an ensemble of teacher models and write a Multi30k-style corpus folder whose train
split holds the original pairs plus the teachers' translations of the same sources; fine-tune a
student on it with ``train.train`` (``data.path`` = the folder).

    python -m train.distill --teachers assets/models/en-de runs/a/model runs/b/model --score val
    python -m train.distill --teachers assets/models/en-de runs/a/model runs/b/model --out runs/kd-en-de

The teachers must share the sentencepiece models: the first one's tokenizer encodes the source for
all of them, and their distributions are averaged token by token. ``--score SPLIT`` prints the ensemble's beam-5 sacreBLEU on that split, to check that the
teachers together beat the student they are meant to teach. The val and test splits are copied,
unchanged, into the output folder.
"""

from __future__ import annotations

import argparse
import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from s2s_demo.decoding import model_device
from s2s_demo.model_folder import ModelLoadError
from s2s_demo.translator import load
from s2s_demo.inference import ARITHMETIC_CHOICES
from s2s_demo.model import DecoderState
from s2s_demo.settings import DecodeSettings
from s2s_demo.translator import Translator

from .configuration import multi30k_dir
from .evaluate import evaluate
from .prepare import MULTI30K_SPLITS, ParallelText, read_split
from .soup import check_same_tokenizers


@dataclass
class EnsembleState:
    """One DecoderState per member; ``select`` reorders them all alike (beam search)."""

    members: list[DecoderState]
    # the search reads a step's uncalibrated log-probs here; an ensemble's mean has none of its own
    network: torch.Tensor | None = None

    def select(self, rows: torch.Tensor, memory_rows: torch.Tensor | None = None) -> "EnsembleState":
        return EnsembleState([state.select(rows, memory_rows) for state in self.members])


class Ensemble:
    """Models (or their inference engines) of one target vocabulary as one model with
    ``encode``/``step``: a step's distribution is the mean of the members' probabilities,
    its attention the mean of theirs."""

    def __init__(self, models: list) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = list(models)
        self.config = models[0].config
        self.device = model_device(models[0])
        for model in models[1:]:
            if model.config.tgt_vocab_size != self.config.tgt_vocab_size:
                raise ValueError("the ensemble's models have target vocabularies of different sizes")

    @property
    def arithmetic(self) -> str:
        """The members' arithmetic (``load_ensemble`` loads them all with one)."""
        return getattr(self.members[0], "arithmetic", "float32")

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> EnsembleState:
        """src (B, S), lengths (B,) -> each member's initial state."""
        return EnsembleState([model.encode(src, lengths) for model in self.members])

    def step(self, prev_tokens: torch.Tensor, state: EnsembleState
             ) -> tuple[torch.Tensor, torch.Tensor | None, EnsembleState]:
        """prev_tokens (N,) -> log of the mean probabilities (N, V), mean attention (N, S) or None."""
        outputs = [model.step(prev_tokens, member) for model, member in zip(self.members, state.members)]
        log_probs = torch.logsumexp(torch.stack([out[0] for out in outputs]), dim=0) - math.log(len(outputs))
        attns = [out[1] for out in outputs if out[1] is not None]
        attn = torch.stack(attns).mean(0) if attns else None
        return log_probs, attn, EnsembleState([out[2] for out in outputs])


def load_ensemble(folders: list[str], arithmetic: str = "auto") -> Translator:
    """A Translator over the ensemble of the model folders; the first gives the tokenizers and the
    card (its tuned length penalty)."""
    translators = [load(folder, arithmetic=arithmetic) for folder in folders]
    first = translators[0]
    for translator in translators[1:]:
        check_same_tokenizers(Path(translator.folder), Path(first.folder))
    return Translator(first.model, first.tokenizer, folder=first.folder,
                      engine=Ensemble([t.engine for t in translators]))


def distill(teacher: Translator, sources: list[str], settings: DecodeSettings, chunk: int = 512) -> list[str]:
    """The teacher's translation of every source, with a progress bar."""
    outputs: list[str] = []
    for start in tqdm(range(0, len(sources), chunk), desc="distilling", unit="chunk"):
        outputs.extend(teacher.translate_batch(sources[start : start + chunk], settings))
    return outputs


def write_corpus(out: Path, data: dict, train: ParallelText, distilled: list[str],
                 other_splits=MULTI30K_SPLITS[1:]) -> None:
    """A Multi30k-style folder (``{split}.{lang}.gz``): train = the original pairs ``train``, then each
    source with its distilled translation; ``other_splits`` copied as they are (those the corpus has)."""
    if len(distilled) != len(train):
        raise ValueError(f"{len(distilled)} distilled lines for {len(train)} training pairs")
    out.mkdir(parents=True, exist_ok=True)
    _write_split(out, "train", data, ParallelText(train.source * 2, train.target + distilled))
    for split in other_splits:
        try:
            _write_split(out, split, data, read_split(data, split))
        except FileNotFoundError:
            continue


def _write_split(out: Path, split: str, data: dict, text: ParallelText) -> None:
    for lang, lines in ((data["src_lang"], text.source), (data["tgt_lang"], text.target)):
        with gzip.open(out / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", nargs="+", required=True, help="model folders or Hub repo ids")
    parser.add_argument("--data", default=multi30k_dir(), help="Multi30k folder")
    parser.add_argument("--out", type=Path, help="write the distilled corpus folder here")
    parser.add_argument("--score", metavar="SPLIT", help="print the ensemble's beam-5 BLEU on this split")
    parser.add_argument("--length-penalty", type=float, default=None, help="default: the first teacher's")
    parser.add_argument("--arithmetic", "--dtype", default="bfloat16", choices=ARITHMETIC_CHOICES)
    parser.add_argument("--limit", type=int, default=None, help="distill only the first N training pairs")
    args = parser.parse_args()
    if not args.out and not args.score:
        parser.error("nothing to do: give --out, --score or both")
    try:
        teacher = load_ensemble(args.teachers, args.arithmetic)
    except (ModelLoadError, ValueError) as err:
        parser.error(str(err))
    settings = teacher.default_settings().replace(method="beam", beam_size=5)
    if args.length_penalty is not None:
        settings = settings.replace(length_penalty=args.length_penalty)
    cfg = teacher.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    if args.limit:
        data["train_limit"] = args.limit
    if args.score:
        result = evaluate(teacher, read_split(data, args.score), settings)
        print(f"ensemble of {len(args.teachers)} on {args.score}, beam 5, alpha {settings.length_penalty} "
              f"({args.arithmetic}): BLEU {result['bleu']:.2f} chrF {result['chrf']:.2f}\n  {result['bleu_signature']}")
    if args.out:
        train = read_split(data, "train")
        write_corpus(args.out, data, train, distill(teacher, train.source, settings))
        print(f"wrote {args.out}: {2 * len(train)} training pairs ({len(train)} distilled)")


if __name__ == "__main__":
    main()
