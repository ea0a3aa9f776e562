"""Score processors: what turns a step's model log-probs into the scores a method picks from.

As in Hugging Face's ``LogitsProcessorList``, a decoding step runs an ordered list of
processors, each mapping (N, V) scores to (N, V) scores:

1. constraints, which only remove tokens (set them to -inf) and keep the model's log-prob
   of the rest: banned tokens (BOS, PAD, and UNK unless allowed), the minimum length,
   n-gram blocking, the length cap (its last step may only end the sentence), the forced
   prefix (its steps may only write the forced token, whatever the constraints before said);
2. for sampling only, Hugging Face's sampling chain with its names and in its order:
   repetition penalty, temperature, top-k, top-p, min-p, typical-p, epsilon and eta cutoffs,
   then renormalisation. Each cut keeps at least the most likely token.

What the list returns is the distribution the method used (renormalised for the trace when
it is not already): a trace step's ``top`` and ``prob`` are read from it, and beam search
adds its values (the model's own log-probs, since constraints never rescale) to the
hypotheses' scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .settings import DecodeSettings

NEG_INF = float("-inf")


@dataclass
class StepContext:
    """What a processor may read at step ``t``: the model's log-probs ``model_lp`` (N, V), each
    row's most output tokens ``caps`` (N,) and, for n-gram blocking, each row's tokens so far."""

    t: int
    model_lp: torch.Tensor
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
        scores[at_cap, self.eos] = ctx.model_lp[at_cap, self.eos]
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
        forced[:, token] = ctx.model_lp[:, token]
        return forced


class RepetitionPenalty:
    """Hugging Face's repetition penalty on a row's earlier tokens: a negative score is
    multiplied by ``penalty``, a positive one divided by it. Our scores are log-probs (never
    positive), so a repeated token's log-prob is multiplied: penalty > 1 discourages it."""

    def __init__(self, penalty: float) -> None:
        self.penalty = penalty

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        rows = [(row, tok) for row, seq in enumerate(ctx.row_tokens) for tok in set(seq)]
        if not rows:
            return scores
        rows_t, toks_t = (torch.tensor(x, device=scores.device) for x in zip(*rows))
        picked = scores[rows_t, toks_t]
        scores = scores.clone()
        scores[rows_t, toks_t] = torch.where(picked < 0, picked * self.penalty, picked / self.penalty)
        return scores


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


def _keep_top(log_probs: torch.Tensor, remove: torch.Tensor) -> torch.Tensor:
    """Cut the tokens ``remove`` marks, never a row's most likely one; returns log-probs."""
    remove = remove & (log_probs < log_probs.amax(-1, keepdim=True))
    return log_probs.masked_fill(remove, NEG_INF)


class MinP:
    """Cut the tokens less likely than ``min_p`` times the row's most likely token."""

    def __init__(self, min_p: float) -> None:
        self.log_min_p = math.log(min_p)

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_probs = torch.log_softmax(scores, dim=-1)
        return _keep_top(log_probs, log_probs < log_probs.amax(-1, keepdim=True) + self.log_min_p)


class TypicalP:
    """Locally typical sampling (Meister et al., 2023): keep the tokens whose surprisal is
    nearest the row's entropy, fewest first, until their mass reaches ``mass``."""

    def __init__(self, mass: float) -> None:
        self.mass = mass

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_probs = torch.log_softmax(scores, dim=-1)
        entropy = -(log_probs.exp() * log_probs).nansum(-1, keepdim=True)
        shifted = (-log_probs - entropy).abs()  # -inf log-probs: +inf, cut already
        sorted_shift, order = shifted.sort(dim=-1)
        cumulative = log_probs.gather(-1, order).exp().cumsum(-1)
        last = (cumulative < self.mass).sum(-1, keepdim=True).clamp(max=shifted.size(-1) - 1)
        remove_sorted = sorted_shift > sorted_shift.gather(-1, last)
        remove_sorted[:, 0] = False
        return log_probs.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), NEG_INF)


class EpsilonCutoff:
    """Cut the tokens of probability below ``epsilon`` (Hewitt et al., 2022)."""

    def __init__(self, epsilon: float) -> None:
        self.log_epsilon = math.log(epsilon)

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_probs = torch.log_softmax(scores, dim=-1)
        return _keep_top(log_probs, log_probs < self.log_epsilon)


class EtaCutoff:
    """Cut the tokens of probability below min(epsilon, sqrt(epsilon) * exp(-entropy))
    (Hewitt et al., 2022): a cut that loosens where the distribution is spread."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        log_probs = torch.log_softmax(scores, dim=-1)
        entropy = -(log_probs.exp() * log_probs).nansum(-1, keepdim=True)
        eta = torch.clamp(math.sqrt(self.epsilon) * torch.exp(-entropy), max=self.epsilon)
        return _keep_top(log_probs, log_probs < eta.log())


class Normalize:
    """Scores -> log-probs (the last processor of sampling: what it draws from)."""

    def __call__(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.log_softmax(scores, dim=-1)


class ProcessorList(list):
    """Processors applied in order; ``normalized``: whether the output already is log-probs;
    ``warpers``: sampling's chain, run after the constraints (empty for greedy and beam)."""

    normalized = False
    warpers: "ProcessorList | None" = None

    def constrained_and_processed(self, scores: torch.Tensor, ctx: StepContext
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the scores after the constraints alone, after every processor), each (N, V)."""
        constrained = self(scores, ctx)
        return constrained, (self.warpers(constrained, ctx) if self.warpers else constrained)

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
        processors.warpers = sampling_warpers(settings, config.tgt_vocab_size)
        processors.normalized = True
    return processors


def sampling_warpers(settings: DecodeSettings, vocab_size: int) -> ProcessorList:
    """Sampling's chain in Hugging Face's order, each only where it changes something, then
    renormalisation: repetition penalty, temperature, top-k, top-p, min-p, typical-p,
    epsilon cutoff, eta cutoff."""
    s = settings
    chosen = [(s.repetition_penalty != 1.0, lambda: RepetitionPenalty(s.repetition_penalty)),
              (s.temperature != 1.0, lambda: Temperature(s.temperature)),
              (0 < s.top_k < vocab_size, lambda: TopK(s.top_k)),
              (s.top_p < 1.0, lambda: TopP(s.top_p)),
              (s.min_p > 0.0, lambda: MinP(s.min_p)),
              (s.typical_p < 1.0, lambda: TypicalP(s.typical_p)),
              (s.epsilon_cutoff > 0.0, lambda: EpsilonCutoff(s.epsilon_cutoff)),
              (s.eta_cutoff > 0.0, lambda: EtaCutoff(s.eta_cutoff))]
    warpers = ProcessorList(make() for wanted, make in chosen if wanted)
    warpers.append(Normalize())
    warpers.normalized = True
    return warpers
