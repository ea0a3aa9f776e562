"""Score processors: what turns a step's model log-probs into the scores a method picks from.

As in Hugging Face's ``LogitsProcessorList``, a decoding step runs an ordered list of
processors, each mapping (N, V) scores to (N, V) scores:

1. constraints, which only remove tokens (set them to -inf) and keep the model's log-prob
   of the rest: banned tokens (BOS, PAD, and UNK unless allowed), the minimum length,
   n-gram blocking, the length cap (its last step may only end the sentence), the forced
   prefix (its steps may only write the forced token, whatever the constraints before said);
2. for sampling only, the warpers: temperature, top-k, top-p, then renormalisation.

What the list returns is the distribution the method used (renormalised for the trace when
it is not already): a trace step's ``top`` and ``prob`` are read from it, and beam search
adds its values (the model's own log-probs, since constraints never rescale) to the
hypotheses' scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .settings import DecodeSettings

NEG_INF = float("-inf")


@dataclass
class StepContext:
    """What a processor may read at step ``t``: the model's log-probs ``raw`` (N, V), each
    row's most output tokens ``caps`` (N,) and, for n-gram blocking, each row's tokens so far."""

    t: int
    raw: torch.Tensor
    caps: torch.Tensor
    row_tokens: list[list[int]]


class BanTokens:
    """Tokens no method may write at any step (one additive (V,) mask)."""

    def __init__(self, token_ids: list[int], vocab_size: int, device) -> None:
        self.mask = torch.zeros(vocab_size, device=device)
        self.mask[token_ids] = NEG_INF

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores + self.mask


class MinLength:
    """No EOS before step ``min_length``."""

    def __init__(self, eos: int, min_length: int) -> None:
        self.eos, self.min_length = eos, min_length

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.t < self.min_length:
            scores = scores.clone()
            scores[:, self.eos] = NEG_INF
        return scores


class NoRepeatNGram:
    """No token that would repeat an n-gram the row already wrote."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        n, blocked = self.n, []
        for row, seq in enumerate(ctx.row_tokens):
            if len(seq) < n - 1:
                continue
            context = tuple(seq[len(seq) - n + 1:]) if n > 1 else ()
            blocked += [(row, seq[i + n - 1]) for i in range(len(seq) - n + 1)
                        if tuple(seq[i : i + n - 1]) == context]
        if blocked:
            scores = scores.clone()
            rows, tokens = zip(*blocked)
            scores[list(rows), list(tokens)] = NEG_INF
        return scores


class LengthCap:
    """A row's last allowed step may only end it, with the model's log-prob of EOS even where
    a constraint before had removed it. ``first_cap``: the smallest cap of the batch, so that
    the steps before it cost nothing."""

    def __init__(self, eos: int, first_cap: int) -> None:
        self.eos, self.first_cap = eos, first_cap

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.t < self.first_cap - 1:
            return scores
        at_cap = ctx.caps - 1 <= ctx.t
        scores = scores.clone()
        scores[at_cap] = NEG_INF
        scores[at_cap, self.eos] = ctx.raw[at_cap, self.eos]
        return scores


class ForcedPrefix:
    """At step t < len(prefix) only ``prefix[t]``, with the model's log-prob: forcing wins
    over every constraint."""

    def __init__(self, prefix: tuple[int, ...]) -> None:
        self.prefix = prefix

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.t >= len(self.prefix):
            return scores
        token = int(self.prefix[ctx.t])
        forced = torch.full_like(scores, NEG_INF)
        forced[:, token] = ctx.raw[:, token]
        return forced


class Temperature:
    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores / self.temperature


class TopK:
    """Keep the k highest scores of each row."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        kth = scores.topk(self.k, dim=-1).values[:, -1:]
        return scores.masked_fill(scores < kth, NEG_INF)


class TopP:
    """Keep the smallest set of highest-probability tokens whose mass reaches p (at least one);
    returns normalised log-probs."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_probs = torch.log_softmax(scores, dim=-1)
        sorted_lp, order = log_probs.sort(dim=-1, descending=True)
        mass_before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()
        remove_sorted = mass_before >= self.p
        return log_probs.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), NEG_INF)


class Normalize:
    """Scores -> log-probs (the last processor of sampling: what it draws from)."""

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.log_softmax(scores, dim=-1)


class ProcessorList(list):
    """Processors applied in order; ``normalized``: whether the output already is log-probs."""

    normalized = False

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for processor in self:
            scores = processor(scores, ctx)
        return scores

    def used_distribution(self, processed: torch.Tensor) -> torch.Tensor:
        """The distribution the method used, as log-probs (N, V)."""
        return processed if self.normalized else torch.log_softmax(processed, dim=-1)


def build_processors(settings: DecodeSettings, config, first_cap: int, device) -> ProcessorList:
    """The ordered processors for ``settings`` and a model ``config`` (its special ids)."""
    banned = [config.bos_id, config.pad_id] + ([config.unk_id] if settings.ban_unk else [])
    processors = ProcessorList([BanTokens(banned, config.tgt_vocab_size, device)])
    if settings.min_length:
        processors.append(MinLength(config.eos_id, settings.min_length))
    if settings.no_repeat_ngram_size:
        processors.append(NoRepeatNGram(settings.no_repeat_ngram_size))
    processors.append(LengthCap(config.eos_id, first_cap))
    if settings.forced_prefix:
        processors.append(ForcedPrefix(settings.forced_prefix))
    if settings.method == "sample":
        processors.extend(sampling_warpers(settings, config.tgt_vocab_size))
        processors.normalized = True
    return processors


def sampling_warpers(settings: DecodeSettings, vocab_size: int) -> list:
    """Temperature, then top-k, then top-p, then renormalisation (as sampling applies them)."""
    warpers: list = [Temperature(settings.temperature)] if settings.temperature != 1.0 else []
    if settings.top_k and settings.top_k < vocab_size:
        warpers.append(TopK(settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopP(settings.top_p))
    return warpers + [Normalize()]
