"""Blockwise int8 weights (the int8-blocks arithmetic): the quantization itself, ONNX Runtime's kernel
against the same weights in float32, and the fallback where that kernel cannot run."""

import logging
import subprocess
import sys

import pytest
import torch

from s2s_demo import blockwise
from s2s_demo.fused_step import FusedStep
from s2s_demo.inference import InferenceEngine, step_products
from s2s_demo.model_folder import save_folder
from s2s_demo.settings import DecodeSettings
from s2s_demo.translator import Translator

from .conftest import ROOT, make_model
from .test_model import KINDS, _batch


def fast_kernel() -> None:
    reason = blockwise.fast_kernel_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("cols", [32, 70, 256])
def test_quantize_keeps_each_weight_within_half_a_step_of_its_block(cols):
    torch.manual_seed(0)
    weight = torch.randn(12, cols) * torch.logspace(-3, 0, 12).unsqueeze(1)  # rows of very different size
    codes, scales = blockwise.quantize(weight, 32)
    blocks = -(-cols // 32)
    assert codes.dtype == torch.uint8 and codes.shape == (12, blocks, 32) and scales.shape == (12, blocks)
    back = blockwise.dequantize(codes, scales, cols)
    assert back.shape == weight.shape
    step = scales.repeat_interleave(32, dim=1)[:, :cols]  # each weight's block scale
    assert ((back - weight).abs() <= step / 2 + 1e-7).all()
    # a row of small weights keeps its precision: its own scales, not one for the whole matrix
    assert (back[0] - weight[0]).abs().max() < weight.abs().max() / 127 / 100


@pytest.mark.parametrize("rows", [1, 5, 40])  # 40: past the one-thread session
@pytest.mark.parametrize("cols", [48, 70])  # 70: a last block padded
@pytest.mark.parametrize("bias", [True, False])
def test_the_kernel_multiplies_the_quantized_weights_as_float32_does(rows, cols, bias):
    """The kernel rounds activations to int8 per block; the hi/lo split makes its product that of
    float32 activations: equal to the fallback's (the same weights in float32) to 1e-4 relative,
    where one pass of int8 activations would be ~100x further off."""
    fast_kernel()
    torch.manual_seed(1)
    layer = torch.nn.Linear(cols, 90, bias=bias)
    x = torch.randn(rows, cols)
    with torch.no_grad():
        got = blockwise.ort_linear(layer.weight, layer.bias, 32)(x)
        reference = blockwise.torch_linear(layer.weight, layer.bias, 32)(x)
        exact = layer(x)
    assert got.dtype == torch.float32 and got.shape == (rows, 90)
    assert (got - reference).abs().max() <= 1e-4 * reference.abs().max()
    assert (got - exact).abs().max() > 10 * (got - reference).abs().max()  # the weights really are int8


def test_engine_weight_bytes_count_codes_and_scales(toy_tokenizer):
    model = make_model(toy_tokenizer, num_layers=2)
    engine = InferenceEngine(model, "int8-blocks")
    expected = sum(w.numel() * (1 + 4 / blockwise.block_for(name)) for name, (w, _) in step_products(model).items())
    assert engine.weight_bytes == pytest.approx(expected)
    assert engine.weight_bytes < InferenceEngine(model, "float16").weight_bytes * 0.6


def test_without_the_kernel_the_same_numbers_come_from_torch_with_one_log_line(toy_tokenizer, toy_sentences,
                                                                                monkeypatch, caplog):
    fast_kernel()
    model = make_model(toy_tokenizer, num_layers=2)
    greedy = DecodeSettings(method="greedy")
    translator = Translator(model, toy_tokenizer)
    translator.engine = InferenceEngine(model, "int8-blocks")
    fast = translator.translate(toy_sentences[0], greedy)

    monkeypatch.setattr(blockwise, "fast_kernel_reason", lambda: "ImportError: No module named 'onnxruntime'")
    blockwise._log_fallback.cache_clear()
    with caplog.at_level(logging.WARNING, logger="s2s_demo.blockwise"):
        translator.engine = InferenceEngine(model, "int8-blocks")
        InferenceEngine(model, "int8-blocks")
    assert len(caplog.records) == 1
    assert "onnxruntime" in caplog.records[0].getMessage() and "\n" not in caplog.records[0].getMessage()
    slow = translator.translate(toy_sentences[0], greedy)
    assert slow.translation == fast.translation and slow.arithmetic == "int8-blocks"
    for a, b in zip(slow.steps, fast.steps):
        assert abs(a.prob - b.prob) < 1e-4


def test_a_process_without_onnxruntime_still_decodes_int8_blocks(tmp_path, toy_tokenizer, toy_tokenizer_dir):
    """As on a machine where onnxruntime is not installed: the fallback, said once on stderr."""
    model_folder = save_folder(make_model(toy_tokenizer, num_layers=2), toy_tokenizer_dir, tmp_path / "toy")
    code = ("import sys, logging; sys.modules['onnxruntime'] = None; logging.basicConfig()\n"
            "from s2s_demo.translator import load\n"
            "from s2s_demo.settings import DecodeSettings\n"
            f"t = load({str(model_folder)!r}, arithmetic='int8-blocks')\n"
            "print('arithmetic', t.translate('a b c', DecodeSettings(method='greedy')).arithmetic)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "arithmetic int8-blocks" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "int8-blocks" in line]
    assert len(warnings) == 1 and "float32" in warnings[0]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention,feeding", KINDS)
def test_the_fused_step_graph_is_the_engines_step(toy_tokenizer, toy_sentences, layers, attention, feeding):
    """The one-call step, built with float32 products, against the torch engine's float32 step:
    logits, pre-output, attention and state on padded rows (masked attention), step after step."""
    fast_kernel()
    model = make_model(toy_tokenizer, attention=attention, input_feeding=feeding, num_layers=layers)
    engine = InferenceEngine(model, "float32")
    products = step_products(model)
    fused = FusedStep(model, products, quantized=False)
    src, lengths = _batch(toy_tokenizer, toy_sentences[:3])
    with torch.no_grad():
        state = engine.encode(src, lengths)
        assert state.src_mask.logical_not().any()  # padded rows: the mask matters
        for token in (2, 7, 8):
            prev = torch.full((3,), token)
            logits, pre, attn, h, c = fused(prev, state)
            log_probs, expected_attn, state = engine.step(prev, state)
            torch.testing.assert_close(torch.log_softmax(logits, -1), log_probs, atol=2e-5, rtol=1e-5)
            torch.testing.assert_close(h, state.h, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(c, state.c, atol=1e-5, rtol=1e-5)
            if feeding:
                torch.testing.assert_close(pre, state.feed, atol=1e-5, rtol=1e-5)
            if attention == "none":
                assert attn is None and expected_attn is None
            else:
                torch.testing.assert_close(attn, expected_attn, atol=1e-5, rtol=1e-5)


def test_int8_blocks_decodes_in_one_call_a_step_where_the_kernel_runs(toy_tokenizer, monkeypatch):
    fast_kernel()
    model = make_model(toy_tokenizer)
    assert InferenceEngine(model, "int8-blocks").fused is not None
    monkeypatch.setattr(blockwise, "fast_kernel_reason", lambda: "ImportError: no onnxruntime")
    assert InferenceEngine(model, "int8-blocks").fused is None
    assert InferenceEngine(model, "float16").fused is None
