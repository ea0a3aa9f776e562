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
    # what the decoding step multiplied its weights in: float32 is exact, bfloat16 is within
    # ~1e-2 in log-probs, so a reader can tell why two machines' probabilities differ
    inference_dtype: str = "float32"

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


def _candidates(logprobs, ids, tokenizer: TokenizerPair) -> list[Candidate]:
    """logprobs, ids: (n,) tensors of one step's top candidates."""
    logprobs, ids = logprobs.tolist(), ids.tolist()
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
        for t, (token, rec) in enumerate(zip(best.tokens, result.steps)):
            steps.append(Step(
                step=t, piece=tokenizer.target_pieces([token])[0], token_id=token,
                prob=math.exp(best.used_logprobs[t]), model_prob=math.exp(best.token_logprobs[t]),
                logprob=best.token_logprobs[t], forced=rec.forced,
                entropy=rec.used_entropy, model_entropy=rec.raw_entropy,
                top=_candidates(*rec.used_top, tokenizer), model_top=_candidates(*rec.raw_top, tokenizer),
                attention=rec.attention.tolist() if rec.attention is not None else None,
            ))
    node_pieces = tokenizer.target_pieces([n["token_id"] for n in result.nodes])
    nodes = [BeamNode(0, -1, -1, "<s>", -1, 0.0, "kept")]
    nodes.extend(BeamNode(n["id"], n["parent"], n["step"], piece, n["token_id"], n["score"], n["status"])
                 for n, piece in zip(result.nodes, node_pieces))
    hyps = [_hypothesis_view(h, tokenizer) for h in result.hypotheses]
    return Trace(model=model_name, source=source, source_pieces=tokenizer.source_pieces(source_ids),
                 settings=settings, translation=hyps[0].text if hyps else "", steps=steps,
                 hypotheses=hyps, beam_nodes=nodes, seed=result.seed, timings_ms=timings_ms)
