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
                 "translate (Trace)", "served trace / search alone: ", "Self CPU time total", "greedy profile (4 val sentences)",
                 "a step's decoder weights: ", "batched greedy", "batched beam5"):
        assert line in out, (line, out)


def test_page_benchmark_prints_the_translation_and_raw_trace_figures():
    import shutil

    import pytest

    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    result = subprocess.run([sys.executable, "-m", "benchmarks.page", "--beam-size", "2", "--n-best", "1", "--clicks", "2"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "machine: " in result.stdout
    assert "first Translate after load: " in result.stdout and "click to translation and plots drawn" in result.stdout
    assert "raw trace of de-en, beam 2, n-best 1: opened in " in result.stdout and " elements in the page" in result.stdout
    assert "LSTM view: click to plot drawn " in result.stdout
    for view in ("Attention", "Neighbours"):
        assert f"{view} view: click to plot drawn " in result.stdout and "the server reports " in result.stdout


def test_explain_benchmark_prints_every_view_and_the_index():
    result = subprocess.run([sys.executable, "-m", "benchmarks.explain", "--model", "assets/models/en-de",
                             "--sentences", "3"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr
    for line in ("machine: ", "3 test_2016 sentences", "translate without the neighbour index",
                 "translate with internals", "attribution (incl. search)", "nearest examples (incl. search)",
                 "largest completeness gap", "neighbour index: 10000 sentences"):
        assert line in result.stdout, (line, result.stdout)


def test_calibration_benchmark_prints_the_three_figures_and_draws_the_diagram(tmp_path):
    png = tmp_path / "reliability.png"
    result = subprocess.run([sys.executable, "-m", "benchmarks.calibration", "--model", "assets/models/en-de",
                             "--n", "5", "--samples", "2", "--seeds", "2", "--png", str(png)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("machine: ", "ECE of the top-1 token: ", "mass outside the top 10: ",
                 "reference tokens outside the top 10: ", "temperature-1 samples with a token of p < 0.001: ",
                 "references with one: ", "calibration {'temperature'", "a perfectly calibrated model at these "):
        assert line in result.stdout, (line, result.stdout)
    assert png.stat().st_size > 1000


def test_live_benchmark_prints_drag_release_dice_and_payload():
    import shutil

    import pytest

    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    result = subprocess.run([sys.executable, "-m", "benchmarks.live", "--moves", "3", "--releases", "2"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("machine: ", "payload (", "beam: trace ", "sample: trace ", "drag -> chart redrawn: median ",
                 "requests sent while dragging: ", "release -> every view redrawn: median ", "requests per release: ",
                 "3 presses of Translate at default settings: "):
        assert line in result.stdout, (line, result.stdout)


def test_strategies_benchmark_prints_a_row_per_strategy():
    result = subprocess.run([sys.executable, "-m", "benchmarks.strategies", "--model", "assets/models/en-de",
                             "--n", "3", "--samples", "2"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr[-2000:]
    from s2s_demo.strategies import STRATEGIES

    for line in ("machine: ", "| strategy | BLEU | chrF | mean log-prob |", *(f"| {s} | " for s in STRATEGIES)):
        assert line in result.stdout, (line, result.stdout)
