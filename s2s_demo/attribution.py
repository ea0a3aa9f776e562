"""Which source pieces a translation's tokens depend on: gradient attributions beside attention.

For a source and the tokens of a hypothesis, :func:`attribute` explains each target token's
log-prob ``f_t = log p(y_t | y_<t, x)`` (teacher forcing, the model's float32 weights) with
respect to the source embeddings ``x`` (S, E), summed over the embedding dimension per piece:

- **input x gradient**: ``x . df_t/dx`` (one backward pass);
- **integrated gradients** (Sundararajan et al., 2017): ``(x - x') . mean_a df_t/dx(x' + a (x - x'))``
  with the baseline ``x'`` = all-zero embeddings (this model's padding embedding: "no source
  at all"), the mean over ``a`` in [0, 1] taken by ``steps``-point Gauss-Legendre quadrature. Its completeness
  gap, ``|sum_s IG_t,s - (f_t(x) - f_t(x'))|`` relative to ``|f_t(x) - f_t(x')|``, says how
  well ``steps`` approximates the integral; the result reports it per token.

Every target token's objective gets its own rows of one batch, so one backward pass gives all of
them (rows do not interact: the gradient of the batch's sum is each row's own gradient).
"""

from __future__ import annotations

import time

import numpy
import torch

from .model import Seq2Seq

DEFAULT_STEPS = 16  # completeness gap at most 2.6% on en-de test sentences (docs/benchmarks.md)
MAX_STEPS = 128
MAX_ROWS = 256  # rows per backward pass: bounds memory on long sentences
METHODS = ("input_x_gradient", "integrated_gradients")
BASELINE = "all-zero source embeddings (the padding embedding)"


def _pre_outputs(model: Seq2Seq, embedded: torch.Tensor, src: torch.Tensor, tgt_in: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """embedded (N, S, E) source embeddings, src (1, S), tgt_in (1, T) -> the decoder's
    pre-outputs (N, T, O) and attention (N, T, S) or None."""
    rows = embedded.size(0)
    lengths = torch.full((rows,), src.size(1))
    state = model.encode_with(src.expand(rows, -1), lengths, model.encoder, model.bridge_layers(),
                              model.key_projection(), embedded=embedded)
    pre, attention, _ = model.decode_sequence(tgt_in.expand(rows, -1), state)
    return pre, attention


def _log_probs(model: Seq2Seq, pre: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """pre-outputs (..., O) and tokens (...) -> the tokens' log-probs (...)."""
    log_probs = model.output_log_probs(pre)  # the probabilities the page shows
    return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _gradients(model: Seq2Seq, points: torch.Tensor, src, tgt_in, tgt_out) -> torch.Tensor:
    """points (T, K, S, E): for each target token t, K source embeddings to differentiate at
    -> d f_t / d x at each (T, K, S, E), in batches of at most ``MAX_ROWS`` rows."""
    tokens, k = points.shape[:2]
    per_batch = max(1, MAX_ROWS // k)
    return torch.cat([_gradient_batch(model, points[t:t + per_batch], t, src, tgt_in, tgt_out)
                      for t in range(0, tokens, per_batch)])


def _gradient_batch(model: Seq2Seq, points: torch.Tensor, first: int, src, tgt_in, tgt_out) -> torch.Tensor:
    """``_gradients`` for tokens first, first + 1, ... (points (t, K, S, E)). Only a row's own
    position reaches the vocabulary (the output layer is most of the arithmetic)."""
    tokens, k = points.shape[:2]
    flat = points.reshape(tokens * k, *points.shape[2:]).detach().requires_grad_(True)
    pre, _ = _pre_outputs(model, flat, src, tgt_in)  # (t*K, T, O)
    position = first + torch.arange(tokens).repeat_interleave(k)  # (t*K,): the token each row explains
    own = _log_probs(model, pre[torch.arange(tokens * k), position], tgt_out[0, position])  # (t*K,)
    (grad,) = torch.autograd.grad(own.sum(), flat)
    return grad.view_as(points)


def quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes (K,) in [0, 1] and their weights (K,), summing to 1: exact for
    polynomials of degree 2K - 1, so fewer gradient evaluations than a Riemann sum (Captum's
    default rule for integrated gradients too)."""
    nodes, weights = numpy.polynomial.legendre.leggauss(steps)
    return torch.tensor((nodes + 1) / 2, dtype=torch.float32), torch.tensor(weights / 2, dtype=torch.float32)


def agreement(scores: torch.Tensor, attention: torch.Tensor) -> float:
    """Share of target tokens (rows of scores and attention, (T, S)) whose source piece of largest
    |attribution| is the piece attention weighs most."""
    return float((scores.abs().argmax(-1) == attention.argmax(-1)).float().mean())


def attribute(model: Seq2Seq, source_ids: list[int], target_ids: list[int], steps: int = DEFAULT_STEPS) -> dict:
    """Attributions of each of ``target_ids`` (EOS included) to each of ``source_ids``.

    Returns lists (JSON-ready): ``input_x_gradient`` and ``integrated_gradients`` (T, S);
    ``attention`` (T, S) from the same teacher-forced pass, or None for a model without;
    ``agreement``: per method, the share of tokens whose top piece (largest |attribution|) is
    attention's; ``completeness``: per token f(x), f(baseline), the IG sum and the relative gap,
    and the largest gap; ``steps``, ``baseline`` and ``ms`` (the time it took).
    """
    if not 1 <= int(steps) <= MAX_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {steps}")
    start = time.perf_counter()
    model.eval()
    cfg = model.config
    src = torch.tensor([source_ids])  # (1, S)
    tgt_in = torch.tensor([[cfg.bos_id] + list(target_ids[:-1])])  # (1, T)
    tgt_out = torch.tensor([list(target_ids)])
    tokens = len(target_ids)
    with torch.no_grad():
        x = model.src_embed(src)  # (1, S, E)
        baseline = torch.zeros_like(x)
        pre, attention = _pre_outputs(model, torch.cat([x, baseline]), src, tgt_in)  # rows: x, baseline
        f_x, f_baseline = _log_probs(model, pre, tgt_out.expand(2, -1))  # (T,) each
    at_input = x.expand(tokens, 1, *x.shape[1:])  # (T, 1, S, E)
    input_x_gradient = (x[0] * _gradients(model, at_input, src, tgt_in, tgt_out)[:, 0]).sum(-1)  # (T, S)
    alphas, weights = quadrature(steps)
    path = baseline + alphas.view(1, steps, 1, 1, 1) * (x - baseline)  # (1, K, 1, S, E)
    path = path.view(1, steps, *x.shape[1:]).expand(tokens, -1, -1, -1)  # (T, K, S, E)
    grads = _gradients(model, path, src, tgt_in, tgt_out)  # (T, K, S, E)
    mean_grad = (weights.view(1, steps, 1, 1) * grads).sum(1)  # (T, S, E): the integral over [0, 1]
    integrated = ((x - baseline)[0] * mean_grad).sum(-1)  # (T, S)
    change = f_x - f_baseline
    gaps = (integrated.sum(-1) - change).abs() / change.abs().clamp_min(1e-6)
    attention = attention[0].detach() if attention is not None else None
    scores = {"input_x_gradient": input_x_gradient.detach(), "integrated_gradients": integrated.detach()}
    return {
        **{name: torch.round(value, decimals=5).tolist() for name, value in scores.items()},
        "attention": None if attention is None else torch.round(attention, decimals=5).tolist(),
        "agreement": {name: None if attention is None else round(agreement(value, attention), 4)
                      for name, value in scores.items()},
        "completeness": {"f_input": f_x.tolist(), "f_baseline": f_baseline.tolist(),
                         "ig_sum": integrated.sum(-1).tolist(), "relative_gap": gaps.tolist(),
                         "max_relative_gap": float(gaps.max())},
        "steps": int(steps), "baseline": BASELINE,
        "ms": round((time.perf_counter() - start) * 1000, 1),
    }
