"""What a trace carries so that the page can redo sampling's chain in the browser.

For each step of the best hypothesis: the scores (log-probs after the constraints, before
any sampler) of the ``top_n`` most likely tokens, of the row's earlier tokens (the
repetition penalty changes them) and of the chosen token; and, for all the other tokens of
the vocabulary ("the rest"), their number, their highest and lowest score, and at each
temperature the page's slider can take the log-sum-exp of their scores / T and the
softmax-weighted mean of scores / T. That makes the browser's normaliser and entropy exact at
those temperatures (and bounded between them), so temperature, top-k, top-p, min-p, typical-p, epsilon and eta cutoffs and
the renormalisation are exact for the carried tokens whenever a cut keeps all of the rest or
none of it; where a cut would split the rest, the browser says its figures are approximate and
bounds the error by the rest's mass (``s2s_demo/ui/static/live.js``).
"""

from __future__ import annotations

import math

import torch

from .settings import BOUNDS

# where the rest's sums are carried, across the temperature slider's range (0.05 to 5). The
# rest's log-sum-exp is convex in 1/T and its slope is the weighted mean, so between two of
# these the browser has an upper bound (the chord) and a lower bound (the tangents): exact
# at these temperatures, bounded between them. 16 points cost ~10 ms a sampled sentence.
TEMPERATURES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)
assert TEMPERATURES[0] == BOUNDS["temperature"][0] and TEMPERATURES[-1] == BOUNDS["temperature"][1]
PIECES_SHOWN = 32  # of the top block, the ones a chart can show (with the extras): they get pieces
DIGITS = 6


class JsonReady(dict):
    """A dict already as JSON carries it (str keys, finite floats, None for -inf):
    ``Trace.to_dict`` passes it on as it is instead of walking its ~500 numbers a step."""


def payloads(constrained: torch.Tensor, tokens: list[int], top_n: int,
             temperatures: tuple[float, ...] = TEMPERATURES) -> list[JsonReady]:
    """constrained (k, V): the constrained log-probs of the k steps of one hypothesis whose
    tokens are ``tokens`` (k,); one dict per step (see the module docstring)."""
    k, vocab = constrained.shape
    top = constrained.topk(min(top_n, vocab), dim=-1)
    # step t carries the tokens of steps 0..t as well (earlier ones for the repetition penalty);
    # the rest is every other finite score: the carried ones set to -inf in one copy of the rows
    path = torch.tensor(tokens[:k])
    path_in_top = (top.indices[:, None, :] == path[None, :, None]).any(-1).tolist()  # (k, k)
    rest_scores = constrained.clone().scatter_(1, top.indices, -math.inf)
    rows, cols = torch.ones(k, k, dtype=torch.bool).tril().nonzero(as_tuple=True)
    rest_scores[rows, path[cols]] = -math.inf
    rest = rest_scores > -math.inf
    count = rest.sum(-1)
    high, highest = rest_scores.max(-1)
    low = torch.where(rest, rest_scores, math.inf).amin(-1).tolist()
    lse, mean = _rest_sums(rest_scores, highest, count > 0, temperatures)
    # rounded in torch: a Python round per score cost more than the rest of the payload
    top_ids, top_scores = top.indices.tolist(), torch.round(top.values.double(), decimals=DIGITS).tolist()
    extras = [list(dict.fromkeys(tok for tok, inside in zip(tokens[: t + 1], path_in_top[t]) if not inside))
              for t in range(k)]
    # the extra tokens' scores in one gather (a step's earlier tokens are often outside its top)
    steps_of = [t for t in range(k) for _ in extras[t]]
    extra_scores = iter(_finite(v) for v in constrained[steps_of, [tok for row in extras for tok in row]].tolist())
    finite = (top.values > -math.inf).sum(-1).tolist()  # top scores are sorted: the finite ones first
    count, high = count.tolist(), high.tolist()
    out = []
    for t in range(k):
        n = finite[t]
        out.append(JsonReady({
            "ids": top_ids[t][:n] + extras[t],
            "scores": top_scores[t][:n] + [next(extra_scores) for _ in extras[t]],
            "top": n, "previous": list(dict.fromkeys(tokens[:t])), "chosen": tokens[t],
            "rest": {"count": count[t], "max": _finite(high[t]), "min": _finite(low[t]),
                     "lse": [_finite(v) for v in lse[t]], "mean": [_finite(v) for v in mean[t]]},
        }))
    return out


def _rest_sums(rest_scores: torch.Tensor, highest: torch.Tensor, nonempty: torch.Tensor,
               temperatures: tuple[float, ...]) -> tuple[list, list]:
    """rest_scores (k, V), -inf outside the rest; highest (k,): where each row's largest score
    is; nonempty (k,): whether the row has a rest -> per step and temperature (k, G): the
    log-sum-exp of scores / T, and the softmax(scores / T)-weighted mean of scores / T."""
    inv = 1.0 / torch.tensor(temperatures, dtype=rest_scores.dtype)
    scaled = rest_scores[:, None, :]  # (k, G, V), -inf outside the rest
    if temperatures != (1.0,):
        scaled = scaled * inv[None, :, None]
    log_weights = torch.log_softmax(scaled, dim=-1)  # one fused pass; NaN for an empty rest
    # the log-sum-exp from the fused softmax: at the largest score, score - log weight
    at_top = highest[:, None, None].expand(-1, len(temperatures), 1)
    lse = (scaled.gather(-1, at_top) - log_weights.gather(-1, at_top)).squeeze(-1)
    lse = torch.where(nonempty[:, None], lse, -math.inf)
    # outside the rest the weight is 0: 0 * -inf is NaN, which nansum skips (as an empty rest's NaNs)
    mean = log_weights.exp_().mul_(scaled).nansum(-1)
    return lse.tolist(), mean.tolist()


def _finite(value: float) -> float | None:
    """JSON has no infinities: None stands for -inf (an empty rest, a banned token)."""
    return round(value, DIGITS) if math.isfinite(value) else None
