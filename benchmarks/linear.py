"""The decoding step's products in every arithmetic, timed on a shipped model's shapes.

    python -m benchmarks.linear --model assets/models/en-de --threads 2 --rows 1 5

For each product of a step (each LSTM layer's [x; h] -> gates, combine, generator), each row
count and each arithmetic this CPU runs (``s2s_demo.inference.make_linear``, the kernels the
engine uses): median microseconds per call and the largest absolute error against the exact
float32 product. Last, a whole step's products one after another, as a step calls them: each
then finds less of its weights in cache than when timed alone, so this is the figure that
tracks a step's real cost, with the bytes of weights it reads.
"""

from __future__ import annotations

import argparse

import torch

from s2s_demo.hub import resolve
from s2s_demo.model_folder import load_model
from s2s_demo.inference import ARITHMETICS, WEIGHT_BYTES, make_linear, step_products, unsupported_reason

from .common import machine_line, median_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/en-de")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=2000)
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
                    linear = make_linear(weight, bias, arithmetic)
                    error = (linear(x) - exact).abs().max().item()
                    cells.append(f"{arithmetic} {median_us(lambda: linear(x), args.repeats):7.1f} (err {error:.4f})")
                print(f"rows {rows} {name:9s} {tuple(weight.shape)}: " + ", ".join(cells))
        for arithmetic in runnable:
            calls = [(make_linear(w, b, arithmetic), torch.randn(1, w.size(1))) for w, b in products.values()]
            in_turn = median_us(lambda: [linear(x) for linear, x in calls], args.repeats)
            mb = sum(w.numel() for w, _ in products.values()) * WEIGHT_BYTES[arithmetic] / 1e6
            print(f"a step's products in turn, {arithmetic}, rows 1: {in_turn:.1f} µs ({mb:.1f} MB of weights)")


if __name__ == "__main__":
    main()
