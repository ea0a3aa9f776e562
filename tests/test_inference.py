"""The decoding engine: every arithmetic against the exact product and the model's reference step,
and a clear refusal where the CPU lacks what an arithmetic needs."""

import os
import subprocess
import sys

import pytest
import torch

from s2s_demo.inference import (ARITHMETICS, InferenceEngine, UnsupportedArithmetic, auto_arithmetic,
                                make_linear, resolve_arithmetic, unsupported_reason)
from s2s_demo.runtime import cpu_flags

from .conftest import ROOT, make_model
from .test_model import KINDS, _batch, _decode_log_probs

# Largest |difference| from float32 each arithmetic may have, on products of unit-scale rows and
# on a toy model's log-probs (the shipped models' page-level figures: benchmarks.arithmetic).
PRODUCT_TOLERANCE = {"float32": 1e-5, "bfloat16": 0.05, "float16": 5e-3, "int8": 0.15, "int8-blocks": 0.03}
LOG_PROB_TOLERANCE = {"float32": 1e-5, "bfloat16": 0.05, "float16": 5e-3, "int8": 0.2, "int8-blocks": 0.05}
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def runnable(arithmetic: str) -> str:
    """Skip, with the engine's own reason, where this CPU cannot run ``arithmetic``."""
    reason = unsupported_reason(arithmetic)
    if reason:
        pytest.skip(reason)
    return arithmetic


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("rows", [1, 5, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_every_product_is_close_to_the_exact_one(arithmetic, rows, bias):
    runnable(arithmetic)
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 80, bias=bias)
    x = torch.randn(rows, 48) * 0.5
    with torch.no_grad():
        expected = layer(x)
        got = make_linear(layer.weight, layer.bias, arithmetic)(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max() <= PRODUCT_TOLERANCE[arithmetic]
    if arithmetic != "float32":  # it really multiplied in the narrower type
        assert not torch.equal(got, expected)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention,feeding", KINDS)
def test_engine_steps_like_the_reference_model(toy_tokenizer, toy_sentences, arithmetic, layers, attention, feeding):
    runnable(arithmetic)
    extra = {}
    model = make_model(toy_tokenizer, attention=attention, input_feeding=feeding, num_layers=layers, **extra)
    src, lengths = _batch(toy_tokenizer, toy_sentences[:3])  # padded: the packed encoder path
    tgt_in = torch.tensor([[2, 7, 8, 9]] * 3)
    exact, exact_memory = _decode_log_probs(model, src, lengths, tgt_in)
    got, memory = _decode_log_probs(InferenceEngine(model, arithmetic), src, lengths, tgt_in)
    assert got.dtype == torch.float32 and memory.dtype == torch.float32
    assert (got - exact).abs().max() <= LOG_PROB_TOLERANCE[arithmetic]
    torch.testing.assert_close(got.exp().sum(-1), torch.ones(3, 4))
    alone, _ = _decode_log_probs(InferenceEngine(model, arithmetic), *_batch(toy_tokenizer, toy_sentences[:1]),
                                 tgt_in[:1])
    assert (alone[0] - exact[0]).abs().max() <= LOG_PROB_TOLERANCE[arithmetic]  # unpadded path


def test_the_engine_is_a_snapshot_and_leaves_training_alone(toy_tokenizer, toy_sentences):
    """An engine copies the weights when built; the model's forward never sees its layouts."""
    model = make_model(toy_tokenizer)
    src, lengths = _batch(toy_tokenizer, toy_sentences[:2])
    tgt_in = torch.tensor([[2, 7, 8], [2, 9, 8]])
    engine = InferenceEngine(model)
    before, _ = _decode_log_probs(engine, src, lengths, tgt_in)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01)
    torch.testing.assert_close(_decode_log_probs(engine, src, lengths, tgt_in)[0], before)
    after, _ = _decode_log_probs(InferenceEngine(model), src, lengths, tgt_in)
    torch.testing.assert_close(after, torch.log_softmax(model(src, lengths, tgt_in), -1), atol=1e-5, rtol=1e-5)


def test_auto_picks_a_runnable_arithmetic_within_the_page_tolerance():
    choice = auto_arithmetic()
    assert choice == ("float16" if unsupported_reason("float16") is None else "float32")
    if "avx2" in cpu_flags() and "f16c" in cpu_flags():  # fbgemm's float16 kernels run on any such CPU
        assert choice == "float16"
    assert resolve_arithmetic("auto") == choice
    with pytest.raises(ValueError, match="'float8' is not one of float32, bfloat16, float16, int8"):
        unsupported_reason("float8")


def _in_avx2_process(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh process limited to AVX2 kernels (as on a CPU without AVX512)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **AVX2_ONLY},
                          capture_output=True, text=True, timeout=120)


def test_without_avx512_bfloat16_is_a_one_line_error_and_auto_falls_back():
    done = _in_avx2_process(
        "from s2s_demo.inference import auto_arithmetic, resolve_arithmetic, UnsupportedArithmetic\n"
        "print('auto', auto_arithmetic())\n"
        "try:\n    resolve_arithmetic('bfloat16')\nexcept UnsupportedArithmetic as err:\n    print('error', err)\n")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["auto"] == "float16"
    assert lines["error"].startswith("bfloat16 decoding needs AVX512 (avx512bw, avx512vl, avx512dq)")
    assert "\n" not in lines["error"]


def test_unsupported_arithmetic_error_type():
    assert issubclass(UnsupportedArithmetic, RuntimeError)
