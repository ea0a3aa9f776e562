"""The decoding engine: a model's weights laid out once for the arithmetic decoding uses.

``Seq2Seq`` keeps one ``encode``/``step`` for training and reference (nn.LSTM, autograd).
Decoding a sentence is bound by reading the step's weights (a 2-layer en-de step reads
21.9 MB of float32), so ``InferenceEngine`` holds them packed for one arithmetic and runs
the same maths with one fused matmul per LSTM layer:

- ``float32``: oneDNN's pre-packed float32 weights; exact.
- ``bfloat16``: oneDNN's bfloat16 weights (half the bytes), bfloat16 activations into the
  products; needs AVX512 (bw, vl, dq) or AVX-NE-CONVERT, and is only fast with native
  bfloat16 (avx512_bf16 or amx_bf16).
- ``float16``: fbgemm's float16 weights (half the bytes) with float32 activations; any
  x86-64 CPU with AVX2 and F16C.
- ``int8``: fbgemm's int8 weights with one scale per output row, activations quantized per
  call (a quarter of the bytes); any x86-64 CPU with AVX2.
- ``int8-blocks``: int8 weights with a scale per block of inputs (``s2s_demo.blockwise``:
  about 0.27 of float32's bytes), float32 activations in effect; where ONNX Runtime runs it,
  the whole step is one call (``s2s_demo.fused_step``), else torch on the same weights.

``python -m benchmarks.arithmetic`` measures each against float32 on the page's numbers
(every top-10 probability and chosen token of every step) and BLEU; ``auto`` picks by
:func:`auto_arithmetic` (float16 on any x86-64 CPU with AVX2). State, biases, attention and the softmax stay float32 throughout.

Shapes: N rows (sentences x beams), S source length, Hd decoder hidden size, L layers.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import blockwise
from .fused_step import FusedStep
from .model import DecoderState, Seq2Seq, calibrated
from .runtime import RELEVANT_FLAGS, cpu_flags

ARITHMETICS = ("float32", "bfloat16", "float16", "int8", "int8-blocks")
# what a user may ask for: an arithmetic, or "auto" (the fastest this CPU runs accurately)
ARITHMETIC_CHOICES = ("auto", *ARITHMETICS)
# bytes a weight takes in each (fbgemm's int8 row scales: 4 bytes a row, left out; int8-blocks:
# blockwise.bytes_per_weight)
WEIGHT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}
# Rows per call that oneDNN lays the packed weights out for: a beam of 5 (one row runs as fast).
_PACK_ROWS = 5


class UnsupportedArithmetic(RuntimeError):
    """An arithmetic this CPU (or this torch build) cannot run; the message names why."""


# ------------------------------------------------------------------ what the CPU can run
@functools.lru_cache(maxsize=None)
def unsupported_reason(arithmetic: str) -> str | None:
    """None when ``arithmetic`` runs here, else one line naming the missing CPU feature.

    Each kernel is tried on a tiny weight: what oneDNN and fbgemm accept depends on the CPU
    and on ``ONEDNN_MAX_CPU_ISA`` / ``ATEN_CPU_CAPABILITY``, which the flags alone do not show.
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic {arithmetic!r} is not one of {', '.join(ARITHMETICS)}")
    try:
        with torch.no_grad():
            make_linear(torch.ones(8, 8), torch.zeros(8), arithmetic)(torch.ones(1, 8))
        return None
    except (RuntimeError, NotImplementedError) as err:
        have = ", ".join(f for f in RELEVANT_FLAGS if f in cpu_flags()) or "none"
        needs = {"bfloat16": "AVX512 (avx512bw, avx512vl, avx512dq) or avx_ne_convert",
                 "float16": "fbgemm (x86-64 with AVX2 and F16C)",
                 "int8": "fbgemm (x86-64 with AVX2)",
                 "int8-blocks": "onnxruntime or plain torch",
                 "float32": "oneDNN or plain torch"}[arithmetic]
        first_line = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        return (f"{arithmetic} decoding needs {needs}; this CPU's relevant flags: {have} "
                f"({first_line})")


def auto_arithmetic() -> str:
    """The fastest arithmetic that keeps the page's numbers within 0.01 of float32 and BLEU within
    0.2: float16 (fbgemm) wherever it runs, else float32.

    Measured on en-de (``benchmarks.arithmetic``, ``benchmarks.decode``): float16 moves a shown
    probability by at most 0.0005 and BLEU by 0; bfloat16 by up to 0.012 and +0.23 BLEU, and its
    batch-1 latency was no lower even with native bfloat16; int8 by up to 0.09. int8-blocks
    moves them by up to 0.0083 and reads 5.8 MB a step instead of 10.9, but on the AVX512
    development CPU, whose cache holds float16's weights, its one-call step (``fused_step``) was
    only as fast as float16's for greedy and slower for a beam (``benchmarks.decode``). Those
    three stay available by name."""
    return "float16" if unsupported_reason("float16") is None else "float32"


def resolve_arithmetic(name: str) -> str:
    """"auto" -> :func:`auto_arithmetic`; an arithmetic the CPU cannot run -> a clear error."""
    if name == "auto":
        return auto_arithmetic()
    reason = unsupported_reason(name)
    if reason:
        raise UnsupportedArithmetic(reason)
    return name


# ------------------------------------------------------------------ the products
Linear = Callable[[torch.Tensor], torch.Tensor]


def _onednn_linear(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> Linear:
    """oneDNN's pre-packed weights; bfloat16 multiplies bfloat16 activations and adds the
    float32 bias to the product (one op that also promotes it back to float32)."""
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype).contiguous(), _PACK_ROWS)
    if dtype == torch.float32:
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    if bias is None:
        return lambda x: torch.ops.mkldnn._linear_pointwise(x.to(dtype), packed, None, "none", [], "").float()
    return lambda x: torch.add(bias, torch.ops.mkldnn._linear_pointwise(x.to(dtype), packed, None, "none", [], ""))


def _fbgemm_float16(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    packed = torch.ops.quantized.linear_prepack_fp16(weight.contiguous(), bias)
    return lambda x: torch.ops.quantized.linear_dynamic_fp16(x, packed)


def _fbgemm_int8(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """Symmetric int8 weights, one scale per output row (so a row of small weights keeps
    its precision); fbgemm quantizes each call's activations to uint8 over their range."""
    scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
    with warnings.catch_warnings():  # quantize_per_channel warns that it is deprecated
        warnings.simplefilter("ignore")
        quantized = torch.quantize_per_channel(weight.contiguous(), scales,
                                               torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(quantized, bias)
    return lambda x: torch.ops.quantized.linear_dynamic(x, packed, True)


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None, arithmetic: str, product: str = "") -> Linear:
    """``x W^T + b`` in ``arithmetic``: weight (O, I), bias (O,) or None; x (N, I) float32 -> (N, O) float32.
    ``product``: the step product's name (``step_products``), which sets int8-blocks' block size."""
    weight = weight.detach().float()
    bias = bias.detach().float().contiguous() if bias is not None else None
    if arithmetic in ("float32", "bfloat16"):
        dtype = torch.float32 if arithmetic == "float32" else torch.bfloat16
        if torch.backends.mkldnn.is_available():
            return _onednn_linear(weight, bias, dtype)
        if dtype == torch.bfloat16:
            raise RuntimeError("this torch build has no oneDNN")
        return lambda x: F.linear(x, weight, bias)
    if arithmetic == "float16":
        return _fbgemm_float16(weight, bias)
    if arithmetic == "int8":
        return _fbgemm_int8(weight, bias)
    if arithmetic == "int8-blocks":
        return blockwise.make_linear(weight, bias, blockwise.block_for(product))
    raise ValueError(f"arithmetic {arithmetic!r} is not one of {', '.join(ARITHMETICS)}")


def _encoder_for(encoder: nn.Module, arithmetic: str) -> nn.Module:
    """The encoder RNN (LSTM or GRU) in ``arithmetic``: float32 as it is; bfloat16 a copy (half the
    recurrent bytes per source token); float16 / int8 torch's dynamically quantized LSTM;
    int8-blocks float16's (the encoder runs once a sentence; float16 moves shown probabilities by
    at most 0.0005)."""
    if arithmetic == "int8-blocks":
        arithmetic = "float16" if unsupported_reason("float16") is None else "float32"
    if arithmetic == "float32":
        return encoder
    if arithmetic == "bfloat16":
        return copy.deepcopy(encoder).to(torch.bfloat16)
    dtype = torch.float16 if arithmetic == "float16" else torch.qint8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # inplace swaps the module inside this new Sequential only: ``encoder`` itself is untouched,
        # and no second copy of its weights is made before they are packed
        return torch.ao.quantization.quantize_dynamic(nn.Sequential(encoder), {nn.LSTM, nn.GRU}, dtype=dtype,
                                                      inplace=True)[0]


def step_products(model: Seq2Seq) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """name -> (weight (O, I), bias (O,) or None) of every product one decoding step runs: per
    LSTM layer k, "cell k" [x; h] (N, I+Hd) -> gates (N, 4Hd) on [W_ih W_hh] with b_ih + b_hh;
    then "combine" and "generator" (without the temperature)."""
    dec = model.decoder
    products = {f"cell {k}": (torch.cat([getattr(dec, f"weight_ih_l{k}"), getattr(dec, f"weight_hh_l{k}")], 1),
                              getattr(dec, f"bias_ih_l{k}") + getattr(dec, f"bias_hh_l{k}"))
                for k in range(model.config.num_layers)}
    products["combine"] = (model.combine.weight, model.combine.bias)
    products["generator"] = (model.generator.weight, model.generator.bias)
    return {name: (w.detach(), b.detach() if b is not None else None) for name, (w, b) in products.items()}


def product_bytes(product: str, weight: torch.Tensor, arithmetic: str) -> float:
    """Bytes of ``weight`` (O, I), the step product ``product``, stored in ``arithmetic``."""
    if arithmetic == "int8-blocks":
        return weight.numel() * blockwise.bytes_per_weight(blockwise.block_for(product))
    return weight.numel() * WEIGHT_BYTES[arithmetic]


# ------------------------------------------------------------------ the engine
class InferenceEngine:
    """A model's decoding weights in one arithmetic, with ``Seq2Seq``'s ``encode``/``step``.

    Built once per loaded model (``translator.load``) from a copy of the model: a snapshot, so a
    model trained further needs a new engine, and the model's own modules never change mode
    or dtype. ``search`` takes an engine or a ``Seq2Seq`` (the reference path) alike.
    """

    def __init__(self, model: Seq2Seq, arithmetic: str = "float32") -> None:
        self.model = copy.deepcopy(model).eval()
        self.config = model.config
        self.arithmetic = resolve_arithmetic(arithmetic)
        self.device = next(model.parameters()).device
        if self.device.type != "cpu" and self.arithmetic != "float32":
            raise UnsupportedArithmetic(f"{self.arithmetic} decoding runs on the CPU only")
        with torch.no_grad():
            self._build(self.model)

    def _build(self, model: Seq2Seq) -> None:
        a = self.arithmetic
        products = step_products(model)
        # the model's temperature folded into the generator: logits / T at no cost per step
        scale = 1.0 / self.config.temperature
        weight, bias = products["generator"]
        products["generator"] = (weight * scale, bias * scale)
        # int8-blocks where ONNX Runtime runs it: the whole step in one call
        self.fused = FusedStep(model, products) if a == "int8-blocks" and blockwise.fast_kernel_reason() is None \
            else None
        # the cells also serve decoder_states; combine and generator only the step without ``fused``
        self.cells = [make_linear(*products[f"cell {k}"], a, f"cell {k}") for k in range(self.config.num_layers)]
        if self.fused is None:
            self.combine = make_linear(*products["combine"], a, "combine")
            self.generator = make_linear(*products["generator"], a, "generator")
        self.bridge = {name: make_linear(getattr(model, name).weight, getattr(model, name).bias, a)
                       for name in ("bridge_h", "bridge_c")}
        key_proj = getattr(model.attention, "key_proj", None)
        self.key_proj = make_linear(key_proj.weight, None, a) if key_proj is not None else None
        self.encoder = _encoder_for(model.encoder, a)
        self.tgt_embed = model.tgt_embed.weight.detach()

    @property
    def weight_bytes(self) -> float:
        """Bytes of the decoder weights one step multiplies by, in this arithmetic."""
        return sum(product_bytes(name, w, self.arithmetic) for name, (w, _) in step_products(self.model).items())

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> DecoderState:
        """src (B, S) padded ids, lengths (B,) -> the initial DecoderState for B rows."""
        return self.model.encode_with(src, lengths, self.encoder, self.bridge, self.key_proj)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """prev_tokens (N,) -> log-probs (N, V), attention (N, S) or None, the new state:
        ``Seq2Seq.step``'s maths without autograd or dropout, in as few ops as it takes."""
        if self.fused is not None:
            logits, pre, attn, h, c = self.fused(prev_tokens, state)
        else:
            logits, pre, attn, h, c = self._torch_step(prev_tokens, state)
        log_probs, network = calibrated(self.model.calibration, logits)
        feed = pre if self.config.input_feeding else None
        return log_probs, attn, DecoderState(h, c, feed, state.memory, state.keys, state.src_mask, state.padded,
                                             network)

    def _torch_step(self, prev_tokens: torch.Tensor, state: DecoderState):
        """The step up to the logits in torch: prev_tokens (N,) -> logits (N, V), pre-output (N, O),
        attention (N, S) or None, the new h, c (L, N, Hd); ``FusedStep``'s outputs."""
        inp = F.embedding(prev_tokens, self.tgt_embed)  # (N, E)
        if self.config.input_feeding:
            inp = torch.cat([inp, state.feed], dim=1)
        out, h, c = _lstm_layers(inp, state.h, state.c, self.cells)
        attn = None
        if self.model.attention is not None:
            context, weights = self.model.attention(out.unsqueeze(1), state.keys, state.memory,
                                                    state.src_mask, state.padded)
            attn = weights.squeeze(1)
            out = torch.cat([out, context.squeeze(1)], dim=1)
        pre = torch.tanh(self.combine(out))
        return self.generator(pre), pre, attn, h, c

    def decoder_states(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """``Seq2Seq.decoder_states`` in this arithmetic: tgt_in (N, T) -> top-layer hidden states
        (N, T, Hd), the LSTM cells alone (no attention, no output layer)."""
        if self.config.input_feeding:
            raise ValueError("decoder states along a sequence cover models without input feeding")
        h, c, outputs = state.h, state.c, []
        for t in range(tgt_in.size(1)):
            out, h, c = _lstm_layers(F.embedding(tgt_in[:, t], self.tgt_embed), h, c, self.cells)
            outputs.append(out)
        return torch.stack(outputs, 1)


def _lstm_layers(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, cells: list[Linear]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, I), h/c (L, N, Hd) -> top output (N, Hd), new h/c (L, N, Hd)."""
    if len(cells) == 1:  # a view instead of stacking one layer
        out, c_next = _lstm_cell(x, h[0], c[0], cells[0])
        return out, out.unsqueeze(0), c_next.unsqueeze(0)
    new_h, new_c = [], []
    for layer, cell in enumerate(cells):
        x, c_next = _lstm_cell(x, h[layer], c[layer], cell)
        new_h.append(x)
        new_c.append(c_next)
    return x, torch.stack(new_h), torch.stack(new_c)


def _lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, cell: Linear
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTM's cell (gates i, f, g, o) on fused weights: x (N, I), h/c (N, Hd) -> h', c'
    (N, Hd). One matmul, six pointwise ops."""
    gates = cell(torch.cat([x, h], dim=1))
    hidden = h.size(1)
    sig = torch.sigmoid(gates)  # g's sigmoid is wasted, but one op beats three
    i, f, o = sig[:, :hidden], sig[:, hidden : 2 * hidden], sig[:, 3 * hidden :]
    c_next = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * hidden : 3 * hidden]))
    return o * torch.tanh(c_next), c_next
