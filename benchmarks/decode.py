"""Decoding speed: per-sentence latency with full traces, and batched throughput.

    python -m benchmarks.decode --model assets/models/de-en --threads 2 [--dtype float32] [--rounds 5]

Latency: the first --sentences sentences of Multi30k val, one at a time, through
Translator.translate and Trace.to_dict (the page's and the API's code path: full traces, as
served), greedy and beam 5.
Throughput: the whole test_2016_flickr split through translate_batch (no traces).
--breakdown: where a greedy sentence's time goes, as medians of nested stages, each sentence
through every stage before the next sentence (so the VM's drift is shared): the encoder; the encoder and the model's steps along the greedy output; the search
without and with recording; the whole ``translate`` (adds tokenizing, familiarity and building
the Trace); and ``to_dict`` after it (what the API returns). Then the same for beam 5 from the
search on, and for each the served trace's time as a multiple of the search alone (the median
of that ratio over the sentences).
--profile: torch.profiler's table of the ops greedy ``translate`` spends its time in, and the
share of the matrix products (the step's weight-bound matmuls and the encoder's LSTM), which
no rearranging of the small ops around them can remove.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from s2s_demo.decoding import search, translate_ids
from s2s_demo.hub import parse_ref
from s2s_demo.translator import load
from s2s_demo.inference import ARITHMETIC_CHOICES
from s2s_demo.runtime import OPT_OUT_ENV, tune_allocator
from s2s_demo.settings import DecodeSettings
from train.configuration import multi30k_dir
from train.prepare import read_split

from .common import latencies_ms, machine_line, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/de-en")
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="the targets are for 2 cores")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1,
                        help="latency passes over the sentences (each round's median is printed too)")
    parser.add_argument("--breakdown", action="store_true", help="also time the stages of a greedy sentence")
    parser.add_argument("--profile", action="store_true", help="also profile greedy translate by op")
    parser.add_argument("--arithmetic", "--dtype", choices=ARITHMETIC_CHOICES, default="auto",
                        help="inference dtype of the decoding matmuls (auto: what the demo uses)")
    parser.add_argument("--length-penalty", type=float, default=None,
                        help="GNMT alpha for beam 5 (default: the model's value, tuned on val)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tuned = tune_allocator()  # as the app does
    translator = load(*parse_ref(args.model), arithmetic=args.arithmetic)
    cfg = translator.model.config
    data = {"corpus": "multi30k", "path": args.data, "src_lang": cfg.src_lang, "tgt_lang": cfg.tgt_lang}
    val = read_split(data, "val").source[: args.sentences]
    print(machine_line())
    dtype = translator.engine.arithmetic
    print(f"model: {args.model} ({translator.model.num_parameters():,} parameters), "
          f"arithmetic {dtype} (--dtype {args.arithmetic}); malloc thresholds "
          f"{'fixed' if tuned else f'glibc default ({OPT_OUT_ENV}=0 or not glibc)'}")
    if args.length_penalty is None:
        lp, lp_source = translator.default_settings().length_penalty, "the model’s tuned value"
    else:
        lp, lp_source = args.length_penalty, "--length-penalty"
    print(f"beam5 length penalty: alpha {lp} ({lp_source})")
    latency_settings = {"greedy": DecodeSettings(method="greedy"),
                        "beam5": DecodeSettings(method="beam", beam_size=5, length_penalty=lp)}
    times = {name: [] for name in latency_settings}
    for round_ in range(args.rounds):  # rounds interleave the methods: a VM's speed drifts
        for name, settings in latency_settings.items():
            # as served: the trace as the API returns it (to_dict), not only the Trace object
            round_times = latencies_ms(lambda text: translator.translate(text, settings).to_dict(), val)
            times[name].extend(round_times)
            if args.rounds > 1:
                print(f"  round {round_ + 1} {name:6s}: median {statistics.median(round_times):.1f} ms")
    for name, values in times.items():
        print(f"latency {name:6s} (full trace as served, batch 1, {len(val)} val sentences x {args.rounds} rounds): "
              f"median {statistics.median(values):.1f} ms, p90 {percentile(values, 90):.1f} ms")
    if args.breakdown:
        print_breakdown(translator, val, latency_settings["beam5"])
    if args.profile:
        print_profile(translator, val)
    test = read_split(data, "test_2016_flickr").source
    for name, settings in latency_settings.items():
        start = time.perf_counter()
        with counting_steps(translator.engine) as steps:
            outputs = translator.translate_batch(test, settings, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        # longer outputs mean more decoding steps: the first thing to check when a model is slower
        pieces = statistics.mean(len(translator.tokenizer.encode_target(text)) for text in outputs)
        print(f"batched {name:6s} (no traces, batch {args.batch_size}, {len(test)} test_2016 sentences): "
              f"{seconds:.1f} s, {len(test) / seconds:.1f} sentences/s, {pieces:.1f} target pieces per output, "
              f"{steps[0]} decoder steps")


@contextlib.contextmanager
def counting_steps(engine):
    """Count ``engine.step`` calls (one per decoding step of a whole batch): a batch runs until its
    last sentence is done, so steps, not output length, set the batched time."""
    count = [0]
    step = engine.step

    def counted(*args, **kwargs):
        count[0] += 1
        return step(*args, **kwargs)

    engine.step = counted
    try:
        yield count
    finally:
        del engine.step  # the instance attribute goes; the class's method is back


def print_breakdown(translator, texts: list[str], beam: DecodeSettings) -> None:
    """Median ms per sentence of nested stages of greedy decoding with a trace, then of ``beam``
    (see --breakdown); last, the served trace's cost as a multiple of the search alone."""
    model, greedy = translator.engine, DecodeSettings(method="greedy")
    sources = [translator.source_ids(text) for text in texts]
    outputs = [translate_ids(model, [ids], greedy)[0] + [model.config.eos_id] for ids in sources]

    def encode(i: int):
        return model.encode(torch.tensor([sources[i]]), torch.tensor([len(sources[i])]))

    def encode_and_steps(i: int) -> None:
        state, prev = encode(i), torch.tensor([model.config.bos_id])
        for token in outputs[i]:
            _, _, state = model.step(prev, state)
            prev = torch.tensor([token])

    def traced(settings: DecodeSettings) -> dict:
        return {"search, no trace": lambda i: search(model, [sources[i]], settings),
                "search, recording": lambda i: search(model, [sources[i]], settings, record=True),
                "translate (Trace)": lambda i: translator.translate(texts[i], settings),
                "+ served (to_dict)": lambda i: translator.translate(texts[i], settings).to_dict()}

    steps = statistics.mean(len(o) for o in outputs)
    for name, settings, stages in (
            ("greedy", greedy, {"encoder": encode, "+ model steps": encode_and_steps, **traced(greedy)}),
            (f"beam{beam.beam_size}", beam, traced(beam))):
        print(f"{name} breakdown ({len(texts)} val sentences, greedy outputs {steps:.1f} steps on average), "
              "median ms:")
        with torch.inference_mode():
            times = interleaved_ms(stages, len(texts))
        for stage, values in times.items():
            print(f"  {stage:18s} {statistics.median(values):.2f}")
        ratios = [served / alone for served, alone in zip(times["+ served (to_dict)"], times["search, no trace"])]
        print(f"  served trace / search alone: {statistics.median(ratios):.2f}x (median over sentences)")


def interleaved_ms(stages: dict, count: int, warmup: int = 5) -> dict[str, list[float]]:
    """Milliseconds of each stage (a function of the sentence index) on each of ``count``
    sentences, the stages run one after another on a sentence before the next: a VM's speed
    drifts 10-20% within minutes, and timing each stage in its own pass over the sentences
    turned that drift into differences between the stages."""
    for i in range(min(warmup, count)):
        for run in stages.values():
            run(i)
    times = {stage: [] for stage in stages}
    for i in range(count):
        for stage, run in stages.items():
            start = time.perf_counter()
            run(i)
            times[stage].append((time.perf_counter() - start) * 1000)
    return times


# the ops that multiply by weights: the decoding step's products (s2s_demo.inference) and the encoder
MATRIX_OPS = ("mkldnn::_linear_pointwise", "aten::mkldnn_rnn_layer", "aten::addmm", "aten::mm",
              "aten::linear", "quantized::linear_dynamic_fp16", "quantized::linear_dynamic",
              "aten::quantized_lstm")


def print_profile(translator, texts: list[str]) -> None:
    """torch.profiler's op table for greedy ``translate`` over ``texts``, then the matrix products'
    share of the profiled time, per sentence (the profiler adds ~1 µs an op)."""
    from torch.profiler import ProfilerActivity, profile

    greedy = DecodeSettings(method="greedy")
    for text in texts[:5]:  # warm-up, as in the latency runs
        translator.translate(text, greedy)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for text in texts:
            translator.translate(text, greedy)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    total_us = sum(e.self_cpu_time_total for e in events)
    matrix_us = sum(e.self_cpu_time_total for e in events if e.key in MATRIX_OPS)
    n = len(texts)
    print(f"greedy profile ({n} val sentences): {total_us / n / 1000:.2f} ms of ops per sentence, of which "
          f"matrix products {matrix_us / n / 1000:.2f} ms ({100 * matrix_us / total_us:.0f}%); "
          f"a step's decoder weights: {translator.engine.weight_bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
