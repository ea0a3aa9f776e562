"""The matmul kernels a decoding step could use, timed on the shipped model's shapes.

    python -m benchmarks.linear --model assets/models/de-en --threads 2 --rows 1 5

For each of the step's three products (LSTM cell [x; h] -> gates, combine, generator) and
each row count: median microseconds per call of oneDNN on pre-packed weights (what
``InferenceLinear`` uses), of MKL's ``addmm`` on W^T and of ``F.linear``, in float32 and
bfloat16. This is the measurement behind ``InferenceLinear``'s choice of kernel.
``--int8`` adds two int8 kernels with per-output-channel weight scales: weight-only int8 with
bfloat16 rows (``torch._weight_int8pack_mm``, in the bfloat16 lines) and dynamic int8, rows
quantized per call (fbgemm's ``quantized.linear_dynamic``, in the float32 lines), and prints each
kernel's largest absolute error against the float32 product.

Last, the three oneDNN products one after another, as a step calls them: each then finds
less of its weights in cache than when it is timed alone, so this is closer to their share
of a real step than the sum of the lines above.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from s2s_demo.hub import load, parse_ref
from s2s_demo.model import _PACK_ROWS

from .common import machine_line, median_us


def kernels(weight: torch.Tensor, rows: int, dtype: torch.dtype, pack_rows: int, int8: bool = False,
            x: torch.Tensor | None = None) -> dict:
    """name -> a no-argument call computing x W^T for ``rows`` random rows."""
    x = (torch.randn(rows, weight.size(1)) if x is None else x).to(dtype)
    w = weight.to(dtype).contiguous()
    packed = torch.ops.mkldnn._reorder_linear_weight(w, pack_rows)
    w_t = w.t().contiguous()
    calls = {
        "onednn packed": lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""),
        "addmm W^T": lambda: torch.mm(x, w_t),
        "F.linear": lambda: F.linear(x, w),
    }
    if int8:
        calls.update(int8_kernels(weight.float(), x, dtype))
    return calls


def int8_kernels(weight: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> dict:
    """Per-output-channel int8 weights: weight-only for bfloat16 rows, dynamic for float32 ones."""
    scales = weight.abs().amax(1).clamp(min=1e-8) / 127
    if dtype == torch.bfloat16:
        w8 = torch.round(weight / scales[:, None]).to(torch.int8).contiguous()
        s16 = scales.to(torch.bfloat16)
        return {"int8 weight-only": lambda: torch._weight_int8pack_mm(x, w8, s16)}
    torch.backends.quantized.engine = "fbgemm"
    zero = torch.zeros(weight.size(0), dtype=torch.long)
    qweight = torch.quantize_per_channel(weight, scales.double(), zero, 0, torch.qint8)
    prepacked = torch.ops.quantized.linear_prepack(qweight, None)
    return {"int8 dynamic": lambda: torch.ops.quantized.linear_dynamic(x, prepacked, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/models/de-en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--int8", action="store_true", help="also time two int8 kernels, with their errors")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(*parse_ref(args.model)).model
    layers = model.decoder
    shapes = {
        "cell": torch.cat([layers.weight_ih_l0, layers.weight_hh_l0], 1),
        "combine": model.combine.weight,
        "generator": model.generator.weight,
    }
    print(machine_line())
    print(f"model: {args.model}; weights packed for {_PACK_ROWS} rows; median µs per call of {args.repeats}")
    with torch.inference_mode():
        for name, weight in shapes.items():
            for dtype in (torch.float32, torch.bfloat16):
                for rows in args.rows:
                    x = torch.randn(rows, weight.size(1))
                    calls = kernels(weight.detach(), rows, dtype, _PACK_ROWS, args.int8, x)
                    timings = {kernel: median_us(call, args.repeats) for kernel, call in calls.items()}
                    cells = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
                    print(f"{name:9s} {tuple(weight.shape)} {str(dtype)[6:]:8s} rows {rows}: {cells}")
                    if args.int8:
                        exact = x @ weight.detach().t()
                        errors = ", ".join(f"{k} {(call().float() - exact).abs().max():.4f}"
                                           for k, call in calls.items())
                        print(f"{'':9s} largest error against float32: {errors}")
        for dtype in (torch.float32, torch.bfloat16):
            calls = [kernels(w.detach(), 1, dtype, _PACK_ROWS)["onednn packed"] for w in shapes.values()]
            alone = sum(median_us(call, args.repeats) for call in calls)
            in_turn = median_us(lambda: [call() for call in calls], args.repeats)
            print(f"a step's three products in turn, {str(dtype)[6:]}, rows 1: {in_turn:.1f} µs "
                  f"(timed alone they sum to {alone:.1f})")


if __name__ == "__main__":
    main()
