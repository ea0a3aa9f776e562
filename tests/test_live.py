"""The browser's sampling chain (s2s_demo/ui/static/live.js) against the Python processors.

Random rows of scores go through ``s2s_demo.processors.sampling_warpers`` in Python and, as a
trace's live payload (``s2s_demo.live.payloads``), through the page's script in Chromium. Where
the script says its figures are exact they must equal Python's within 1e-5; where it says they
are approximate, within the bound it states.
"""

import json
import math
import os
import random
import shutil

import pytest
import torch

from s2s_demo.live import TEMPERATURES, payloads
from s2s_demo.processors import StepContext, sampling_warpers
from s2s_demo.settings import DecodeSettings
from s2s_demo.ui.live_view import LIVE_JS

from .test_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed (.ci/run installs it)")
VOCAB = 400
TOP_N = 48


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        page.add_script_tag(content=LIVE_JS)
        yield page
        browser.close()


def _row(rng: random.Random) -> torch.Tensor:
    """A (V,) row of constrained log-probs: a few likely tokens over a smoothed floor, some banned."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    logits = torch.randn(VOCAB, generator=gen) * rng.choice([1.0, 2.0, 4.0])
    logits[torch.randint(VOCAB, (rng.randint(1, 6),), generator=gen)] += rng.uniform(3, 9)
    log_probs = torch.log_softmax(logits, -1)
    log_probs[:3] = -math.inf  # BOS, PAD, UNK
    return log_probs


def _settings(rng: random.Random) -> dict:
    on = lambda share: rng.random() < share  # noqa: E731
    return {
        "temperature": rng.choice(TEMPERATURES) if on(0.7) else round(rng.uniform(0.05, 5.0), 2),
        "top_k": rng.choice([0, 0, 1, 5, 20, 40, 100, 300]),
        "top_p": rng.choice([1.0, 1.0, 0.01, 0.5, 0.9, 0.95, 0.99]),
        "min_p": rng.choice([0.0, 0.0, 0.01, 0.1, 1.0]) if on(0.5) else 0.0,
        "typical_p": rng.choice([1.0, 0.2, 0.9, 0.95]) if on(0.4) else 1.0,
        "epsilon_cutoff": rng.choice([0.0, 3e-4, 0.01]) if on(0.4) else 0.0,
        "eta_cutoff": rng.choice([0.0, 3e-4, 0.002]) if on(0.4) else 0.0,
        "repetition_penalty": rng.choice([1.0, 1.2, 2.0]) if on(0.5) else 1.0,
    }


def _python(row: torch.Tensor, previous: list[int], settings: dict) -> torch.Tensor:
    warpers = sampling_warpers(DecodeSettings(method="sample", **settings), VOCAB)
    ctx = StepContext(0, row[None], torch.tensor([100]), [previous])
    return warpers(row[None].clone(), ctx)[0].exp()


def test_the_browser_redoes_the_sampling_chain_as_python_does(page):
    rng = random.Random(7)
    exact = bounded = 0
    for case in range(200):
        row = _row(rng)
        tokens = [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 6))]
        payload = payloads(row.expand(len(tokens), VOCAB).clone(), tokens, TOP_N)[-1]
        settings = _settings(rng)
        expected = _python(row, tokens[:-1], settings)
        got = page.evaluate("([p, t, s]) => S2SLive.chain(p, t, s)", [payload, list(TEMPERATURES), settings])
        want = [float(expected[i]) for i in payload["ids"]]
        want_rest = 1.0 - sum(want)
        errors = [abs(a - b) for a, b in zip(got["final"], want)] + [abs(got["restFinal"] - want_rest)]
        exact += got["exact"]
        bounded += not got["exact"] and got["bound"] < 1
        # exact: Python's figures within 1e-5; approximate: within the bound the script states
        tolerance = 1e-5 if got["exact"] else got["bound"] + 1e-5
        assert max(errors) <= tolerance, (case, settings, max(errors), got["exact"], got["bound"])
        # what the chart says a cut removed, Python removed (where it says it is exact)
        assert not got["exact"] or all(want[i] == 0.0 for i, cut in enumerate(got["cutBy"]) if cut), case
    assert exact >= 50 and bounded >= 10, (exact, bounded)


def test_the_model_column_is_the_constrained_softmax(page):
    row = _row(random.Random(3))
    payload = payloads(row[None].clone(), [10], TOP_N)[0]
    got = page.evaluate("([p, t]) => S2SLive.chain(p, t, {})", [payload, list(TEMPERATURES)])
    assert got["exact"]
    for token, prob in zip(payload["ids"], got["model"]):
        assert abs(prob - math.exp(float(row[token]))) < 1e-5
    assert abs(got["restModel"] + sum(got["model"]) - 1.0) < 1e-5


def test_the_length_penalty_reranks_finished_hypotheses_as_the_search_scores_them(page):
    finished = [{"text": "a", "logprob": -2.0, "length": 3}, {"text": "a b c d", "logprob": -2.6, "length": 8}]
    for alpha in (0.0, 1.0, 3.0):
        got = page.evaluate("([f, a]) => S2SLive.rankFinished(f, a)", [finished, alpha])
        settings = DecodeSettings(length_penalty=alpha)
        from s2s_demo.decoding import length_normalizer
        want = sorted(({"text": f["text"], "score": f["logprob"] / length_normalizer(f["length"], settings)}
                       for f in finished), key=lambda f: -f["score"])
        assert [g["text"] for g in got] == [w["text"] for w in want]
        assert all(abs(g["score"] - w["score"]) < 1e-9 for g, w in zip(got, want))


def test_a_banned_earlier_token_sent_as_json_gets_no_probability(page):
    """Over HTTP a banned token's -inf score arrives as null (JSON has no infinities): the chain
    must read it as -inf, not as a score of 0 (no_repeat_ngram_size and forced steps ban earlier
    tokens, which the payload carries for the repetition penalty)."""
    row = _row(random.Random(5))
    banned = int(row.argsort()[VOCAB // 2])  # outside the top block
    row[banned] = -math.inf
    chosen = int(row.argmax())
    payload = payloads(row.expand(2, VOCAB).clone(), [banned, chosen], TOP_N)[-1]
    # as Trace.to_dict and the HTTP response carry it: -inf as null
    sent = json.loads(json.dumps(payload).replace("-Infinity", "null"))
    assert sent["scores"][sent["ids"].index(banned)] is None
    got = page.evaluate("([p, t]) => S2SLive.chain(p, t, {})", [sent, list(TEMPERATURES)])
    want = torch.softmax(row, -1)  # renormalised without the banned token
    assert got["exact"]
    assert got["final"][sent["ids"].index(banned)] == 0.0
    assert max(abs(a - float(want[i])) for a, i in zip(got["final"], sent["ids"])) < 1e-5
