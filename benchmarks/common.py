"""What every benchmark prints about the machine it ran on."""

import os
import platform
import statistics
import time
from typing import Callable

import torch

from s2s_demo.runtime import cpu_summary


def machine_line() -> str:
    return (f"machine: {cpu_summary()}, {os.cpu_count()} cores; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; python {platform.python_version()}")


def median_us(call: Callable[[], object], repeats: int) -> float:
    """Median microseconds of one ``call()`` over ``repeats`` timed calls, after repeats/10 untimed."""
    for _ in range(repeats // 10):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latencies_ms(translate_one: Callable[[str], object], texts: list[str], warmup: int = 5) -> list[float]:
    """Milliseconds of ``translate_one(text)`` for each text, after ``warmup`` untimed calls."""
    for text in texts[:warmup]:
        translate_one(text)
    times = []
    for text in texts:
        start = time.perf_counter()
        translate_one(text)
        times.append((time.perf_counter() - start) * 1000)
    return times
