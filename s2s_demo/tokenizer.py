"""The sentencepiece pair of a model: text <-> ids, and pieces for display."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

SOURCE_FILE = "source.model"
TARGET_FILE = "target.model"
# Fixed so that every model folder agrees with ModelConfig's defaults.
SPECIAL_IDS = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3}
SIDE_RATIO = 0.85


def normalize_text(text: str) -> str:
    """NFC, control characters as spaces, runs of white space as one space."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


@dataclass(frozen=True)
class SubwordSampling:
    """Subword regularization (Kudo, 2018): sample a segmentation from the ``nbest_size``
    best of the unigram model with probabilities sharpened by ``alpha``, instead of always
    the single best, so the model sees each word split several ways during training."""

    alpha: float
    nbest_size: int = 64


def _encode(processor: spm.SentencePieceProcessor, text: str, sampling: SubwordSampling | None) -> list[int]:
    if sampling is None:
        return processor.encode(text)
    return processor.encode(text, enable_sampling=True, alpha=sampling.alpha, nbest_size=sampling.nbest_size)


class TokenizerPair:
    """Source and target sentencepiece models (the same file twice for a joint vocabulary)."""

    def __init__(self, source_path: str | Path, target_path: str | Path) -> None:
        self.source = spm.SentencePieceProcessor(model_file=str(source_path))
        self.target = spm.SentencePieceProcessor(model_file=str(target_path))
        self.eos_id = self.target.eos_id()

    @classmethod
    def from_folder(cls, folder: str | Path) -> "TokenizerPair":
        folder = Path(folder)
        return cls(folder / SOURCE_FILE, folder / TARGET_FILE)

    def encode_source(self, text: str, sampling: SubwordSampling | None = None) -> list[int]:
        """Source ids ending with EOS, which marks the sentence end for the encoder.
        ``sampling`` draws one segmentation at random (training only)."""
        return _encode(self.source, text, sampling) + [self.source.eos_id()]

    def encode_target(self, text: str, sampling: SubwordSampling | None = None) -> list[int]:
        """Target ids without BOS/EOS; training adds them."""
        return _encode(self.target, text, sampling)

    def decode_target(self, ids: Iterable[int]) -> str:
        return self.target.decode([i for i in ids if i != self.eos_id])

    def unknown_source_characters(self, text: str) -> list[str]:
        """The characters of ``text`` the source vocabulary cannot spell: each becomes ``<unk>``."""
        unknown = self.source.unk_id()
        return [c for c in dict.fromkeys(text) if not c.isspace() and unknown in self.source.encode(c)]

    def language_side(self, text: str) -> str:
        """"source" or "target": which side's language ``text`` reads as. Each tokenizer spells its
        own language in few, long pieces: a text the other side spells in fewer than
        ``SIDE_RATIO`` times the pieces is that side's (on Multi30k test sentences the ratio is
        1.3-3.4 for the source language and 0.29-0.75 for the other). Short or mixed texts, and
        models with one joint vocabulary, read as "source"."""
        source, target = len(self.source.encode(text)), len(self.target.encode(text))
        return "target" if target < SIDE_RATIO * source else "source"

    def target_unknown_share(self, text: str) -> float:
        """The share of ``text``'s target pieces that are ``<unk>`` (characters the target
        vocabulary cannot spell)."""
        ids = self.target.encode(text)
        return sum(i == self.target.unk_id() for i in ids) / max(len(ids), 1)

    def source_pieces(self, ids: Iterable[int]) -> list[str]:
        return self.source.id_to_piece(list(ids))  # one call for the list: ~2x cheaper

    def target_pieces(self, ids: Iterable[int]) -> list[str]:
        return self.target.id_to_piece(list(ids))

    def target_id(self, piece: str) -> int:
        """The id of a target piece; the unknown id where the piece is not in the vocabulary."""
        return self.target.piece_to_id(piece)

    @property
    def src_vocab_size(self) -> int:
        return self.source.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.target.get_piece_size()


def train_sentencepiece(lines: Iterable[str], model_prefix: str | Path, vocab_size: int,
                        model_type: str = "unigram") -> Path:
    """Train a sentencepiece model on ``lines``; returns the path of the ``.model`` file."""
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)),
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
        **SPECIAL_IDS,
    )
    return Path(f"{model_prefix}.model")
