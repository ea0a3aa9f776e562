"""Shared fixtures: a toy parallel corpus, its tokenizers and small models."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch

import socket
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# huggingface_hub reads its endpoint and cache when imported, so the loopback Hub
# (tests/hub_server.py) gets its address before anything imports it.
HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="s2s-hub-cache-")
os.environ.pop("HF_HUB_OFFLINE", None)

from s2s_demo.config import ModelConfig  # noqa: E402
from s2s_demo.model import Seq2Seq  # noqa: E402
from s2s_demo.tokenizer import TokenizerPair, train_sentencepiece  # noqa: E402
from s2s_demo.translator import Translator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The tests read the committed excerpt (tests/data/multi30k/README.md), never a folder beside
# the clone; benchmarks and tools they start inherit the setting.
MULTI30K = ROOT / "tests" / "data" / "multi30k"
os.environ["S2S_MULTI30K"] = str(MULTI30K)


def _short_pairs(n: int) -> tuple[list[str], list[str]]:
    """The first n Multi30k de-en training pairs with at most 8 English words."""
    with gzip.open(MULTI30K / "train.de.gz", "rt", encoding="utf-8") as f_de, \
            gzip.open(MULTI30K / "train.en.gz", "rt", encoding="utf-8") as f_en:
        pairs = [(d.strip(), e.strip()) for d, e in zip(f_de, f_en) if len(e.split()) <= 8]
    pairs = pairs[:n]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def corpus_pairs(corpus: Path, split: str) -> tuple[list[str], list[str]]:
    """The (German sources, English targets) of one split of a corpus folder such as ``toy_corpus``."""
    return tuple((corpus / f"{split}.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("de", "en"))


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> Path:
    """A 'parallel' corpus folder: train.de/train.en (24 pairs) and val.de/val.en (8)."""
    folder = tmp_path_factory.mktemp("toy_corpus")
    de, en = _short_pairs(32)
    for split, rows in (("train", slice(0, 24)), ("val", slice(24, 32))):
        (folder / f"{split}.de").write_text("\n".join(de[rows]) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(en[rows]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def toy_tokenizer_dir(tmp_path_factory, toy_corpus) -> Path:
    folder = tmp_path_factory.mktemp("toy_tok")
    for lang, name in (("de", "source"), ("en", "target")):
        lines = (toy_corpus / f"train.{lang}").read_text(encoding="utf-8").splitlines()
        train_sentencepiece(lines, folder / name, vocab_size=120)
    return folder


def make_model(tokenizer: TokenizerPair, seed: int = 0, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    params = dict(src_vocab_size=tokenizer.src_vocab_size, tgt_vocab_size=tokenizer.tgt_vocab_size,
                  emb_size=16, enc_hidden_size=16, dec_hidden_size=32, dropout=0.0, emb_dropout=0.0,
                  src_lang="de", tgt_lang="en")
    params.update(overrides)
    return Seq2Seq(ModelConfig(**params)).eval()


@pytest.fixture(scope="session")
def toy_tokenizer(toy_tokenizer_dir) -> TokenizerPair:
    return TokenizerPair.from_folder(toy_tokenizer_dir)


@pytest.fixture(scope="session")
def random_translator(toy_tokenizer) -> Translator:
    """An untrained (random) attention model: its distributions are arbitrary but valid,
    which is all the decoding invariants need."""
    return Translator(make_model(toy_tokenizer, seed=3), toy_tokenizer)


@pytest.fixture(scope="session")
def toy_sentences(toy_corpus) -> list[str]:
    return (toy_corpus / "train.de").read_text(encoding="utf-8").splitlines()
