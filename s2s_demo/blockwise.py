"""int8 weights in blocks: each run of ``block`` weights along a row keeps its own scale.

A decoding step on a 2-core CPU is bound by the bytes of weight it reads (a 2-layer en-de step:
21.9 MB in float32, 10.9 MB in float16). Blockwise int8 reads 1 + 4/block bytes a weight. One
scale per row (fbgemm's ``int8``) is not enough on its own: fbgemm also quantizes each call's
activations to uint8 with one scale for the whole row, and that error compounds through the
recurrent state (shown probabilities move by up to 0.1). Here a scale covers a block of inputs
(``block_for``: 128 in the LSTM cells, 32 in the output layers).

- Fast path: ONNX Runtime's ``MatMulNBits`` (8 bits, ``accuracy_level`` 4: the activations are
  quantized per block at each call and multiplied in int8, MLAS kernels for AVX2, AVX512 and
  ARM NEON; :func:`product` restores float32 activations). The decoding engine runs a whole
  step as one graph (``s2s_demo.fused_step``); :func:`ort_linear` is one product alone.
- Fallback, wherever onnxruntime is missing or its kernel refuses this CPU: the same int8
  weights dequantized once to float32 and multiplied in torch. Same weights, float32
  activations, so the same numbers within the activations' rounding, read at float32's cost.

Shapes: weight (O, I); codes (O, KB, block) uint8 with KB = ceil(I / block); scales (O, KB).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .onnx_graph import FEW_ROWS, Graph, Runner, as_numpy

BLOCK = 32  # weights per scale
# The LSTM cells take 128: on the shipped models' pages (benchmarks.arithmetic) the output layer's
# rounding moves the shown probabilities most, the cells' far less (en-de, 200 val sentences:
# cells 128 / output 32 moved them by at most 0.0083 at 5.81 MB a step; 32 / 32: 0.0087, 6.15 MB).
CELL_BLOCK = 128
ZERO_POINT = 128  # MatMulNBits' default zero point for 8 bits: codes are q + 128


def block_for(product: str) -> int:
    """Block size of a step product named as ``inference.step_products`` names them."""
    return CELL_BLOCK if product.startswith("cell") else BLOCK


def bytes_per_weight(block: int) -> float:
    """An int8 code, plus a float32 scale per block."""
    return 1 + 4 / block


Linear = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger(__name__)


def quantize(weight: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (O, I) float -> codes (O, KB, block) uint8, scales (O, KB) float32: symmetric,
    q = round(w / scale) in [-127, 127] with scale = max |w| of the block / 127; the last
    block is padded with zeros."""
    rows, cols = weight.shape
    blocks = -(-cols // block)
    padded = F.pad(weight.detach().float(), (0, blocks * block - cols)).reshape(rows, blocks, block)
    scales = (padded.abs().amax(2) / 127).clamp(min=1e-12)
    q = torch.round(padded / scales.unsqueeze(2)).clamp(-127, 127)
    return (q + ZERO_POINT).to(torch.uint8), scales.contiguous()


def dequantize(codes: torch.Tensor, scales: torch.Tensor, cols: int) -> torch.Tensor:
    """codes (O, KB, block), scales (O, KB) -> the float32 weight (O, cols) they stand for."""
    weight = (codes.float() - ZERO_POINT) * scales.unsqueeze(2)
    return weight.reshape(codes.size(0), -1)[:, :cols].contiguous()


def torch_linear(weight: torch.Tensor, bias: torch.Tensor | None, block: int = BLOCK) -> Linear:
    """The fallback: ``x W_q^T + b`` with W_q the blockwise-int8 weight, in float32."""
    codes, scales = quantize(weight, block)
    dequantized = dequantize(codes, scales, weight.size(1))
    return lambda x: F.linear(x, dequantized, bias)


def ort_linear(weight: torch.Tensor, bias: torch.Tensor | None, block: int = BLOCK) -> Linear:
    """``x W_q^T + b`` on ONNX Runtime's MatMulNBits: x (N, I) float32 -> (N, O) float32 (see
    :func:`product` for how). Raises ImportError without onnxruntime/onnx and RuntimeError where
    the kernel does not run or gives a wrong product."""
    rows, cols = weight.shape
    codes, scales = quantize(weight, block)
    graph = Graph("blockwise_int8_linear")
    y = product(graph, graph.input("x", np.float32, ["N", cols]), codes, scales, cols, bias)
    run = Runner(graph.serialize({"y": (y, np.float32, ["N", rows])}))

    def linear(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run(x.size(0), {"x": as_numpy(x.float())})[0])

    check(linear, codes, scales, cols, bias)
    return linear


def product(graph: Graph, x: str, codes: torch.Tensor, scales: torch.Tensor, cols: int,
            bias: torch.Tensor | None) -> str:
    """Add ``x W_q^T + b`` to ``graph``: x (N, cols) -> (N, O).

    MatMulNBits' int8 path rounds the activations per block, which alone moves the shown
    probabilities by up to 0.02. So x is split into hi, x rounded as the kernel rounds it (which
    the kernel then reads exactly), and lo = x - hi, and both rows are multiplied: W_q hi + W_q lo.
    Two rows read the weights once: on a CPU bound by weight bytes the second row is almost free."""
    rows, blocks, block = codes.shape
    padded = blocks * block
    xp = graph.op("Pad", x, graph.ints(0, 0, 0, padded - cols)) if padded != cols else x
    xb = graph.op("Reshape", xp, graph.ints(0, blocks, block))
    peak = graph.op("ReduceMax", graph.op("Abs", xb), graph.ints(2), keepdims=1)
    unit = graph.op("Max", graph.op("Mul", peak, graph.const(1 / 127)), graph.const(1e-30))
    hi = graph.op("Reshape", graph.op("Mul", graph.op("Round", graph.op("Div", xb, unit)), unit),
                  graph.ints(0, padded))
    if padded != cols:
        hi = graph.op("Slice", hi, graph.ints(0), graph.ints(cols), graph.ints(1))
    both = graph.op("Concat", hi, graph.op("Sub", x, hi), axis=0)
    y = graph.op("MatMulNBits", both, graph.const(codes.numpy(), np.uint8),
                 graph.const(scales.reshape(-1).numpy()), domain="com.microsoft",
                 K=cols, N=rows, bits=8, block_size=block, accuracy_level=4)
    y = graph.op("Add", *graph.op("Split", y, outputs=2, axis=0, num_outputs=2))
    return graph.op("Add", y, graph.const(bias.detach().float().numpy())) if bias is not None else y


def check(linear: Linear, codes: torch.Tensor, scales: torch.Tensor, cols: int, bias: torch.Tensor | None) -> None:
    """RuntimeError unless ``linear`` multiplies like the dequantized weights in float32, with a
    few rows and with many (the Runner's two ONNX Runtime sessions)."""
    dequantized = dequantize(codes, scales, cols)
    for rows in (2, FEW_ROWS + 1):
        probe = torch.linspace(-1, 1, rows * cols).reshape(rows, cols)
        expected = F.linear(probe, dequantized, bias)
        if not torch.allclose(linear(probe), expected, rtol=1e-3, atol=1e-3 * (1 + expected.abs().max().item())):
            raise RuntimeError("onnxruntime's MatMulNBits gave a wrong product on this CPU")


@functools.lru_cache(maxsize=None)
def fast_kernel_reason() -> str | None:
    """None when ONNX Runtime's blockwise kernel runs here, else one line saying why not."""
    try:
        ort_linear(torch.linspace(-1, 1, 8 * 40).reshape(8, 40), torch.zeros(8))
        return None
    except (ImportError, RuntimeError) as err:
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:160] if str(err).strip() else ''}"


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None, block: int = BLOCK) -> Linear:
    """The fast kernel where it runs; else the torch fallback, said once in the log."""
    reason = fast_kernel_reason()
    if reason is None:
        return ort_linear(weight, bias, block)
    _log_fallback(reason)
    return torch_linear(weight, bias, block)


@functools.lru_cache(maxsize=1)
def _log_fallback(reason: str) -> None:
    log.warning("int8-blocks: onnxruntime's kernel does not run here (%s); multiplying the same int8 "
                "weights in float32 instead (same numbers, float32's speed)", reason)
