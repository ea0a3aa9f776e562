"""Is a sentence like the training data? Two measures from what a model folder already has.

- **Rare source pieces**: the share of the sentence's source pieces that the source
  sentencepiece model scores as rare (its unigram log-prob, learnt from the training text, below
  ``rare_score``) or cannot read at all (``<unk>``).
- **Translation log-prob**: the mean log-prob per token the model gives its own translation
  (greedy or beam; sampled or forced tokens say nothing about the sentence).

``train.calibration --record`` measures both on val with the model's default decoding and
stores the thresholds in results.json: ``rare_share`` at val's 99th percentile and
``logprob`` at its 1st. A sentence beyond either is flagged as unfamiliar.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .tokenizer import TokenizerPair

# the share of val's source piece occurrences whose unigram score counts as rare
RARE_PIECE_QUANTILE = 0.02
FLAG_QUANTILE = 0.99


@dataclass(frozen=True)
class Thresholds:
    """What val sentences reach: ``rare_score`` (a piece below it is rare), ``rare_share`` (99th
    percentile over val sentences) and ``logprob`` (1st percentile of the mean token log-prob)."""

    rare_score: float
    rare_share: float
    logprob: float

    @classmethod
    def from_dict(cls, data: dict | None) -> "Thresholds | None":
        try:
            return cls(float(data["rare_score"]), float(data["rare_share"]), float(data["logprob"]))
        except (TypeError, KeyError, ValueError):
            return None

    def to_dict(self) -> dict:
        return asdict(self)


def rare_share(tokenizer: TokenizerPair, source_ids: list[int], rare_score: float) -> float:
    """Share of ``source_ids`` that are unknown or scored below ``rare_score``."""
    source = tokenizer.source
    rare = sum(source.IsUnknown(i) or source.GetScore(i) < rare_score for i in source_ids)
    return rare / max(1, len(source_ids))


def measure(tokenizer: TokenizerPair, source_ids: list[int], token_logprobs: list[float] | None,
            thresholds: Thresholds | None, nearest: dict | None = None) -> dict:
    """The familiarity of one translation, for the trace: the measures, whether the sentence is
    beyond what val reaches (None without thresholds) and why, in words for the page.
    ``nearest``: ``NeighbourIndex.similarities`` of the translation, when the model has an index."""
    unknown = sum(bool(tokenizer.source.IsUnknown(i)) for i in source_ids)
    mean_logprob = sum(token_logprobs) / len(token_logprobs) if token_logprobs else None
    result = {"unknown_pieces": unknown, "source_pieces": len(source_ids),
              "rare_share": None, "mean_logprob": None if mean_logprob is None else round(mean_logprob, 4),
              "unfamiliar": None, "reasons": [], "thresholds": thresholds.to_dict() if thresholds else None,
              "nearest": nearest}
    if thresholds is None:
        return result
    share = rare_share(tokenizer, source_ids, thresholds.rare_score)
    result["rare_share"] = round(share, 4)
    reasons = []
    if unknown:
        reasons.append(f"{unknown} of its {len(source_ids)} pieces are characters the model cannot read")
    if share > thresholds.rare_share:
        reasons.append(f"{100 * share:.0f}% of its pieces are rare in the training captions "
                       f"(99% of validation sentences: at most {100 * thresholds.rare_share:.0f}%)")
    if mean_logprob is not None and mean_logprob < thresholds.logprob:
        reasons.append(f"the model is unsure of its translation (mean log-prob {mean_logprob:.2f} per token; "
                       f"99% of validation sentences: above {thresholds.logprob:.2f})")
    reasons += _nearest_reasons(nearest)
    result.update(unfamiliar=bool(reasons), reasons=reasons)
    return result


def _nearest_reasons(nearest: dict | None) -> list[str]:
    """Why the nearest training examples say a translation is far from the training data: its
    decoder states are. (The sentence encoding's similarity is not a reason: on en-de it put "Hello,
    how are you?" well above its floor and 2-3% of test captions below it; see docs/benchmarks.md.)"""
    if not nearest or nearest["states"] is None or nearest["states"] >= nearest["state_floor"]:
        return []
    return [f"the decoder is in states it rarely reached in training (mean similarity {nearest['states']:.3f} "
            f"to the nearest training state; 99% of validation sentences' translations: above "
            f"{nearest['state_floor']:.3f})"]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def fit_thresholds(tokenizer: TokenizerPair, sources: list[list[int]], mean_logprobs: list[float]) -> Thresholds:
    """Thresholds from val: source ids per sentence and the mean token log-prob of each translation."""
    scores = [tokenizer.source.GetScore(i) for ids in sources for i in ids if not tokenizer.source.IsUnknown(i)]
    rare_score = quantile(scores, RARE_PIECE_QUANTILE)
    shares = [rare_share(tokenizer, ids, rare_score) for ids in sources]
    return Thresholds(round(rare_score, 4), round(quantile(shares, FLAG_QUANTILE), 4),
                      round(quantile(mean_logprobs, 1 - FLAG_QUANTILE), 4))
