"""The LSTM sequence-to-sequence model: BiLSTM encoder, bridge, attentional LSTM decoder.

Shapes: B = batch, S = source length, T = target length, V = target vocabulary,
E = embedding size, He = encoder hidden size per direction, Hd = decoder hidden size,
L = layers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig


INFERENCE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Rows per call that oneDNN lays the packed weights out for: a beam of 5 (one row runs as fast).
_PACK_ROWS = 5


def _onednn_linear_available() -> bool:
    ops = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise") \
        and hasattr(ops, "_reorder_linear_weight")


class InferenceLinear:
    """``x W^T + b`` for decoding steps, on weights laid out once for the few rows a step has.

    On CPU it uses oneDNN's pre-packed weights: on a 2-core AMD EPYC they beat MKL's addmm
    on W^T for every shape and row count (1 or 5) of the de-en step, by 1.4-5.5x, but
    for one tie (float32 combine, one row): ``python -m benchmarks.linear``. An Intel VM
    earlier had favoured addmm for a float32 row. In bfloat16 a step reads half the weight bytes
    (decoding one sentence is bound by reading them). The bias is added in float32 and
    the output is float32, except that ``keep_dtype=True`` without a bias returns the
    product in the inference dtype (for a result that only feeds the next matmul).
    weight (O, I), bias (O,) or None; call: x (N, I) -> (N, O).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> None:
        weight = weight.detach()
        self.dtype = dtype
        self.bias = bias.detach().float() if bias is not None else None
        self.packed = None
        if weight.device.type == "cpu" and _onednn_linear_available():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype).contiguous(), _PACK_ROWS)
        self.weight = weight.to(dtype) if self.packed is None else None

    def __call__(self, x: torch.Tensor, keep_dtype: bool = False) -> torch.Tensor:
        if x.dim() != 2:  # (..., I): the kernels take rows
            return self(x.reshape(-1, x.size(-1)), keep_dtype).view(*x.shape[:-1], -1)
        if self.packed is not None:
            if self.dtype == torch.float32:
                return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            out = torch.ops.mkldnn._linear_pointwise(x.to(self.dtype), self.packed, None, "none", [], "")
        else:
            out = F.linear(x.to(self.dtype), self.weight)
        if self.bias is None:
            return out if keep_dtype else out.float()
        # adding the float32 bias promotes a bfloat16 product back to float32 in one op
        return torch.add(self.bias, out)


@dataclass
class DecoderState:
    """Everything ``Seq2Seq.step`` needs besides the previous token.

    ``h``, ``c``: (L, N, Hd); ``feed``: (N, O) previous attentional output (input feeding)
    or None; ``memory``: (N, S, 2He); ``keys``: (N, S, Hd or 2He) memory pre-projected for the
    attention score; ``src_mask``: (N, S) True at real tokens; ``padded``: False when no
    row has padding, so attention can skip the mask; ``layouts``: the inference weight
    layouts the steps use, looked up once per search by ``encode`` (None in training).
    """

    h: torch.Tensor
    c: torch.Tensor
    feed: torch.Tensor | None
    memory: torch.Tensor
    keys: torch.Tensor | None
    src_mask: torch.Tensor
    padded: bool = True
    layouts: "_StepLayouts | None" = None

    def select(self, rows: torch.Tensor, memory_rows: torch.Tensor | None = None) -> "DecoderState":
        """Keep/reorder rows ``rows`` (N',) of the recurrent state.

        ``memory_rows`` reorders the memory too; beam search leaves it None because beams
        only ever move between rows that share one source sentence.
        """
        mem, keys, mask = self.memory, self.keys, self.src_mask
        if memory_rows is not None:
            mem, mask = mem[memory_rows], mask[memory_rows]
            keys = keys[memory_rows] if keys is not None else None
        feed = self.feed[rows] if self.feed is not None else None
        return DecoderState(self.h[:, rows], self.c[:, rows], feed, mem, keys, mask, self.padded, self.layouts)


class Attention(nn.Module):
    """Luong-style global attention with a dot, general (bilinear) or additive score.

    The score compares the decoder's current output ``h_t`` with every encoder output;
    ``additive`` is Bahdanau's ``v^T tanh(W h_t + U m_s)`` score used in this flow.
    ``Seq2Seq.encode`` projects the memory with ``key_proj`` once per sentence (the keys).
    """

    def __init__(self, kind: str, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.key_proj = nn.Linear(memory_size, query_size, bias=False)
        elif kind == "additive":
            self.key_proj = nn.Linear(memory_size, query_size, bias=False)
            self.query_proj = nn.Linear(query_size, query_size, bias=True)
            self.v = nn.Linear(query_size, 1, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                src_mask: torch.Tensor, padded: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Hd), keys (B, S, K), memory (B, S, M), src_mask (B, S)
        -> context (B, T, M), weights (B, T, S). ``padded=False`` skips the mask."""
        if self.kind == "additive":
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))
            scores = self.v(hidden).squeeze(-1)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))
        if padded:
            scores = scores.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, memory), weights


class Seq2Seq(nn.Module):
    """BiLSTM encoder -> bridge -> LSTM decoder (+ attention) -> vocabulary.

    ``encode`` runs once per source batch; ``step`` advances every row one token;
    ``forward`` is the teacher-forced training pass.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        self.emb_dropout = nn.Dropout(cfg.emb_dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        inter = cfg.dropout if cfg.num_layers > 1 else 0.0
        self.encoder = nn.LSTM(cfg.emb_size, cfg.enc_hidden_size, cfg.num_layers,
                               batch_first=True, bidirectional=True, dropout=inter)
        # The bridge: [forward; backward] final state of each layer -> decoder initial state.
        self.bridge_h = nn.Linear(2 * cfg.enc_hidden_size, cfg.dec_hidden_size)
        self.bridge_c = nn.Linear(2 * cfg.enc_hidden_size, cfg.dec_hidden_size)
        memory_size = 2 * cfg.enc_hidden_size
        # Tied embeddings need the pre-output layer to produce vectors of the embedding size.
        self.output_size = cfg.emb_size if cfg.tie_embeddings else cfg.dec_hidden_size
        dec_input = cfg.emb_size + (self.output_size if cfg.input_feeding else 0)
        self.decoder = nn.LSTM(dec_input, cfg.dec_hidden_size, cfg.num_layers,
                               batch_first=True, dropout=inter)
        if cfg.attention == "none":
            self.attention = None
            combine_in = cfg.dec_hidden_size
        else:
            self.attention = Attention(cfg.attention, cfg.dec_hidden_size, memory_size)
            combine_in = cfg.dec_hidden_size + memory_size
        self.combine = nn.Linear(combine_in, self.output_size, bias=False)
        self.generator = nn.Linear(self.output_size, cfg.tgt_vocab_size, bias=True)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------ encoder
    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> DecoderState:
        """src (B, S) padded ids, lengths (B,) -> the initial DecoderState for B rows.

        Packed sequences make the result independent of how much padding a row has.
        """
        cfg = self.config
        inference = not self.training and not torch.is_grad_enabled()
        encoder = self._inference_encoder() if inference else self.encoder
        linear = self._inference_linear if inference else (lambda name, layer: layer)
        emb = self.emb_dropout(self.src_embed(src)).to(encoder.weight_hh_l0.dtype)
        padded = not bool((lengths == src.size(1)).all())
        if not padded:
            # no padding (one sentence, as on the demo page): packing would only cost time
            memory, (h, c) = encoder(emb)
        else:
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, (h, c) = encoder(packed)
            memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        memory, h, c = self.dropout(memory.float()), h.float(), c.float()
        batch = src.size(0)

        def bridge(state: torch.Tensor, name: str) -> torch.Tensor:
            # (2L, B, He) -> (L, B, 2He): concatenate each layer's forward and backward state.
            state = state.view(cfg.num_layers, 2, batch, cfg.enc_hidden_size)
            state = torch.cat([state[:, 0], state[:, 1]], dim=-1)
            return torch.tanh(linear(name, getattr(self, name))(state))

        src_mask = src != cfg.pad_id
        keys = None
        if self.attention is not None:
            keys = memory if self.attention.kind == "dot" else linear("key_proj", self.attention.key_proj)(memory)
        feed = memory.new_zeros(batch, self.output_size) if cfg.input_feeding else None
        # checking the layout cache builds a key over every weight: once per search, not per step
        layouts = self._step_layouts() if inference else None
        return DecoderState(bridge(h, "bridge_h").contiguous(), bridge(c, "bridge_c").contiguous(),
                            feed, memory, keys, src_mask, padded, layouts)

    # ------------------------------------------------------------------ decoder
    def _decode(self, tgt_in: torch.Tensor, state: DecoderState
                ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """Run the decoder over tgt_in (N, T) -> pre-output (N, T, O), attention (N, T, S)."""
        emb = self.emb_dropout(self.tgt_embed(tgt_in))
        if self.config.input_feeding:
            return self._decode_input_feeding(emb, state)
        if not self.training and not torch.is_grad_enabled() and emb.size(1) == 1:
            out, (h, c) = self._lstm_step(emb, state.h, state.c)
        else:
            out, (h, c) = self.decoder(emb, (state.h, state.c))
        pre, attn = self._combine(out, state)
        return pre, attn, DecoderState(h, c, None, state.memory, state.keys, state.src_mask)

    def _decode_input_feeding(self, emb: torch.Tensor, state: DecoderState
                              ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        # Input feeding makes each step depend on the previous attentional output.
        outputs, attns = [], []
        h, c, feed = state.h, state.c, state.feed
        for t in range(emb.size(1)):
            x = torch.cat([emb[:, t : t + 1], feed.unsqueeze(1)], dim=-1)
            if self.training or torch.is_grad_enabled():
                out, (h, c) = self.decoder(x, (h, c))
            else:
                out, (h, c) = self._lstm_step(x, h, c)
            pre, attn = self._combine(out, state)
            feed = pre.squeeze(1)
            outputs.append(pre)
            attns.append(attn)
        new_state = DecoderState(h, c, feed, state.memory, state.keys, state.src_mask)
        return torch.cat(outputs, 1), torch.cat(attns, 1), new_state

    def _lstm_step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoder LSTM step in inference: x (N, 1, I), h/c (L, N, Hd) -> out (N, 1, Hd).

        Same maths as ``nn.LSTM`` (gates i, f, g, o), but one matmul per layer on fused
        weights: for a single time step torch's LSTM kernel costs ~8x more on CPU.
        """
        out, h, c = _lstm_layers(x.squeeze(1), h, c, self._step_layouts().cells)
        return out.unsqueeze(1), (h, c)

    def _step_layouts(self) -> "_StepLayouts":
        """The decoding step's weights laid out for inference (see InferenceLinear):
        per layer ``[x; h] -> gates`` on [W_ih W_hh] (4Hd, I+Hd) with bias b_ih + b_hh,
        then combine and generator. Rebuilt when a weight or the inference dtype changes."""
        layers = range(self.config.num_layers)
        cell_params = [getattr(self.decoder, f"{kind}_l{k}") for k in layers
                       for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        dtype = self.inference_dtype

        def build() -> _StepLayouts:
            cells = [InferenceLinear(torch.cat(cell_params[4 * k : 4 * k + 2], 1),
                                     cell_params[4 * k + 2] + cell_params[4 * k + 3], dtype) for k in layers]
            return _StepLayouts(cells, InferenceLinear(self.combine.weight, None, dtype),
                                InferenceLinear(self.generator.weight, self.generator.bias, dtype))

        params = [*cell_params, self.combine.weight, self.generator.weight, self.generator.bias]
        return self._cached("step", params, build)

    def _inference_linear(self, name: str, layer: nn.Linear) -> InferenceLinear:
        """``layer`` laid out for inference in the inference dtype (cached as ``name``)."""
        params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
        return self._cached(name, params, lambda: InferenceLinear(layer.weight, layer.bias, self.inference_dtype))

    def _inference_encoder(self) -> nn.LSTM:
        """The encoder LSTM in the inference dtype: in bfloat16 a copy, which halves the
        recurrent weights each source token reads (~2x faster encoding on CPU)."""
        if self.inference_dtype == torch.float32:
            return self.encoder
        return self._cached("encoder", list(self.encoder.parameters()),
                            lambda: copy.deepcopy(self.encoder).to(self.inference_dtype))

    @property
    def inference_dtype(self) -> torch.dtype:
        """The dtype the decoding step multiplies its weights in (state stays float32)."""
        return self.__dict__.get("_inference_dtype", torch.float32)

    @property
    def inference_dtype_name(self) -> str:
        """The inference dtype as :meth:`set_inference_dtype` takes it ("float32", "bfloat16")."""
        return str(self.inference_dtype).removeprefix("torch.")

    def set_inference_dtype(self, name: str) -> "Seq2Seq":
        """"float32" (exact) or "bfloat16" (half the weight bytes a step reads: ~2x faster
        decoding on CPUs with native bfloat16, log-probs within ~1e-2). Training and
        ``forward`` are unaffected."""
        if name not in INFERENCE_DTYPES:
            raise ValueError(f"inference dtype {name!r} is not one of {', '.join(INFERENCE_DTYPES)}")
        self.__dict__["_inference_dtype"] = INFERENCE_DTYPES[name]
        return self

    def _cached(self, name: str, params: list[torch.Tensor], build):
        """Inference-only weight layouts, rebuilt when a parameter is replaced or updated."""
        key = (self.inference_dtype, *((p.data_ptr(), p._version) for p in params))
        cache = self.__dict__.setdefault("_inference_cache", {})
        if name not in cache or cache[name][0] != key:
            with torch.no_grad():
                cache[name] = (key, build())
        return cache[name][1]

    def _combine(self, out: torch.Tensor, state: DecoderState
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder outputs (N, T, Hd) -> attentional pre-output (N, T, O) and weights."""
        if self.attention is None:
            return self.dropout(torch.tanh(self.combine(out))), None
        context, attn = self.attention(out, state.keys, state.memory, state.src_mask)
        return self.dropout(torch.tanh(self.combine(torch.cat([out, context], -1)))), attn

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                teacher_forcing: float = 1.0) -> torch.Tensor:
        """src (B, S), src_lengths (B,), tgt_in (B, T) starting with BOS
        -> logits (B, T, V) for the next token at every position.

        With ``teacher_forcing`` < 1 each step feeds the reference token with that
        probability and the model's own argmax otherwise (scheduled sampling), which
        needs a step-by-step loop; at 1.0 the whole target runs through the LSTM at once.
        """
        state = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0:
            pre, _, _ = self._decode(tgt_in, state)
            return self.generator(pre)
        logits = []
        prev = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            pre, _, state = self._decode(prev.unsqueeze(1), state)
            step_logits = self.generator(pre.squeeze(1))
            logits.append(step_logits)
            if t + 1 < tgt_in.size(1):
                use_reference = torch.rand(prev.shape, device=prev.device) < teacher_forcing
                prev = torch.where(use_reference, tgt_in[:, t + 1], step_logits.argmax(-1))
        return torch.stack(logits, 1)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """One decoding step for N rows: prev_tokens (N,) -> log-probs (N, V),
        attention (N, S) or None, and the new state."""
        if not self.training and not torch.is_grad_enabled():
            return self._inference_step(prev_tokens, state)
        pre, attn, new_state = self._decode(prev_tokens.unsqueeze(1), state)
        log_probs = torch.log_softmax(self.generator(pre.squeeze(1)), dim=-1)
        return log_probs, (attn.squeeze(1) if attn is not None else None), new_state

    def _inference_step(self, prev_tokens: torch.Tensor, state: DecoderState
                        ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """``step`` without autograd or dropout: the same maths in as few ops as it takes
        (each costs microseconds of dispatch, as much as a step's small matmuls)."""
        layouts = state.layouts or self._step_layouts()
        inp = F.embedding(prev_tokens, self.tgt_embed.weight)  # (N, E)
        if self.config.input_feeding:
            inp = torch.cat([inp, state.feed], dim=1)
        out, h, c = _lstm_layers(inp, state.h, state.c, layouts.cells)
        attn = None
        if self.attention is not None:
            context, attn = self._step_attention(out, state)
            out = torch.cat([out, context], dim=1)
        # in bfloat16, tanh runs on the product as it is: the generator takes bfloat16 anyway
        pre = torch.tanh(layouts.combine(out, keep_dtype=True))
        log_probs = torch.log_softmax(layouts.generator(pre), dim=-1)
        feed = pre.float() if self.config.input_feeding else None
        return log_probs, attn, DecoderState(h, c, feed, state.memory, state.keys, state.src_mask,
                                             state.padded, layouts)

    def _step_attention(self, query: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor]:
        """query (N, Hd) -> context (N, M), weights (N, S) for one step."""
        context, weights = self.attention(query.unsqueeze(1), state.keys, state.memory, state.src_mask,
                                          state.padded)
        return context.squeeze(1), weights.squeeze(1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class _StepLayouts:
    cells: list[InferenceLinear]
    combine: InferenceLinear
    generator: InferenceLinear


def _lstm_layers(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, cells: list[InferenceLinear]
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


def _lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, linear: InferenceLinear
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTM's cell (gates i, f, g, o) on fused weights: x (N, I), h/c (N, Hd),
    ``linear``: (I+Hd) -> 4Hd -> h', c' (N, Hd). One matmul, six pointwise ops."""
    gates = linear(torch.cat([x, h], dim=1))
    hidden = h.size(1)
    sig = torch.sigmoid(gates)  # g's sigmoid is wasted, but one op beats three
    i, f, o = sig[:, :hidden], sig[:, hidden : 2 * hidden], sig[:, 3 * hidden :]
    c_next = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * hidden : 3 * hidden]))
    return o * torch.tanh(c_next), c_next


def sequence_log_prob(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                      tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs (B, T) the model gives to tgt_out under teacher forcing."""
    logits = model(src, src_lengths, tgt_in)
    return F.log_softmax(logits, -1).gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1)
