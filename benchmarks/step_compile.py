"""Would torch.compile make the decoding step fast enough? Times ``Seq2Seq.step`` (eager, as the
demo runs it) against the same step compiled by TorchInductor, for one row and for a beam of 5.

    python -m benchmarks.step_compile --model assets/models/en-de --threads 2

The compiled step is a copy of the inference step's maths (attention models without input
feeding): matmuls in bfloat16 on frozen weights, state and softmax in float32, like the eager
step with bfloat16 matmuls. Inductor fuses the ~30 small pointwise ops per step into a few C++
loops (``freezing``, ``cpp_wrapper``, dynamic shapes so one graph serves every source length).
Prints compile time, per-step medians (the median over rounds of each round's median call) and the largest log-prob difference from the eager step.
An experiment: the demo does not use it (see the README's decoding benchmark).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from s2s_demo.hub import load, parse_ref
from s2s_demo.model import Seq2Seq

from .common import machine_line, median_us


class CompiledStep(nn.Module):
    """The inference step of ``model`` as one graph: (tokens (N,), h/c (L, N, Hd), keys (N, S, Hd),
    memory (N, S, M)) -> log-probs (N, V), attention (N, S), h', c'."""

    def __init__(self, model: Seq2Seq, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if model.attention is None or model.config.input_feeding or model.attention.kind == "additive":
            raise ValueError("the compiled step covers dot/general attention without input feeding")
        dec, self.dtype = model.decoder, dtype
        self.cells = nn.ParameterList(
            torch.cat([getattr(dec, f"weight_ih_l{k}"), getattr(dec, f"weight_hh_l{k}")], 1).detach().to(dtype)
            for k in range(model.config.num_layers))
        self.biases = nn.ParameterList((getattr(dec, f"bias_ih_l{k}") + getattr(dec, f"bias_hh_l{k}")).detach()
                                       for k in range(model.config.num_layers))
        self.combine = nn.Parameter(model.combine.weight.detach().to(dtype))
        self.generator = nn.Parameter(model.generator.weight.detach().to(dtype))
        self.generator_bias = nn.Parameter(model.generator.bias.detach().clone())
        self.embed = nn.Parameter(model.tgt_embed.weight.detach().clone())

    def forward(self, tokens, h, c, keys, memory):
        x = F.embedding(tokens, self.embed)
        new_h, new_c = [], []
        for k, (weight, bias) in enumerate(zip(self.cells, self.biases)):
            gates = F.linear(torch.cat([x, h[k]], 1).to(self.dtype), weight).float() + bias
            i, f, g, o = gates.chunk(4, 1)
            c_next = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c_next)
            new_h.append(x)
            new_c.append(c_next)
        weights = torch.softmax(torch.bmm(x.unsqueeze(1), keys.transpose(1, 2)), -1)  # (N, 1, S)
        context = torch.bmm(weights, memory).squeeze(1)
        pre = torch.tanh(F.linear(torch.cat([x, context], 1).to(self.dtype), self.combine))
        log_probs = torch.log_softmax(F.linear(pre, self.generator).float() + self.generator_bias, -1)
        return log_probs, weights.squeeze(1), torch.stack(new_h), torch.stack(new_c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300, help="timed calls of each step per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each timing eager then compiled")
    parser.add_argument("--source-length", type=int, default=13, help="source pieces (val's median is ~13)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import torch._inductor.config as inductor_config

    inductor_config.freezing, inductor_config.cpp_wrapper = True, True
    model = load(*parse_ref(args.model), inference_dtype="bfloat16").model
    print(machine_line())
    compiled = torch.compile(CompiledStep(model).eval(), dynamic=True)
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(4, model.config.src_vocab_size, (1, args.source_length), generator=generator)
    with torch.no_grad():
        state = model.encode(src, torch.tensor([args.source_length]))
        for rows in (1, 5):
            picked = torch.zeros(rows, dtype=torch.long)
            st = state.select(picked, memory_rows=picked) if rows > 1 else state
            tokens = torch.full((rows,), model.config.bos_id)
            inputs = (tokens, st.h, st.c, st.keys, st.memory)
            start = time.perf_counter()
            log_probs = compiled(*inputs)[0]
            compile_s = time.perf_counter() - start
            diff = (log_probs - model.step(tokens, st)[0]).abs().max().item()
            # rounds alternate the two, so the VM's drift reaches both alike
            rounds = [(median_us(lambda: model.step(tokens, st), args.repeats),
                       median_us(lambda: compiled(*inputs), args.repeats)) for _ in range(args.rounds)]
            eager, fused = (statistics.median(column) / 1000 for column in zip(*rounds))
            print(f"{rows} row(s): eager step {eager:.3f} ms, compiled {fused:.3f} ms "
                  f"(first call {compile_s:.1f} s); largest log-prob difference {diff:.3f}")


if __name__ == "__main__":
    main()
