"""Process-wide settings for serving and benchmarking on CPU.

glibc's malloc hands each allocation above a (self-adjusting) threshold, 128 KiB at
start, its own ``mmap`` and returns it to the kernel on free, so the next one page-faults
its memory in again. Decoding allocates such blocks every sentence (a trace's stacked
distributions, ~1 MB; batched steps), and on a 2-core VM the faults cost more than the
arithmetic: the entropies of one trace took 0.16 ms or 0.77 ms depending on the
threshold's state, and batched beam search in ``python -m benchmarks.decode`` took 7.3 s
untuned against 6.1 s tuned (greedy latency moved less than the VM's own drift). PyTorch's
CPU tuning guide suggests swapping the allocator (jemalloc, tcmalloc); keeping glibc's and
fixing its thresholds needs no extra package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's largest allowed on 64-bit
TRIM_THRESHOLD = 512 * 1024 * 1024  # keep freed heap memory for reuse up to this much

OPT_OUT_ENV = "S2S_MALLOC_TUNING"


def tune_allocator() -> bool:
    """Serve blocks up to 32 MiB from the heap and keep freed memory for reuse.

    Returns True when glibc took both settings; False on another C library, or when the
    environment sets ``S2S_MALLOC_TUNING=0``. The cost is resident memory: the process
    keeps up to 512 MiB of freed heap instead of returning it.
    """
    if os.environ.get(OPT_OUT_ENV, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo ({"avx2", "avx512f", ...}); empty elsewhere."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            return frozenset(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return frozenset()


# The flags that decide which decoding arithmetic runs fast (s2s_demo.inference).
RELEVANT_FLAGS = ("avx2", "f16c", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16")


def cpu_summary() -> str:
    """"AMD EPYC (avx2 f16c avx512f ...)": the CPU and which of RELEVANT_FLAGS it has, plus
    the ISA limits set in the environment (they change which kernels torch and oneDNN run)."""
    flags = cpu_flags()
    have = " ".join(f for f in RELEVANT_FLAGS if f in flags) or "none of " + "/".join(RELEVANT_FLAGS)
    limits = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ]
    return f"{cpu_name()} ({have}{'; ' + ', '.join(limits) if limits else ''})"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("AMD EPYC"), else the architecture ("x86_64")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
