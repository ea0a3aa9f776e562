"""A decoding step as one ONNX Runtime graph: the int8-blocks engine's step.

At batch 1 a step's products are only part of its cost: the torch engine issues ~30 small ops
from Python (the LSTM gates, attention, concatenations), each with its dispatch cost, and
ONNX Runtime adds a call per product. Here the whole step, from the previous tokens to the
logits and the new state, is one call: embedding, input feeding, every LSTM layer, attention,
the combine layer and the output layer, with the products in blockwise int8
(``s2s_demo.blockwise.product``) or, to check the graph against torch, in float32.
Calibration and the log-softmax stay in torch (``model.calibrated``), as in the torch engine.

Shapes: N rows, S source length, L layers, Hd decoder hidden size, E embedding size, O combine
output size, K key size, M memory size, V target vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch

from . import blockwise
from .model import DecoderState, Seq2Seq
from .onnx_graph import Graph, Runner, as_numpy


class FusedStep:
    """``Seq2Seq.step``'s maths up to the logits, in one ONNX Runtime call.

    ``products``: ``inference.step_products`` of ``model``, the generator already divided by the
    model's temperature; ``quantized``: blockwise int8 products, else float32 (exact to ~1e-6).
    """

    def __init__(self, model: Seq2Seq, products: dict, quantized: bool = True) -> None:
        self.config = model.config
        self.attention = model.attention
        self.run = Runner(self._graph(model, products, quantized))

    def __call__(self, prev_tokens: torch.Tensor, state: DecoderState):
        """prev_tokens (N,), the state before the step -> logits (N, V), pre-output (N, O),
        attention (N, S) or None, and the new h, c (L, N, Hd)."""
        feeds = {"tokens": as_numpy(prev_tokens), "h": as_numpy(state.h), "c": as_numpy(state.c)}
        if self.config.input_feeding:
            feeds["feed"] = as_numpy(state.feed)
        if self.attention is not None:
            feeds.update(keys=as_numpy(state.keys), memory=as_numpy(state.memory), mask=as_numpy(state.src_mask))
        logits, pre, h, c, *attn = (torch.from_numpy(array) for array in self.run(prev_tokens.size(0), feeds))
        return logits, pre, attn[0] if attn else None, h, c

    def _graph(self, model: Seq2Seq, products: dict, quantized: bool) -> bytes:
        cfg = self.config
        g = Graph("decoder_step")

        def linear(x: str, name: str) -> str:
            weight, bias = products[name]
            if quantized:
                codes, scales = blockwise.quantize(weight, blockwise.block_for(name))
                return blockwise.product(g, x, codes, scales, weight.size(1), bias)
            y = g.op("MatMul", x, g.const(weight.detach().float().T.numpy()))
            return g.op("Add", y, g.const(bias.detach().float().numpy())) if bias is not None else y

        x = g.op("Gather", g.const(model.tgt_embed.weight.detach().numpy()), g.input("tokens", np.int64, ["N"]))
        if cfg.input_feeding:
            x = g.op("Concat", x, g.input("feed", np.float32, ["N", "O"]), axis=1)
        h, c = g.input("h", np.float32, [cfg.num_layers, "N", "H"]), g.input("c", np.float32, [cfg.num_layers, "N", "H"])
        new_h, new_c = [], []
        for layer in range(cfg.num_layers):
            h_l, c_l = (g.op("Gather", state, g.const(layer, np.int64), axis=0) for state in (h, c))
            gates = linear(g.op("Concat", x, h_l, axis=1), f"cell {layer}")
            i, f, cand, o = g.op("Split", gates, outputs=4, axis=1, num_outputs=4)  # nn.LSTM's order
            c_next = g.op("Add", g.op("Mul", g.op("Sigmoid", f), c_l),
                          g.op("Mul", g.op("Sigmoid", i), g.op("Tanh", cand)))
            x = g.op("Mul", g.op("Sigmoid", o), g.op("Tanh", c_next))
            new_h.append(g.op("Unsqueeze", x, g.ints(0)))
            new_c.append(g.op("Unsqueeze", c_next, g.ints(0)))
        h_next, c_next = g.op("Concat", *new_h, axis=0), g.op("Concat", *new_c, axis=0)
        weights = None
        if model.attention is not None:
            context, weights = self._attention(g, model.attention, x)
            x = g.op("Concat", x, context, axis=1)
        pre = g.op("Tanh", linear(x, "combine"))
        state_shape = [cfg.num_layers, "N", "H"]
        outputs = {"logits": (linear(pre, "generator"), np.float32, ["N", "V"]), "pre": (pre, np.float32, ["N", "O"]),
                   "h_next": (h_next, np.float32, state_shape), "c_next": (c_next, np.float32, state_shape)}
        if weights is not None:
            outputs["attention"] = (weights, np.float32, ["N", "S"])
        return g.serialize(outputs)

    @staticmethod
    def _attention(g: Graph, attention, query: str) -> tuple[str, str]:
        """``model.Attention.forward`` for one position: query (N, Hd) -> context (N, M), weights (N, S)."""
        keys = g.input("keys", np.float32, ["N", "S", "K"])
        memory = g.input("memory", np.float32, ["N", "S", "M"])
        mask = g.input("mask", np.bool_, ["N", "S"])
        if attention.kind == "additive":
            q = g.op("Add", g.op("MatMul", query, g.const(attention.query_proj.weight.detach().T.numpy())),
                     g.const(attention.query_proj.bias.detach().numpy()))
            hidden = g.op("Tanh", g.op("Add", g.op("Unsqueeze", q, g.ints(1)), keys))  # (N, S, K)
            scores = g.op("Squeeze", g.op("MatMul", hidden, g.const(attention.v.weight.detach().T.numpy())),
                          g.ints(2))
        else:  # general: the keys are the memory projected once a sentence
            scores = g.op("Squeeze", g.op("MatMul", g.op("Unsqueeze", query, g.ints(1)),
                                          g.op("Transpose", keys, perm=[0, 2, 1])), g.ints(1))
        scores = g.op("Where", mask, scores, g.const(-np.inf))
        weights = g.op("Softmax", scores, axis=-1)
        context = g.op("Squeeze", g.op("MatMul", g.op("Unsqueeze", weights, g.ints(1)), memory), g.ints(1))
        return context, weights
