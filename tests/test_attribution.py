"""Source attribution: integrated gradients' completeness, determinism, and a copy model's
attributions pointing at the piece it copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from s2s_demo import attribution
from s2s_demo.config import ModelConfig
from s2s_demo.model import Seq2Seq

from .conftest import make_model

FILLER = 4  # ids 0-3 are PAD, UNK, BOS, EOS; 5-19 are the words to copy


def _filler_sentences(rows: int, length: int) -> torch.Tensor:
    """(rows, length) ids: the filler everywhere but one random word at a random position."""
    src = torch.full((rows, length), FILLER)
    src[torch.arange(rows), torch.randint(0, length, (rows,))] = torch.randint(FILLER + 1, 20, (rows,))
    return src


@pytest.fixture(scope="module")
def copy_model() -> Seq2Seq:
    """A small attentional model trained (1,000 steps, ~3 s) to copy filler sentences of 4-7 tokens, so that each
    output word depends on exactly one source piece."""
    torch.manual_seed(0)
    cfg = ModelConfig(src_vocab_size=20, tgt_vocab_size=20, emb_size=32, enc_hidden_size=32, dec_hidden_size=64,
                      dropout=0.0, emb_dropout=0.0, tie_embeddings=False)
    model = Seq2Seq(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(1000):
        length = int(torch.randint(4, 8, ()))
        src = _filler_sentences(32, length)
        tgt_in = torch.cat([torch.full((32, 1), cfg.bos_id), src], 1)
        tgt_out = torch.cat([src, torch.full((32, 1), cfg.eos_id)], 1)
        logits = model(src, torch.full((32,), length), tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, 20), tgt_out.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_a_copied_word_is_attributed_to_the_piece_it_copies(copy_model):
    eos = copy_model.config.eos_id
    hits = {method: 0 for method in attribution.METHODS}
    cases = [(position, word) for position in range(6) for word in (5, 11, 19)]
    for position, word in cases:
        source = [FILLER] * 6
        source[position] = word
        result = attribution.attribute(copy_model, source, source + [eos])
        assert torch.tensor(result["completeness"]["f_input"]).exp()[position] > 0.9  # the model copies it
        for method in attribution.METHODS:
            hits[method] += int(torch.tensor(result[method])[position].abs().argmax()) == position
    # 17 of the 18 on the reference machine (chance: 3). Input x gradient gets 6: the model is
    # sure (p > 0.99), so its gradient at the input is nearly flat, the saturation that
    # integrated gradients integrates past.
    assert hits["integrated_gradients"] >= 15


def test_integrated_gradients_are_complete_at_the_default_steps(toy_tokenizer):
    model = make_model(toy_tokenizer, seed=3)
    result = attribution.attribute(model, [5, 17, 9, 30, 12], [8, 21, 40, model.config.eos_id])
    gaps = result["completeness"]
    sums = torch.tensor(result["integrated_gradients"]).sum(-1)
    change = torch.tensor(gaps["f_input"]) - torch.tensor(gaps["f_baseline"])
    assert result["steps"] == attribution.DEFAULT_STEPS
    assert torch.allclose(sums, torch.tensor(gaps["ig_sum"]), atol=1e-4)
    assert ((sums - change).abs() <= 0.05 * change.abs()).all()
    assert gaps["max_relative_gap"] <= 0.05


def test_attributions_are_deterministic_and_shaped_target_by_source(toy_tokenizer):
    model = make_model(toy_tokenizer, seed=4)
    source, target = [5, 17, 9], [8, 21, model.config.eos_id]
    first, second = (attribution.attribute(model, source, target) for _ in range(2))
    for key in (*attribution.METHODS, "attention"):
        assert first[key] == second[key]
        assert [len(row) for row in first[key]] == [len(source)] * len(target)


def test_more_tokens_than_one_backward_batch_give_the_same_attributions(toy_tokenizer, monkeypatch):
    model = make_model(toy_tokenizer, seed=5)
    source, target = [5, 17, 9, 11], [8, 21, 33, 14, model.config.eos_id]
    whole = attribution.attribute(model, source, target, steps=4)
    monkeypatch.setattr(attribution, "MAX_ROWS", 8)  # two tokens per backward pass
    split = attribution.attribute(model, source, target, steps=4)
    assert torch.allclose(torch.tensor(whole["integrated_gradients"]), torch.tensor(split["integrated_gradients"]),
                          atol=1e-5)


def test_a_model_without_attention_reports_no_agreement(toy_tokenizer):
    model = make_model(toy_tokenizer, attention="none")
    result = attribution.attribute(model, [5, 17, 9], [8, model.config.eos_id], steps=4)
    assert result["attention"] is None and result["agreement"] == {m: None for m in attribution.METHODS}


def test_steps_out_of_range_are_refused(toy_tokenizer):
    model = make_model(toy_tokenizer)
    with pytest.raises(ValueError, match="steps"):
        attribution.attribute(model, [5], [model.config.eos_id], steps=0)
