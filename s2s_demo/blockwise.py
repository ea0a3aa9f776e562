"""int8 weights in blocks: each run of ``BLOCK`` weights along a row keeps its own scale.

A decoding step on a 2-core CPU is bound by the bytes of weight it reads (a 2-layer en-de step:
21.9 MB in float32, 10.9 MB in float16). Blockwise int8 reads 1 + 4/block bytes a weight. One
scale per row (fbgemm's ``int8``) is not enough on its own: fbgemm also quantizes each call's
activations to uint8 with one scale for the whole row, and that error compounds through the
recurrent state (shown probabilities move by up to 0.07). Here a scale covers ``BLOCK`` inputs
of weights and, in the fast kernel, of activations too.

- Fast path: ONNX Runtime's ``MatMulNBits`` (8 bits, ``accuracy_level`` 4: the activations are
  quantized per block of ``BLOCK`` at each call and multiplied in int8, MLAS kernels for AVX2,
  AVX512 and ARM NEON), one single-node session per product.
- Fallback, wherever onnxruntime is missing or its kernel refuses this CPU: the same int8
  weights dequantized once to float32 and multiplied in torch. Same weights, float32
  activations, so the same numbers within the activations' rounding, read at float32's cost.

Shapes: weight (O, I); codes (O, KB, BLOCK) uint8 with KB = ceil(I / BLOCK); scales (O, KB).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import torch
import torch.nn.functional as F

BLOCK = 32  # weights per scale
# The LSTM cells take 128: on the shipped models' pages (benchmarks.arithmetic) the output layer's
# rounding moves the shown probabilities most, the cells' far less (en-de, 200 val sentences:
# cells 128 / output 32 moved them by at most 0.0083 at 5.81 MB a step; 32 / 32: 0.0087, 6.15 MB).
CELL_BLOCK = 128
ZERO_POINT = 128  # MatMulNBits' default zero point for 8 bits: codes are q + 128
_FEW_ROWS = 16  # up to this many rows a product runs on one thread


def block_for(product: str) -> int:
    """Block size of a step product named as ``inference.step_products`` names them."""
    return CELL_BLOCK if product.startswith("cell") else BLOCK


def bytes_per_weight(block: int) -> float:
    """An int8 code, plus a float32 scale per block."""
    return 1 + 4 / block

Linear = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger(__name__)


def quantize(weight: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (O, I) float -> codes (O, KB, BLOCK) uint8, scales (O, KB) float32: symmetric,
    q = round(w / scale) in [-127, 127] with scale = max |w| of the block / 127; the last
    block is padded with zeros."""
    rows, cols = weight.shape
    blocks = -(-cols // block)
    padded = F.pad(weight.detach().float(), (0, blocks * block - cols)).reshape(rows, blocks, block)
    scales = (padded.abs().amax(2) / 127).clamp(min=1e-12)
    q = torch.round(padded / scales.unsqueeze(2)).clamp(-127, 127)
    return (q + ZERO_POINT).to(torch.uint8), scales.contiguous()


def dequantize(codes: torch.Tensor, scales: torch.Tensor, cols: int) -> torch.Tensor:
    """codes (O, KB, BLOCK), scales (O, KB) -> the float32 weight (O, cols) they stand for."""
    weight = (codes.float() - ZERO_POINT) * scales.unsqueeze(2)
    return weight.reshape(codes.size(0), -1)[:, :cols].contiguous()


def torch_linear(weight: torch.Tensor, bias: torch.Tensor | None, block: int = BLOCK) -> Linear:
    """The fallback: ``x W_q^T + b`` with W_q the blockwise-int8 weight, in float32."""
    codes, scales = quantize(weight, block)
    dequantized = dequantize(codes, scales, weight.size(1))
    return lambda x: F.linear(x, dequantized, bias)


def ort_linear(weight: torch.Tensor, bias: torch.Tensor | None, block: int = BLOCK) -> Linear:
    """``x W_q^T + b`` on ONNX Runtime's MatMulNBits: x (N, I) float32 -> (N, O) float32.

    The kernel rounds activations to int8 per block, which alone moves the shown probabilities by
    up to 0.02. So the graph splits x into hi, x rounded as the kernel rounds it (which the kernel
    then reads exactly), and lo = x - hi, and multiplies both rows: W_q hi + W_q lo. Two rows read
    the weights once, so on a CPU bound by weight bytes the second row is almost free.

    Raises ImportError without onnxruntime/onnx and RuntimeError where the kernel does not run."""
    import onnxruntime as ort

    cols = weight.size(1)
    codes, scales = quantize(weight, block)
    graph = _split_product_graph(codes, scales, cols, bias).SerializeToString()
    try:
        # a few rows (a beam): one thread, done before a second would have woken (two made a step's
        # products 1.7x slower); a batch: every thread torch has
        runs = {threads: ort.InferenceSession(graph, _session_options(threads), providers=["CPUExecutionProvider"]).run
                for threads in {1, torch.get_num_threads()}}
    except Exception as err:  # onnxruntime raises its own exception types
        raise RuntimeError(f"onnxruntime's MatMulNBits did not load: {err}") from err
    few, many = runs[1], runs[torch.get_num_threads()]

    def linear(x: torch.Tensor) -> torch.Tensor:
        run = few if x.size(0) <= _FEW_ROWS else many
        return torch.from_numpy(run(None, {"x": x.detach().float().contiguous().numpy()})[0])

    dequantized = dequantize(codes, scales, cols)
    for rows in (2, _FEW_ROWS + 1):  # both sessions, against the same weights in float32
        probe = torch.linspace(-1, 1, rows * cols).reshape(rows, cols)
        expected = F.linear(probe, dequantized, bias)
        if not torch.allclose(linear(probe), expected, rtol=1e-3, atol=1e-3 * (1 + expected.abs().max().item())):
            raise RuntimeError("onnxruntime's MatMulNBits gave a wrong product on this CPU")
    return linear


def _session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads otherwise spin after each call, on the cores torch's next ops need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _split_product_graph(codes: torch.Tensor, scales: torch.Tensor, cols: int, bias: torch.Tensor | None):
    """The ONNX graph x (N, cols) -> W_q hi + W_q lo (+ bias), hi/lo as :func:`ort_linear` says."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rows, blocks, block = codes.shape
    padded = blocks * block
    constants = {"codes": codes.numpy(), "scales": scales.reshape(-1).numpy(),
                 "by_block": np.array([0, blocks, block], np.int64), "flat": np.array([0, padded], np.int64),
                 "pads": np.array([0, 0, 0, padded - cols], np.int64), "inv127": np.array(1 / 127, np.float32),
                 "tiny": np.array(1e-30, np.float32), "last_axis": np.array([2], np.int64),
                 "zero": np.array([0], np.int64), "cols": np.array([cols], np.int64), "one": np.array([1], np.int64)}
    node = helper.make_node
    x = "x"
    nodes = []
    if padded != cols:
        nodes.append(node("Pad", ["x", "pads"], ["x_padded"]))
        x = "x_padded"
    nodes += [node("Reshape", [x, "by_block"], ["xb"]),
              node("Abs", ["xb"], ["xb_abs"]),
              node("ReduceMax", ["xb_abs", "last_axis"], ["xb_max"], keepdims=1),
              node("Mul", ["xb_max", "inv127"], ["step0"]),
              node("Max", ["step0", "tiny"], ["step"]),
              node("Div", ["xb", "step"], ["units"]),
              node("Round", ["units"], ["units_r"]),
              node("Mul", ["units_r", "step"], ["hi_b"]),
              node("Reshape", ["hi_b", "flat"], ["hi_padded"])]
    hi = "hi_padded"
    if padded != cols:
        nodes.append(node("Slice", ["hi_padded", "zero", "cols", "one"], ["hi"]))
        hi = "hi"
    nodes += [node("Sub", ["x", hi], ["lo"]),
              node("Concat", [hi, "lo"], ["both"], axis=0),
              node("MatMulNBits", ["both", "codes", "scales"], ["products"], domain="com.microsoft",
                   K=cols, N=rows, bits=8, block_size=block, accuracy_level=4),
              node("Split", ["products"], ["y_hi", "y_lo"], axis=0, num_outputs=2),
              node("Add", ["y_hi", "y_lo"], ["y" if bias is None else "y_nobias"])]
    if bias is not None:
        constants["bias"] = bias.detach().float().numpy()
        nodes.append(node("Add", ["y_nobias", "bias"], ["y"]))
    used = {name for n in nodes for name in n.input}
    initializers = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in constants.items() if k in used]
    graph = helper.make_graph(nodes, "blockwise_int8_linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])


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
