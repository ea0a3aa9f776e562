"""Hugging Face's samplers on small distributions, against values worked out by hand."""

import math

import pytest
import torch

from s2s_demo.processors import (EpsilonCutoff, EtaCutoff, MinP, RepetitionPenalty, StepContext, TypicalP,
                                 sampling_warpers)
from s2s_demo.settings import DecodeSettings, SettingsError

PROBS = [0.5, 0.3, 0.15, 0.05]


def _run(processor, probs=PROBS, previous=()):
    scores = torch.tensor([probs]).log()
    ctx = StepContext(0, scores, torch.tensor([10]), [list(previous)])
    return torch.log_softmax(processor(scores, ctx), -1).exp()[0].tolist()


def _close(got, want):
    assert got == pytest.approx(want, abs=1e-6)


def test_min_p_cuts_below_a_share_of_the_best():
    # 0.25 x 0.5 = 0.125: 0.05 goes; the rest renormalised over 0.95
    _close(_run(MinP(0.25)), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0])
    _close(_run(MinP(1.0)), [1.0, 0.0, 0.0, 0.0])  # only the best survives


def test_typical_p_keeps_the_tokens_nearest_the_entropy():
    # H = -sum p ln p = 1.14307; surprisals 0.693, 1.204, 1.897, 2.996; distances 0.450, 0.061,
    # 0.754, 1.853: order 0.3, 0.5, 0.15, 0.05. Mass 0.7: 0.3 < 0.7, then 0.8 >= 0.7 -> keep two
    _close(_run(TypicalP(0.7)), [0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    _close(_run(TypicalP(0.2)), [0.0, 1.0, 0.0, 0.0])  # the most typical token alone


def test_epsilon_cutoff_drops_tokens_below_it_but_never_the_best():
    _close(_run(EpsilonCutoff(0.1)), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0])
    _close(_run(EpsilonCutoff(0.6)), [1.0, 0.0, 0.0, 0.0])


def test_eta_cutoff_is_the_smaller_of_epsilon_and_its_entropy_scaled_root():
    # eta = min(0.2, sqrt(0.2) * exp(-1.14307)) = min(0.2, 0.14261) -> 0.05 goes, 0.15 stays
    _close(_run(EtaCutoff(0.2)), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0])
    # eta = min(0.16, 0.4 * 0.31883 = 0.12753): the same
    _close(_run(EtaCutoff(0.16)), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0])


def test_repetition_penalty_multiplies_an_earlier_tokens_log_prob():
    # token 0 written before: ln 0.5 x 2 = ln 0.25 -> weights 0.25, 0.3, 0.15, 0.05 (sum 0.75)
    _close(_run(RepetitionPenalty(2.0), previous=[0, 0]), [0.25 / 0.75, 0.3 / 0.75, 0.15 / 0.75, 0.05 / 0.75])


def test_the_chain_runs_in_hugging_faces_order():
    # temperature 0.5 squares and renormalises: 0.25, 0.09, 0.0225, 0.0025 (sum 0.365); top-k 3
    # drops the last; min-p 0.2 x 0.25/0.3625 then drops 0.0225 (share 0.062 < 0.138)
    settings = DecodeSettings(method="sample", temperature=0.5, top_k=3, min_p=0.2)
    warpers = sampling_warpers(settings, 4)
    assert [type(w).__name__ for w in warpers] == ["Temperature", "TopK", "MinP", "Normalize"]
    _close(_run(warpers), [0.25 / 0.34, 0.09 / 0.34, 0.0, 0.0])
    every = DecodeSettings(method="sample", repetition_penalty=1.5, temperature=0.7, top_k=5, top_p=0.9, min_p=0.1,
                           typical_p=0.9, epsilon_cutoff=0.01, eta_cutoff=0.01)
    assert [type(w).__name__ for w in sampling_warpers(every, 100)] == [
        "RepetitionPenalty", "Temperature", "TopK", "TopP", "MinP", "TypicalP", "EpsilonCutoff", "EtaCutoff",
        "Normalize"]


@pytest.mark.parametrize("name, value", [("min_p", 1.5), ("typical_p", 0.0), ("epsilon_cutoff", -0.1),
                                         ("eta_cutoff", "a"), ("repetition_penalty", 0.0)])
def test_out_of_range_samplers_are_named(name, value):
    with pytest.raises(SettingsError, match=name):
        DecodeSettings(method="sample", **{name: value})


@pytest.mark.parametrize("edge", [dict(top_k=1), dict(top_p=0.01), dict(temperature=0.05), dict(temperature=5.0),
                                  dict(min_p=1.0), dict(typical_p=0.01), dict(epsilon_cutoff=0.5),
                                  dict(eta_cutoff=0.5), dict(repetition_penalty=5.0)])
def test_every_sampler_at_its_edge_still_samples(random_translator, toy_sentences, edge):
    trace = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", seed=1, **edge))
    assert trace.steps and all(math.isfinite(s.prob) and s.prob > 0 for s in trace.steps)
