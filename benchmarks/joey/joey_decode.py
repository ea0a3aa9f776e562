"""Runs inside Joey NMT's virtual environment: decoding latency and batched translation
through Joey's own Python API (TranslatorHubInterface), printed as one JSON line.

    .venv-joey/bin/python benchmarks/joey/joey_decode.py MODEL_DIR CKPT VAL_SRC TEST_SRC OUT --alpha 1.0
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from joeynmt.hub_interface import TranslatorHubInterface, _from_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks.common (stdlib + torch only)
from benchmarks.common import latencies_ms, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("ckpt")
    parser.add_argument("val_src", help="one sentence per line; the first --sentences are timed")
    parser.add_argument("test_src")
    parser.add_argument("out", help="beam-5 translations of test_src, one per line")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((Path(args.model_dir) / "config.yaml").read_text(encoding="utf-8"))
    config["testing"]["load_model"] = str(Path(args.ckpt).resolve())
    (Path(args.model_dir) / "decode.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    model, dataset, cfg = _from_pretrained(args.model_dir, cfg_file="decode.yaml")
    joey = TranslatorHubInterface(model, dataset, cfg)
    with open(args.val_src, encoding="utf-8") as f:
        val = [line.rstrip("\n") for line in f][: args.sentences]
    with open(args.test_src, encoding="utf-8") as f:
        test = [line.rstrip("\n") for line in f]
    methods = {"greedy": {"beam_size": 1}, "beam5": {"beam_size": 5, "beam_alpha": args.alpha}}
    result = {"threads": torch.get_num_threads()}
    with torch.inference_mode():
        for name, kwargs in methods.items():
            times = latencies_ms(lambda text: joey.translate([text], **kwargs), val)
            result[f"latency_{name}_median_ms"] = statistics.median(times)
            result[f"latency_{name}_p90_ms"] = percentile(times, 90)
        for name, kwargs in methods.items():
            start = time.perf_counter()
            outputs = []
            for i in range(0, len(test), args.batch_size):
                outputs.extend(joey.translate(test[i : i + args.batch_size], **kwargs))
            result[f"batched_{name}_s"] = time.perf_counter() - start
            if name == "beam5":
                with open(args.out, "w", encoding="utf-8") as f:
                    f.write("\n".join(outputs) + "\n")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
