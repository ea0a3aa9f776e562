"""Would torch.compile make the decoding step fast enough? Times ``Seq2Seq.step`` (eager, as the
demo runs it) against the same step compiled by TorchInductor, for one row and for a beam of 5.

    python -m benchmarks.step_compile --model assets/models/en-de --threads 2

The compiled step is a copy of the inference step's maths (attention models without input
feeding): matmuls in bfloat16 on frozen weights, state and softmax in float32, like the eager
step with bfloat16 matmuls. Inductor fuses the ~30 small pointwise ops per step into a few C++
loops (``freezing``, ``cpp_wrapper``, dynamic shapes so one graph serves every source length).
Prints compile time, per-step medians (the median over rounds of each round's median call) and the largest log-prob difference from the eager step.
``--translate`` then swaps the compiled step into the model and times whole sentences through
``Translator.translate`` (full traces, as ``benchmarks.decode``), greedy and beam 5, each of the
first --sentences val sentences with the eager step and at once with the compiled one (--rounds
times), and counts the outputs that stay the same. An experiment: the demo does not use it (see the README's decoding benchmark).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from s2s_demo.hub import load, parse_ref
from s2s_demo.model import DecoderState, Seq2Seq
from s2s_demo.settings import DecodeSettings
from train.prepare import read_split

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
    parser.add_argument("--translate", action="store_true", help="also time whole sentences (see above)")
    parser.add_argument("--sentences", type=int, default=200, help="val sentences for --translate")
    parser.add_argument("--data", default="../shared/data/multi30k")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import torch._inductor.config as inductor_config

    inductor_config.freezing, inductor_config.cpp_wrapper = True, True
    translator = load(*parse_ref(args.model), inference_dtype="bfloat16")
    model = translator.model
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
    if args.translate:
        time_sentences(translator, compiled, args)


def time_sentences(translator, compiled, args) -> None:
    """Milliseconds per sentence of ``translate`` with the eager and the compiled step, paired: each
    sentence runs with one step, then at once with the other, so the VM's drift reaches both."""
    model = translator.model
    cfg = model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    texts = read_split(data, "val").source[: args.sentences]

    def compiled_step(prev, state):
        log_probs, attn, h, c = compiled(prev, state.h, state.c, state.keys, state.memory)
        return log_probs, attn, DecoderState(h, c, None, state.memory, state.keys, state.src_mask,
                                             state.padded, state.layouts)

    steps = {"eager": model._inference_step, "compiled": compiled_step}
    methods = {"greedy": DecodeSettings(method="greedy"),
               "beam5": translator.default_settings().replace(method="beam", beam_size=5)}
    try:
        model._inference_step = compiled_step
        for settings in methods.values():  # inference tensors and beam rows compile graphs of their own
            for text in texts[:3]:
                translator.translate(text, settings)
        for method, settings in methods.items():
            times = {name: [] for name in steps}
            outputs = {name: [] for name in steps}
            for _ in range(args.rounds):
                for text in texts:
                    for name, step in steps.items():
                        model._inference_step = step  # the instance attribute shadows the method
                        start = time.perf_counter()
                        outputs[name].append(translator.translate(text, settings).translation)
                        times[name].append((time.perf_counter() - start) * 1000)
            saving = [e - c for e, c in zip(times["eager"], times["compiled"])]
            same = sum(a == b for a, b in zip(outputs["eager"], outputs["compiled"]))
            print(f"translate {method:6s} ({len(texts)} val sentences x {args.rounds} rounds, paired): eager "
                  f"median {statistics.median(times['eager']):.2f} ms, compiled {statistics.median(times['compiled']):.2f} ms, "
                  f"median saving {statistics.median(saving):.2f} ms; same output {same} of {len(saving)}")
    finally:
        del model._inference_step


if __name__ == "__main__":
    main()
