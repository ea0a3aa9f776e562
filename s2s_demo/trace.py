"""What one decoding records, as plain data: the only thing the UI and the API read."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, is_dataclass

import torch

from .decoding import Hypothesis, SearchResult, StepRecord
from .live import PIECES_SHOWN, TEMPERATURES, JsonReady
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
    temperature/top-k/top-p and constraints); ``model_prob`` in the model's model_lp softmax.
    ``top``/``model_top`` are the top candidates of those two distributions; ``attention``
    has one weight per source piece (None for a model without attention); ``cut_mass`` is the
    model's probability on the tokens the method could not pick (banned, or cut by top-k / top-p).
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
    cut_mass: float = 0.0
    # the scores the page redoes sampling's chain from, in the browser (s2s_demo.live)
    live: dict | None = None
    # the chosen token's probability in the network's own softmax, before calibration
    # (s2s_demo.calibration); None where the model has no calibration
    network_prob: float | None = None


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
    # the size of the distribution every step is over: ln of it is the most entropy a step can have
    target_vocab_size: int
    timings_ms: dict = field(default_factory=dict)
    # the arithmetic decoding multiplied its weights in (s2s_demo.inference): float32 is exact,
    # so a reader can tell why two machines' probabilities differ
    arithmetic: str = "float32"
    # how much the sentence is like the training data (s2s_demo.familiarity.measure)
    familiarity: dict | None = None
    # the best hypothesis ran into the length cap: its last step's EOS was forced by the cap
    # (the model would have written more), so the translation is cut short
    length_capped: bool = False
    # the node ids of the best hypothesis in beam_nodes, from the start node 0 to its EOS
    best_path: list[int] = field(default_factory=list)
    # the LSTM's gates, cells and bridge along the best hypothesis (s2s_demo.internals), on request
    internals: dict | None = None
    # the fitted calibration every probability went through (s2s_demo.calibration)
    calibration: dict = field(default_factory=dict)
    # the temperatures at which each step's live payload sums the rest of the vocabulary
    live_temperatures: list[float] = field(default_factory=lambda: [1.0])

    def to_dict(self) -> dict:
        plain = _plain(self)
        plain["inference_dtype"] = self.arithmetic  # the field's old name, kept for one release (deprecated)
        return plain


def _plain(value):
    """Dataclasses as dicts, recursively, and -inf log-probs as None (JSON has no infinities).
    One pass, no copies, and no isinstance chain per leaf: a beam-5 trace has ~7,000 values,
    and a generic walk over them cost more than the search's recording."""
    convert = _CONVERTERS.get(type(value))
    if convert is not None:
        return convert(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _dataclass_converter(type(value))(value)
    return value


def _finite(value: float) -> float | None:
    return value if value - value == 0.0 else None  # inf - inf and nan - nan are nan


def _plain_list(values: list) -> list:
    if not values:
        return []
    kind = type(values[0])
    if kind is float and all(type(v) is float for v in values):
        # the live payload's long lists of scores: one comprehension, no call per number
        return [v if v - v == 0.0 else None for v in values]
    if (kind is int or kind is str) and all(type(v) is kind for v in values):
        return list(values)
    return [_plain(v) for v in values]


_CONVERTERS = {
    float: _finite, int: lambda v: v, str: lambda v: v, bool: lambda v: v, type(None): lambda v: v,
    list: _plain_list,
    dict: lambda d: {k: _plain(v) for k, v in d.items()},
    tuple: lambda t: tuple(_plain(v) for v in t),
    JsonReady: lambda d: d,  # the live payloads: most of a trace's numbers, built JSON-ready
}


@functools.cache
def _dataclass_converter(cls: type):
    """``cls`` instance -> dict: fields declared str/int/bool copied as they are, the rest
    through :func:`_plain` (a float field may hold -inf)."""
    spec = tuple((f.name, f.type in ("str", "int", "bool")) for f in fields(cls))

    def convert(value) -> dict:
        return {name: getattr(value, name) if direct else _plain(getattr(value, name)) for name, direct in spec}

    return convert


def _step_candidates(records: list[StepRecord], tokenizer: TokenizerPair
                     ) -> list[tuple[list[Candidate], list[Candidate]]]:
    """(used, model) top candidates of every step. Each record holds (n,) tensors: they are
    stacked into one (2T, n) tensor so the steps cost one list conversion and one piece
    lookup, not two per step."""
    if not records:
        return []
    logprobs = torch.stack([v for r in records for v in (r.top[0], r.model_top[0])]).tolist()
    ids = torch.stack([i for r in records for i in (r.top[1], r.model_top[1])]).tolist()
    pieces = iter(tokenizer.target_pieces([i for row in ids for i in row]))
    lists = [[Candidate(next(pieces), i, math.exp(lp)) for lp, i in zip(row_lp, row_ids)]
             for row_lp, row_ids in zip(logprobs, ids)]
    # tokens a filter removed (-inf) are not candidates
    lists = [[c for c, lp in zip(row, row_lp) if lp > -math.inf] for row, row_lp in zip(lists, logprobs)]
    return list(zip(lists[0::2], lists[1::2]))


def _with_pieces(live: dict | None, tokenizer: TokenizerPair) -> dict | None:
    """The live payload with pieces for the tokens a chart can show: the first of the top
    block and every extra token (the others are never among the most likely after a cut)."""
    if live is None:
        return None
    top, ids = live["top"], live["ids"]
    shown = ids[: min(top, PIECES_SHOWN)] + ids[top:]
    return JsonReady(live, pieces=dict(zip(map(str, shown), tokenizer.target_pieces(shown))))


def _hypothesis_view(hyp: Hypothesis, tokenizer: TokenizerPair) -> HypothesisView:
    return HypothesisView(tokenizer.decode_target(hyp.tokens), tokenizer.target_pieces(hyp.tokens),
                          hyp.tokens, hyp.token_logprobs, hyp.logprob, hyp.score)


def build_trace(result: SearchResult, tokenizer: TokenizerPair, *, model_name: str, source: str,
                source_ids: list[int], settings: dict, timings_ms: dict, length_cap: int | None = None,
                arithmetic: str = "float32", familiarity: dict | None = None,
                internals: dict | None = None, calibration: dict | None = None) -> Trace:
    """Turn a recorded SearchResult (one sentence) into a Trace. ``length_cap``: the search's
    most output tokens, to tell an output the cap ended from one the model ended; the rest
    go into the Trace's fields of those names."""
    steps: list[Step] = []
    best = result.hypotheses[0] if result.hypotheses else None
    if best is not None:
        records = result.steps[: len(best.tokens)]
        pieces = tokenizer.target_pieces(best.tokens)
        attention = [r.attention for r in records]
        # one conversion for every step's attention row (all have the source's length)
        attention = torch.stack(attention).tolist() if attention and attention[0] is not None \
            else [None] * len(records)
        for t, (token, rec, (top, model_top), attn) in enumerate(
                zip(best.tokens, records, _step_candidates(records, tokenizer), attention)):
            steps.append(Step(
                step=t, piece=pieces[t], token_id=token,
                prob=math.exp(best.used_logprobs[t]), model_prob=math.exp(best.token_logprobs[t]),
                logprob=best.token_logprobs[t], forced=rec.forced,
                entropy=rec.entropy, model_entropy=rec.model_entropy,
                top=top, model_top=model_top, attention=attn, cut_mass=round(rec.cut_mass, 6),
                live=_with_pieces(rec.live, tokenizer),
                network_prob=math.exp(rec.network_logprob) if rec.network_logprob is not None else None,
            ))
    capped = bool(steps and length_cap and len(steps) >= length_cap
                  and steps[-1].model_top and steps[-1].model_top[0].token_id != tokenizer.eos_id)
    if capped:
        steps[-1].forced = True  # the cap, not the model, chose this EOS
    node_pieces = tokenizer.target_pieces([n["token_id"] for n in result.nodes])
    nodes = [BeamNode(0, -1, -1, "<s>", -1, 0.0, "kept")]
    nodes.extend(BeamNode(n["id"], n["parent"], n["step"], piece, n["token_id"], n["score"], n["status"])
                 for n, piece in zip(result.nodes, node_pieces))
    hyps = [_hypothesis_view(h, tokenizer) for h in result.hypotheses]
    return Trace(model=model_name, source=source, source_pieces=tokenizer.source_pieces(source_ids),
                 settings=settings, translation=hyps[0].text if hyps else "", steps=steps,
                 hypotheses=hyps, beam_nodes=nodes, seed=result.seed,
                 target_vocab_size=tokenizer.tgt_vocab_size, timings_ms=timings_ms, length_capped=capped,
                 best_path=list(result.best_path), arithmetic=arithmetic, familiarity=familiarity,
                 internals=internals, calibration=calibration or {},
                 live_temperatures=list(TEMPERATURES) if settings.get("method") == "sample" else [1.0])
