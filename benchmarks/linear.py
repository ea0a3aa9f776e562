"""The decoding step's products in every arithmetic, timed on a shipped model's shapes.

    python -m benchmarks.linear --model assets/models/en-de --threads 2 --rows 1 5

For each product of a step (each LSTM layer's [x; h] -> gates, combine, generator), each row
count and each arithmetic this CPU runs (``s2s_demo.inference.make_linear``, the kernels the
engine uses): median microseconds per call and the largest absolute error against the exact
float32 product. Last, a whole step's products one after another, as a step calls them: each
then finds less of its weights in cache than when timed alone, so this is the figure that
tracks a step's real cost, with the bytes of weights it reads. Then the same chain "from
memory": rotated over copies of the weights that together exceed any L3 share (--cold-mb), so
every step streams its weights from DRAM, as a step does on a CPU whose cache cannot hold them;
beside it the machine's read bandwidth (summing a 512 MB tensor, best of 5) and the time the
step's bytes alone take at that bandwidth: the physical floor of a batch-1 step.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from s2s_demo.hub import resolve
from s2s_demo.model_folder import load_model
from s2s_demo.inference import ARITHMETICS, make_linear, product_bytes, step_products, unsupported_reason

from .common import machine_line, median_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--cold-mb", type=float, default=96.0,
                        help="weights in all the copies the from-memory chain rotates over")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(resolve(args.model))
    products = step_products(model)
    print(machine_line())
    runnable = []
    for arithmetic in ARITHMETICS:
        reason = unsupported_reason(arithmetic)
        if reason:
            print(f"skipped {reason}")
        else:
            runnable.append(arithmetic)
    print(f"model: {args.model}; median µs per call of {args.repeats}; error: largest |difference| "
          "from the float32 product")
    with torch.inference_mode():
        for rows in args.rows:
            for name, (weight, bias) in products.items():
                x = torch.randn(rows, weight.size(1)) * 0.5
                exact = torch.nn.functional.linear(x, weight, bias)
                cells = []
                for arithmetic in runnable:
                    linear = make_linear(weight, bias, arithmetic, name)
                    error = (linear(x) - exact).abs().max().item()
                    cells.append(f"{arithmetic} {median_us(lambda: linear(x), args.repeats):7.1f} (err {error:.4f})")
                print(f"rows {rows} {name:9s} {tuple(weight.shape)}: " + ", ".join(cells))
        for arithmetic in runnable:
            calls = [(make_linear(w, b, arithmetic, name), torch.randn(1, w.size(1))) for name, (w, b) in products.items()]
            in_turn = median_us(lambda: [linear(x) for linear, x in calls], args.repeats)
            mb = sum(product_bytes(name, w, arithmetic) for name, (w, _) in products.items()) / 1e6
            print(f"a step's products in turn, {arithmetic}, rows 1: {in_turn:.1f} µs ({mb:.1f} MB of weights)")
        bandwidth = read_bandwidth()
        print(f"read bandwidth: {bandwidth / 1e9:.1f} GB/s (sum of a 512 MB float32 tensor, best of 5)")
        for arithmetic in runnable:
            mb = sum(product_bytes(name, w, arithmetic) for name, (w, _) in products.items()) / 1e6
            copies = max(2, int(args.cold_mb / mb) + 1)
            steps = [[(make_linear(w.clone(), b, arithmetic, name), torch.randn(1, w.size(1)))
                      for name, (w, b) in products.items()] for _ in range(copies)]
            rotation = itertools.cycle(steps)
            cold = median_us(lambda: [linear(x) for linear, x in next(rotation)], args.repeats)
            floor = mb * 1e6 / bandwidth * 1e6
            print(f"a step's products from memory, {arithmetic}, rows 1: {cold:.1f} µs for {mb:.2f} MB "
                  f"({mb * 1e6 / cold / 1e3:.1f} GB/s; the bytes alone at the read bandwidth: {floor:.0f} µs)")


def read_bandwidth() -> float:
    """Bytes per second summing a 512 MB tensor (a read the size of no cache), best of 5."""
    big = torch.ones(128 * 1024 * 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        big.sum()
        best = min(best, time.perf_counter() - start)
    return big.numel() * 4 / best


if __name__ == "__main__":
    main()
