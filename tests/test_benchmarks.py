"""The README's decoding benchmark runs and prints every figure it promises (not their values: speed
belongs to the benchmark, not to a test)."""

import os
import subprocess
import sys

from .conftest import ROOT


def test_decode_benchmark_prints_latency_breakdown_profile_and_throughput():
    result = subprocess.run([sys.executable, "-m", "benchmarks.decode", "--model", "assets/models/en-de",
                             "--sentences", "4", "--breakdown", "--profile"], capture_output=True, text=True,
                            cwd=ROOT, timeout=600, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ("machine: ", "latency greedy", "latency beam5", "greedy breakdown (4 val sentences",
                 "translate (Trace)", "Self CPU time total", "greedy profile (4 val sentences)",
                 "a step's decoder weights: ", "batched greedy", "batched beam5"):
        assert line in out, (line, out)
