import ctypes.util
import subprocess
import sys

import pytest

from s2s_demo.runtime import OPT_OUT_ENV, tune_allocator

GLIBC = sys.platform.startswith("linux") and "libc.so.6" in (ctypes.util.find_library("c") or "")


def test_opting_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv(OPT_OUT_ENV, "0")
    assert tune_allocator() is False


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tuned_malloc_keeps_freed_blocks_for_reuse():
    """Rounds of a few 1 MB blocks, allocated, written and freed: glibc's defaults give
    the freed heap back to the kernel each round, so every round page-faults its memory
    in again; after tune_allocator() only the first round does."""
    probe = (
        "import ctypes, sys\n"
        "from s2s_demo.runtime import tune_allocator\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]\n"
        "libc.free.argtypes = [ctypes.c_void_p]\n"
        "print(tune_allocator())\n"
        "def minor_faults():\n"
        "    return int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[7])\n"
        "def round_trip():\n"
        "    blocks = [libc.malloc(1 << 20) for _ in range(4)]\n"
        "    for b in blocks: ctypes.memset(b, 1, 1 << 20)\n"
        "    for b in blocks: libc.free(b)\n"
        "round_trip(); round_trip()\n"
        "before = minor_faults()\n"
        "for _ in range(20): round_trip()\n"
        "print(minor_faults() - before)\n"
    )
    runs = {}
    for setting in ("1", "0"):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ".", OPT_OUT_ENV: setting}
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
        took, faults = out.stdout.split()
        runs[setting] = (took == "True", int(faults))
    assert runs["1"][0] and not runs["0"][0]
    # 20 rounds of 4 x 256 pages
    assert runs["0"][1] > 10_000, runs
    assert runs["1"][1] < 500, runs


def test_cpu_name_is_the_model_name_or_the_architecture(monkeypatch, tmp_path):
    import builtins
    import platform

    from s2s_demo import runtime

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t: avx\n", encoding="utf-8")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **kw: real_open(
        cpuinfo if path == "/proc/cpuinfo" else path, *a, **kw))
    assert runtime.cpu_name() == "Test CPU 9000"
    cpuinfo.write_text("processor\t: 0\n", encoding="utf-8")  # no model name (some ARM kernels)
    assert runtime.cpu_name() == (platform.processor() or platform.machine())
