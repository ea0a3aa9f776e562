"""What one decoding records, as plain data: the only thing the UI and the API read."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .decoding import Hypothesis, SearchResult
from .tokenizer import TokenizerPair


@dataclass
class Candidate:
    piece: str
    token_id: int
    prob: float


@dataclass
class Step:
    """One output position of the best hypothesis.

    ``prob`` is the chosen token's probability in the distribution the method used (after
    temperature/top-k/top-p and constraints); ``model_prob`` in the model's raw softmax.
    ``top``/``model_top`` are the top candidates of those two distributions; ``attention``
    has one weight per source piece (None for a model without attention).
    """

    step: int
    piece: str
    token_id: int
    prob: float
    model_prob: float
    logprob: float
    forced: bool
    entropy: float
    model_entropy: float
    top: list[Candidate]
    model_top: list[Candidate]
    attention: list[float] | None


@dataclass
class HypothesisView:
    text: str
    pieces: list[str]
    token_ids: list[int]
    token_logprobs: list[float]
    logprob: float
    score: float


@dataclass
class BeamNode:
    """A candidate the search proposed: ``status`` is kept, finished or pruned; node 0 is
    the start of the sentence; ``score`` is the cumulative log-prob."""

    id: int
    parent: int
    step: int
    piece: str
    token_id: int
    score: float
    status: str


@dataclass
class Trace:
    model: str
    source: str
    source_pieces: list[str]
    settings: dict
    translation: str
    steps: list[Step]
    hypotheses: list[HypothesisView]
    beam_nodes: list[BeamNode]
    seed: int | None
    timings_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _finite(asdict(self))


def _finite(value):
    """JSON has no infinities: -inf log-probs become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _candidates(logprobs: list[float], ids: list[int], tokenizer: TokenizerPair) -> list[Candidate]:
    pieces = tokenizer.target_pieces(ids)
    return [Candidate(p, i, math.exp(lp)) for lp, i, p in zip(logprobs, ids, pieces) if lp > -math.inf]


def _hypothesis_view(hyp: Hypothesis, tokenizer: TokenizerPair) -> HypothesisView:
    return HypothesisView(tokenizer.decode_target(hyp.tokens), tokenizer.target_pieces(hyp.tokens),
                          hyp.tokens, hyp.token_logprobs, hyp.logprob, hyp.score)


def build_trace(result: SearchResult, tokenizer: TokenizerPair, *, model_name: str, source: str,
                source_ids: list[int], settings: dict, timings_ms: dict) -> Trace:
    """Turn a recorded SearchResult (one sentence) into a Trace."""
    steps: list[Step] = []
    best = result.hypotheses[0] if result.hypotheses else None
    if best is not None:
        for t, (token, slot) in enumerate(zip(best.tokens, best.slots)):
            rec = result.steps[t]
            raw_v, raw_i = rec.raw_top[0][slot].tolist(), rec.raw_top[1][slot].tolist()
            used_v, used_i = rec.used_top[0][slot].tolist(), rec.used_top[1][slot].tolist()
            steps.append(Step(
                step=t, piece=tokenizer.target_pieces([token])[0], token_id=token,
                prob=math.exp(best.used_logprobs[t]), model_prob=math.exp(best.token_logprobs[t]),
                logprob=best.token_logprobs[t], forced=rec.forced,
                entropy=float(rec.used_entropy[slot]), model_entropy=float(rec.raw_entropy[slot]),
                top=_candidates(used_v, used_i, tokenizer), model_top=_candidates(raw_v, raw_i, tokenizer),
                attention=rec.attention[slot].tolist() if rec.attention is not None else None,
            ))
    nodes = [BeamNode(0, -1, -1, "<s>", -1, 0.0, "kept")]
    for t, rec in enumerate(result.steps):
        for n in rec.nodes:
            nodes.append(BeamNode(n["id"], n["parent"], t, tokenizer.target_pieces([n["token_id"]])[0],
                                  n["token_id"], n["score"], n["status"]))
    hyps = [_hypothesis_view(h, tokenizer) for h in result.hypotheses]
    return Trace(model=model_name, source=source, source_pieces=tokenizer.source_pieces(source_ids),
                 settings=settings, translation=hyps[0].text if hyps else "", steps=steps,
                 hypotheses=hyps, beam_nodes=nodes, seed=result.seed, timings_ms=timings_ms)
