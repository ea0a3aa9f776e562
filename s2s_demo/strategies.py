"""Decoding strategies side by side on one sentence: greedy, beam search, sampling at
temperature 1, top-p 0.9, epsilon sampling (epsilon 0.02), and minimum Bayes risk (MBR)
decoding over the epsilon samples with chrF as the utility (Freitag et al. 2023: epsilon
sampling, then MBR).

Every sampling strategy draws ``samples`` candidates in one batched search (one seed); its row
shows the first and lists them all. MBR picks the epsilon sample with the highest mean chrF
against the other samples (each standing in for a reference). Each row carries the output, its
model log-prob, its length-normalised score (the settings' length penalty), and, given a
reference, sentence chrF and BLEU against it (sacreBLEU).
"""

from __future__ import annotations

import random
import time

from sacrebleu.metrics import BLEU, CHRF

from .decoding import Hypothesis, search
from .settings import DecodeSettings, check_int
from .tokenizer import normalize_text
from .translator import MAX_CHARS, Translator

MAX_SAMPLES = 32
DEFAULT_SAMPLES = 8
TOP_P, EPSILON = 0.9, 0.02
STRATEGIES = ("greedy", "beam", "sample", "top_p", "epsilon", "mbr")
_CHRF, _BLEU = CHRF(), BLEU(effective_order=True)


def _row(translator: Translator, name: str, description: str, hyp: Hypothesis,
         candidates: list[str] | None = None) -> dict:
    """A strategy's row; every search here keeps the settings' length penalty, so the
    hypothesis' own score is the length-normalised one."""
    text = translator.tokenizer.decode_target(hyp.tokens)
    return {"strategy": name, "description": description, "translation": text, "logprob": hyp.logprob,
            "score": hyp.score, "tokens": len(hyp.tokens), "candidates": candidates}


def mbr_pick(candidates: list[str]) -> int:
    """Index of the candidate with the highest mean chrF against all the others."""
    if len(candidates) == 1:
        return 0
    utility = [sum(_CHRF.sentence_score(c, [o]).score for j, o in enumerate(candidates) if j != i)
               for i, c in enumerate(candidates)]
    return max(range(len(candidates)), key=utility.__getitem__)


def reference_problem(translator: Translator, reference) -> str | None:
    """Why ``reference`` cannot be scored against (None when it can): empty, too long, in a
    script the target vocabulary cannot spell, or in the source language."""
    if reference is None:
        return None
    clean = normalize_text(reference) if isinstance(reference, str) else ""
    if not clean:
        return "The reference is empty: chrF and BLEU are left out."
    if len(reference) > MAX_CHARS:
        return f"The reference has {len(reference):,} characters (the limit is {MAX_CHARS:,}): chrF and BLEU are left out."
    cfg = translator.model.config
    unknown = translator.tokenizer.target_unknown_share(clean)
    if unknown > 0.3:
        return (f"{unknown:.0%} of the reference's pieces are unknown to this model's {cfg.tgt_lang} vocabulary: "
                "is it in another script? chrF and BLEU are left out.")
    if translator.tokenizer.language_side(clean) == "source":
        return (f"The reference reads as {cfg.src_lang}, the source language, not {cfg.tgt_lang}: "
                "chrF and BLEU are left out.")
    return None


def compare_strategies(translator: Translator, text: str, settings: DecodeSettings | None = None,
                       samples: int = DEFAULT_SAMPLES, reference: str | None = None, seed: int | None = None) -> dict:
    """Run every strategy on ``text``; ``settings`` supply the beam size and length penalty.
    Returns ``rows`` (one per strategy, in STRATEGIES' order), ``reference_note`` (why the
    reference was not scored, or None), ``samples``, ``seed`` and ``ms``."""
    check_int("samples", samples, 1, MAX_SAMPLES, f" (at most {MAX_SAMPLES} samples per strategy)")
    settings = settings or translator.default_settings()
    ids = translator.source_ids(text)
    seed = random.randrange(2**31) if seed is None else seed
    start = time.perf_counter()
    base = settings.replace(forced_prefix=(), n_best=1)
    greedy = search(translator.engine, [ids], base.replace(method="greedy"))[0].hypotheses[0]
    beam = search(translator.engine, [ids], base.replace(method="beam"))[0].hypotheses[0]
    rows = [_row(translator, "greedy", "the most likely token at every step", greedy),
            _row(translator, "beam", f"beam search, {settings.beam_size} beams, length penalty "
                                     f"{settings.length_penalty}", beam)]
    plain = base.replace(method="sample", temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0,
                         epsilon_cutoff=0.0, eta_cutoff=0.0, repetition_penalty=1.0, seed=seed)
    samplers = {"sample": (plain, "a sample of the model's own distribution (temperature 1)"),
                "top_p": (plain.replace(top_p=TOP_P), f"a sample of the top-p {TOP_P} nucleus"),
                "epsilon": (plain.replace(epsilon_cutoff=EPSILON), f"a sample without tokens below p = {EPSILON}")}
    drawn = {}
    for name, (sampler, description) in samplers.items():
        results = search(translator.engine, [ids] * samples, sampler)
        drawn[name] = [r.hypotheses[0] for r in results]
        texts = [translator.tokenizer.decode_target(h.tokens) for h in drawn[name]]
        rows.append(_row(translator, name, f"{description}; the first of {samples}", drawn[name][0], texts))
    epsilon_texts = rows[-1]["candidates"]
    best = mbr_pick(epsilon_texts)
    rows.append(_row(translator, "mbr", f"minimum Bayes risk: of the {samples} epsilon samples, the one with "
                                        "the highest mean chrF against the others", drawn["epsilon"][best],
                     epsilon_texts))
    note = reference_problem(translator, reference)
    scorable = reference is not None and note is None
    for row in rows:
        row["chrf"] = _CHRF.sentence_score(row["translation"], [reference]).score if scorable else None
        row["bleu"] = _BLEU.sentence_score(row["translation"], [reference]).score if scorable else None
    return {"model": translator.name, "source": text, "rows": rows, "reference": reference,
            "reference_note": note, "samples": samples, "seed": seed,
            "settings": settings.to_dict(), "ms": round((time.perf_counter() - start) * 1000, 1)}
