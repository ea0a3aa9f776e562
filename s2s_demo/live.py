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


def payloads(constrained: torch.Tensor, tokens: list[int], top_n: int,
             temperatures: tuple[float, ...] = TEMPERATURES) -> list[dict]:
    """constrained (k, V): the constrained log-probs of the k steps of one hypothesis whose
    tokens are ``tokens`` (k,); one dict per step (see the module docstring)."""
    k, vocab = constrained.shape
    top = constrained.topk(min(top_n, vocab), dim=-1)
    in_top = torch.zeros_like(constrained, dtype=torch.bool).scatter_(1, top.indices, True)
    # step t carries the tokens of steps 0..t as well (earlier ones for the repetition penalty)
    path = torch.tensor(tokens).expand(k, k)
    upto = torch.ones(k, k, dtype=torch.bool).tril()
    path_in_top = in_top.gather(1, path).tolist()
    carried = in_top.clone()
    carried[upto.nonzero(as_tuple=True)[0], path[upto]] = True
    rest = (constrained > -math.inf) & ~carried
    rest_scores = constrained.masked_fill(~rest, -math.inf)
    lse, mean = _rest_sums(rest_scores, temperatures)
    count = rest.sum(-1).tolist()
    high = rest_scores.amax(-1).tolist()
    low = constrained.masked_fill(~rest, math.inf).amin(-1).tolist()
    # rounded in torch: a Python round per score cost more than the rest of the payload
    top_ids, top_scores = top.indices.tolist(), torch.round(top.values.double(), decimals=DIGITS).tolist()
    extras = [list(dict.fromkeys(tok for tok, inside in zip(tokens[: t + 1], path_in_top[t]) if not inside))
              for t in range(k)]
    # the extra tokens' scores in one gather (a step's earlier tokens are often outside its top)
    steps_of = [t for t in range(k) for _ in extras[t]]
    extra_scores = iter(torch.round(constrained[steps_of, [tok for row in extras for tok in row]].double(),
                                    decimals=DIGITS).tolist())
    finite = (top.values > -math.inf).sum(-1).tolist()  # top scores are sorted: the finite ones first
    out = []
    for t in range(k):
        n = finite[t]
        out.append({
            "ids": top_ids[t][:n] + extras[t],
            "scores": top_scores[t][:n] + [next(extra_scores) for _ in extras[t]],
            "top": n, "previous": list(dict.fromkeys(tokens[:t])), "chosen": tokens[t],
            "rest": {"count": count[t], "max": _finite(high[t]), "min": _finite(low[t]),
                     "lse": [_finite(v) for v in lse[t]], "mean": [_finite(v) for v in mean[t]]},
        })
    return out


def _rest_sums(rest_scores: torch.Tensor, temperatures: tuple[float, ...]) -> tuple[list, list]:
    """rest_scores (k, V), -inf outside the rest -> per step and temperature (k, G): the
    log-sum-exp of scores / T, and the softmax(scores / T)-weighted mean of scores / T."""
    inv = 1.0 / torch.tensor(temperatures, dtype=rest_scores.dtype)
    if not bool((rest_scores > -math.inf).any()):
        return [[-math.inf] * len(temperatures)] * len(rest_scores), [[0.0] * len(temperatures)] * len(rest_scores)
    scaled = rest_scores[:, None, :] * inv[None, :, None]  # (k, G, V), -inf outside the rest
    lse = scaled.logsumexp(-1)  # (k, G); -inf for a step whose rest is empty
    weights = (scaled - lse[..., None]).exp_()
    mean = weights.mul_(scaled).nansum(-1)  # outside the rest the weight is 0: 0 * -inf is NaN, skipped
    return lse.tolist(), mean.tolist()


def _finite(value: float) -> float | None:
    """JSON has no infinities: None stands for -inf (an empty rest)."""
    return round(value, DIGITS) if math.isfinite(value) else None
