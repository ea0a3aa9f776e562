"""The LSTM sequence-to-sequence model: BiLSTM encoder, bridge, attentional LSTM decoder.

Shapes: B = batch, S = source length, T = target length, V = target vocabulary,
E = embedding size, He = encoder hidden size per direction, Hd = decoder hidden size,
L = layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .calibration import Calibration
from .config import ModelConfig


@dataclass
class DecoderState:
    """Everything ``Seq2Seq.step`` needs besides the previous token.

    ``h``, ``c``: (L, N, Hd); ``feed``: (N, O) previous attentional output (input feeding)
    or None; ``memory``: (N, S, 2He); ``keys``: (N, S, Hd or 2He) memory pre-projected for the
    attention score; ``src_mask``: (N, S) True at real tokens; ``padded``: False when no
    row has padding, so attention can skip the mask.
    """

    h: torch.Tensor
    c: torch.Tensor
    feed: torch.Tensor | None
    memory: torch.Tensor
    keys: torch.Tensor | None
    src_mask: torch.Tensor
    padded: bool = True
    # the last step's logits (N, V) where calibration changes their softmax (else None): the
    # network's own log-probs are their log_softmax, computed only for the rows a trace shows
    network: torch.Tensor | None = None

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
        return DecoderState(self.h[:, rows], self.c[:, rows], feed, mem, keys, mask, self.padded)


class StepModel(Protocol):
    """What decoding, recording and every view need of a model: ``Seq2Seq`` (autograd, the
    reference) and ``s2s_demo.inference.InferenceEngine`` (packed weights) both provide it.
    Nothing outside the model reads its private attributes."""

    config: ModelConfig

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> "DecoderState":
        """src (B, S) padded ids, lengths (B,) -> the initial DecoderState of B rows."""

    def step(self, prev_tokens: torch.Tensor, state: "DecoderState"
             ) -> tuple[torch.Tensor, torch.Tensor | None, "DecoderState"]:
        """prev_tokens (N,) -> calibrated log-probs (N, V), attention (N, S) or None, the new
        state (its ``network`` field: the logits, where calibration changes their softmax)."""


class Attention(nn.Module):
    """Global attention with Luong's general (bilinear) or Bahdanau's additive score.

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
        self.calibration = Calibration.from_config(cfg.calibration)
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        self.emb_dropout = nn.Dropout(cfg.emb_dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        inter = cfg.dropout if cfg.num_layers > 1 else 0.0
        rnn = nn.GRU if cfg.encoder_rnn == "gru" else nn.LSTM
        self.encoder = rnn(cfg.emb_size, cfg.enc_hidden_size, cfg.num_layers,
                           batch_first=True, bidirectional=True, dropout=inter)
        # The bridge: [forward; backward] final state -> decoder initial state (cfg.bridge says which).
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
        self.combine = nn.Linear(combine_in, self.output_size, bias=cfg.combine_bias)
        self.generator = nn.Linear(self.output_size, cfg.tgt_vocab_size, bias=True)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------ encoder
    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> DecoderState:
        """src (B, S) padded ids, lengths (B,) -> the initial DecoderState for B rows."""
        return self.encode_with(src, lengths, self.encoder, self.bridge_layers(), self.key_projection())

    def bridge_layers(self) -> dict:
        """The bridge's two products by name, as ``encode_with`` takes them."""
        return {"bridge_h": self.bridge_h, "bridge_c": self.bridge_c}

    def key_projection(self) -> nn.Module | None:
        """The attention's key projection (None for dot attention or none)."""
        return self.attention.key_proj if self.attention is not None else None

    def encode_with(self, src: torch.Tensor, lengths: torch.Tensor, encoder: nn.Module,
                    bridge: dict, key_proj, embedded: torch.Tensor | None = None) -> DecoderState:
        """``encode`` with the encoder LSTM, the bridge's two products (by name) and the
        attention's key projection given: the model's own, or an inference engine's copies
        in another arithmetic (``s2s_demo.inference``). ``embedded`` (B, S, E) replaces the
        source embeddings (attribution differentiates with respect to them).

        Packed sequences make the result independent of how much padding a row has.
        """
        cfg = self.config
        encoder_dtype = getattr(encoder, "weight_hh_l0", None)
        emb = self.emb_dropout(self.src_embed(src)) if embedded is None else embedded
        if encoder_dtype is not None:  # a bfloat16 copy takes bfloat16 inputs
            emb = emb.to(encoder_dtype.dtype)
        padded = not bool((lengths == src.size(1)).all())
        if not padded:
            # no padding (one sentence, as on the demo page): packing would only cost time
            memory, final = encoder(emb)
        else:
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, final = encoder(packed)
            memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        # an LSTM's final state is (h, c), a GRU's h alone; the last_hidden bridge reads h only
        h, c = final if isinstance(final, tuple) else (final, final)
        if cfg.bridge == "last_hidden":
            c = h
        memory, h, c = self.dropout(memory.float()), h.float(), c.float()
        batch = src.size(0)

        def bridge_state(state: torch.Tensor, name: str) -> torch.Tensor:
            # (2L, B, He) -> (L, B, 2He): concatenate each layer's forward and backward state.
            state = state.view(cfg.num_layers, 2, batch, cfg.enc_hidden_size)
            state = torch.cat([state[:, 0], state[:, 1]], dim=-1)
            if cfg.bridge == "last_hidden":  # the last layer's, for every decoder layer
                state = state[-1:].expand(cfg.num_layers, -1, -1)
            return torch.tanh(_rows(bridge[name], state))

        src_mask = src != cfg.pad_id
        keys = None
        if self.attention is not None:
            keys = memory if key_proj is None else _rows(key_proj, memory)
        feed = memory.new_zeros(batch, self.output_size) if cfg.input_feeding else None
        return DecoderState(bridge_state(h, "bridge_h").contiguous(), bridge_state(c, "bridge_c").contiguous(),
                            feed, memory, keys, src_mask, padded)

    # ------------------------------------------------------------------ decoder
    def decode_sequence(self, tgt_in: torch.Tensor, state: DecoderState
                ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """Run the decoder over tgt_in (N, T) (teacher forcing) -> pre-outputs (N, T, O),
        attention (N, T, S) or None and the state after the last position; ``output_log_probs``
        turns pre-outputs into the distributions every view shows."""
        emb = self.emb_dropout(self.tgt_embed(tgt_in))
        if self.config.input_feeding:
            return self._decode_input_feeding(emb, state)
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
            out, (h, c) = self.decoder(x, (h, c))
            pre, attn = self._combine(out, state)
            feed = pre.squeeze(1)
            outputs.append(pre)
            attns.append(attn)
        new_state = DecoderState(h, c, feed, state.memory, state.keys, state.src_mask)
        return torch.cat(outputs, 1), torch.cat(attns, 1), new_state

    def _combine(self, out: torch.Tensor, state: DecoderState
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder outputs (N, T, Hd) -> attentional pre-output (N, T, O) and weights."""
        if self.attention is None:
            return self.dropout(torch.tanh(self.combine(out))), None
        context, attn = self.attention(out, state.keys, state.memory, state.src_mask)
        return self.dropout(torch.tanh(self.combine(torch.cat([out, context], -1)))), attn

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """src (B, S), src_lengths (B,), tgt_in (B, T) starting with BOS -> logits (B, T, V) for
        the next token at every position (teacher forcing: the whole target at once)."""
        pre, _, _ = self.decode_sequence(tgt_in, self.encode(src, src_lengths))
        return self.logits(pre)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """One decoding step for N rows: prev_tokens (N,) -> log-probs (N, V),
        attention (N, S) or None, and the new state. The reference step (nn.LSTM, autograd);
        decoding runs ``s2s_demo.inference.InferenceEngine.step``, the same maths on packed weights."""
        pre, attn, new_state = self.decode_sequence(prev_tokens.unsqueeze(1), state)
        log_probs, new_state.network = calibrated(self.calibration, self.logits(pre.squeeze(1)))
        return log_probs, (attn.squeeze(1) if attn is not None else None), new_state

    def decoder_states(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """The decoder's top-layer hidden states (N, T, Hd) along tgt_in (N, T) (teacher forcing,
        position t having read tgt_in[:, t]); models without input feeding, whose LSTM runs over
        the whole sequence at once."""
        if self.config.input_feeding:
            raise ValueError("decoder states along a sequence cover models without input feeding")
        out, _ = self.decoder(self.emb_dropout(self.tgt_embed(tgt_in)), (state.h, state.c))
        return out

    def output_log_probs(self, pre: torch.Tensor) -> torch.Tensor:
        """Pre-outputs (..., O) -> the calibrated log-probs (..., V) every view shows."""
        return self.calibration.log_probs(self.logits(pre))

    def logits(self, pre: torch.Tensor) -> torch.Tensor:
        """Pre-output (..., O) -> logits (..., V), divided by the model's temperature."""
        logits = self.generator(pre)
        return logits if self.config.temperature == 1.0 else logits / self.config.temperature

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _rows(layer, x: torch.Tensor) -> torch.Tensor:
    """Apply ``layer`` (nn.Linear or an inference kernel taking rows) to x (..., I) -> (..., O)."""
    if isinstance(layer, nn.Module):
        return layer(x)
    return layer(x.reshape(-1, x.size(-1))).view(*x.shape[:-1], -1)


def calibrated(calibration: Calibration, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """logits (N, V) -> the calibrated log-probs (N, V) every view shows, and ``logits`` itself
    where calibration changes them, else None. The network's own log-probs are not computed here:
    a trace shows them for one row a step (``Recorder``), so a softmax over every row at every
    step would be wasted (10-20% of the calibration's time in ad-hoc timing, 1 to 320 rows)."""
    if calibration.identity:
        return torch.log_softmax(logits, dim=-1), None
    return calibration.log_probs(logits), logits


def sequence_log_prob(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                      tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs (B, T) the model gives to tgt_out under teacher forcing."""
    logits = model(src, src_lengths, tgt_in)
    return F.log_softmax(logits, -1).gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1)
