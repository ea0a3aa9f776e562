"""Inside the LSTM: gates, cells and the bridge along one translation, from the textbook equations.

For a source and the tokens of a hypothesis, :func:`record` replays the model's float32
weights (``Seq2Seq``'s own parameters, whatever arithmetic decoding used) with the LSTM cell
written out, PyTorch's gate order and all::

    i, f, g, o = W_ih x + b_ih + W_hh h + b_hh   (split in four)
    i, f, o = sigmoid(i, f, o);  g = tanh(g)
    c' = f * c + i * g;          h' = o * tanh(c')

and returns, per decoder step and layer, the input, forget and output gates, the cell and the
hidden state; per source piece and encoder layer, the forward and backward states (an LSTM's,
or a GRU's for imported models); and the bridge: each layer's final forward and backward
states, their concatenation and the decoder's initial state as the model computes it. With
input feeding, each step's input also holds the previous step's attentional output, read from
the model's teacher-forced pass. Replaying changes nothing in the translation.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import Seq2Seq

QUANTITIES = ("input_gate", "forget_gate", "output_gate", "cell", "hidden")


def lstm_cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> dict:
    """One step of one LSTM layer: x (In,), h and c (H,) -> gates, new cell and hidden (H,) each."""
    i, f, g, o = (w_ih @ x + b_ih + w_hh @ h + b_hh).chunk(4)
    i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
    c = f * c + i * g
    return {"input_gate": i, "forget_gate": f, "output_gate": o, "cell": c, "hidden": o * torch.tanh(c)}


def gru_cell(x: torch.Tensor, h: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> dict:
    """One step of one GRU layer (torch's gate order r, z, n): x (In,), h (H,) -> new hidden (H,)."""
    xr, xz, xn = (w_ih @ x + b_ih).chunk(3)
    hr, hz, hn = (w_hh @ h + b_hh).chunk(3)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    return {"hidden": (1 - z) * torch.tanh(xn + r * hn) + z * h}


def _weights(lstm: nn.LSTM, layer: int, suffix: str = "") -> tuple[torch.Tensor, ...]:
    name = f"l{layer}{suffix}"
    return tuple(getattr(lstm, f"{kind}_{name}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def run_layer(lstm: nn.LSTM | nn.GRU, layer: int, inputs: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
              reverse: bool = False) -> list[dict]:
    """A layer over inputs (T, In) from (h, c) (H,): one ``lstm_cell`` dict per position, in
    input order (a backward layer runs from the end, its results are put back in order)."""
    weights = _weights(lstm, layer, "_reverse" if reverse else "")
    order = range(inputs.size(0) - 1, -1, -1) if reverse else range(inputs.size(0))
    steps = {}
    for t in order:
        if isinstance(lstm, nn.GRU):
            steps[t] = gru_cell(inputs[t], h, *weights)
        else:
            steps[t] = lstm_cell(inputs[t], h, c, *weights)
            c = steps[t]["cell"]
        h = steps[t]["hidden"]
    return [steps[t] for t in range(inputs.size(0))]


def record(model: Seq2Seq, source_ids: list[int], target_ids: list[int]) -> dict:
    """The LSTM's internals along ``target_ids`` (the output, EOS included) for ``source_ids``.

    Returns lists (JSON-ready): ``encoder``: per layer, ``forward`` and ``backward`` hidden
    states (S, He); ``bridge``: per layer, ``forward_final``, ``backward_final`` (He,),
    ``concatenated`` (2He,), ``decoder_h0`` and ``decoder_c0`` (Hd,); ``decoder``: per layer,
    each quantity of ``QUANTITIES`` as (T, Hd), T = len(target_ids), step t having read the
    token before it (BOS at step 0).
    """
    cfg = model.config
    with torch.no_grad():
        # the decoder's initial state as the model computes it (whichever bridge it has)
        initial = model.encode(torch.tensor([source_ids]), torch.tensor([len(source_ids)]))
        x = model.src_embed(torch.tensor(source_ids))  # (S, E)
        encoder, bridge = [], []
        for layer in range(cfg.num_layers):
            zeros = x.new_zeros(cfg.enc_hidden_size)
            forward = run_layer(model.encoder, layer, x, zeros, zeros)
            backward = run_layer(model.encoder, layer, x, zeros, zeros, reverse=True)
            fwd_h = torch.stack([s["hidden"] for s in forward])
            bwd_h = torch.stack([s["hidden"] for s in backward])
            encoder.append({"forward": fwd_h, "backward": bwd_h})
            # final states: the forward layer's last position, the backward layer's first
            bridge.append({"forward_final": forward[-1]["hidden"], "backward_final": backward[0]["hidden"],
                           "concatenated": torch.cat([forward[-1]["hidden"], backward[0]["hidden"]]),
                           "decoder_h0": initial.h[layer, 0], "decoder_c0": initial.c[layer, 0]})
            x = torch.cat([fwd_h, bwd_h], dim=-1)  # the next layer's input
        tgt_in = torch.tensor([cfg.bos_id] + list(target_ids[:-1]))  # (T,)
        inputs = model.tgt_embed(tgt_in)  # (T, E)
        if cfg.input_feeding:  # each step also reads the previous step's attentional output
            pre, _, _ = model.decode_sequence(tgt_in.unsqueeze(0), initial)  # (1, T, O)
            inputs = torch.cat([inputs, torch.cat([initial.feed, pre[0, :-1]])], dim=-1)
        decoder = []
        for layer in range(cfg.num_layers):
            steps = run_layer(model.decoder, layer, inputs, bridge[layer]["decoder_h0"], bridge[layer]["decoder_c0"])
            decoder.append({q: torch.stack([s[q] for s in steps]) for q in QUANTITIES})
            inputs = decoder[-1]["hidden"]
    return _to_lists({"encoder": encoder, "bridge": bridge, "decoder": decoder,
                      "num_layers": cfg.num_layers, "quantities": list(QUANTITIES)})


def _to_lists(value):
    """Tensors -> nested lists of floats rounded to 5 decimals (in torch: a Python round per
    float would cost more than the replay itself)."""
    if torch.is_tensor(value):
        return torch.round(value, decimals=5).tolist()
    if isinstance(value, dict):
        return {k: _to_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_lists(v) for v in value]
    return value
