"""Tokenised parallel data, length-bucketed batches by token count, padding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import sentencepiece as spm

from s2s_demo.tokenizer import SubwordSampling, TokenizerPair

from .prepare import ParallelText


@dataclass
class Example:
    src: list[int]   # source ids ending with EOS
    tgt: list[int]   # target ids without BOS/EOS


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random choices (batch order, sampled segmentation), so that
    resume can rebuild an epoch from (seed, epoch) alone."""
    return seed * 1000 + epoch


def tokenize(text: ParallelText, tokenizer: TokenizerPair, max_len: int | None = None,
             sampling: SubwordSampling | None = None, seed: int = 0) -> list[Example]:
    """Encode every pair; pairs longer than max_len on either side are dropped
    (only for training: evaluation keeps every sentence). With ``sampling``, both sides
    get a sampled segmentation that depends only on ``seed`` (resume rebuilds it)."""
    if sampling is not None:
        spm.set_random_generator_seed(seed)
    examples = []
    for src, tgt in zip(text.source, text.target):
        ex = Example(tokenizer.encode_source(src, sampling), tokenizer.encode_target(tgt, sampling))
        if not ex.src or (max_len and (len(ex.src) > max_len or len(ex.tgt) + 1 > max_len)):
            continue
        examples.append(ex)
    return examples


def make_batches(examples: list[Example], batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Index batches of similar length, each holding at most ``batch_tokens`` padded
    target tokens; the order depends only on (seed, epoch), so resume can rebuild it."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    noisy = torch.rand(len(examples), generator=gen).tolist()
    # sort by length with a little noise so batches differ between epochs
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].tgt) + noisy[i] * 2,
                                                        len(examples[i].src)))
    batches, current, longest = [], [], 0
    for i in order:
        size = max(len(examples[i].tgt) + 1, len(examples[i].src))
        if current and max(longest, size) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


@dataclass
class Batch:
    """src (B, S), src_lengths (B,), tgt_in (B, T) = BOS + target, tgt_out (B, T) =
    target + EOS, padded with pad_id; ``n_tokens`` counts real target tokens."""

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    n_tokens: int

    def to(self, device: torch.device) -> "Batch":
        if device.type == "cpu":
            return self
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.src), self.src_lengths, move(self.tgt_in), move(self.tgt_out), self.n_tokens)


def collate(examples: list[Example], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    B = len(examples)
    S = max(len(e.src) for e in examples)
    T = max(len(e.tgt) for e in examples) + 1
    src = torch.full((B, S), pad_id, dtype=torch.long)
    tgt_in = torch.full((B, T), pad_id, dtype=torch.long)
    tgt_out = torch.full((B, T), pad_id, dtype=torch.long)
    for i, e in enumerate(examples):
        src[i, : len(e.src)] = torch.tensor(e.src)
        tgt_in[i, : len(e.tgt) + 1] = torch.tensor([bos_id] + e.tgt)
        tgt_out[i, : len(e.tgt) + 1] = torch.tensor(e.tgt + [eos_id])
    lengths = torch.tensor([len(e.src) for e in examples])
    return Batch(src, lengths, tgt_in, tgt_out, int((tgt_out != pad_id).sum()))
