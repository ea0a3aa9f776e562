import json
import math

import pytest
import torch

from s2s_demo.decoding import length_normalizer, search, translate_ids
from s2s_demo.recording import Recorder, entropy
from s2s_demo.model import sequence_log_prob
from s2s_demo.settings import DecodeSettings, SettingsError

from .conftest import make_model


def _score(model, src_ids, tokens):
    """The model's own per-token log-probs of ``tokens`` (ending with EOS) by teacher forcing."""
    src = torch.tensor([src_ids])
    tgt_in = torch.tensor([[model.config.bos_id] + tokens[:-1]])
    with torch.no_grad():
        return sequence_log_prob(model, src, torch.tensor([len(src_ids)]), tgt_in, torch.tensor([tokens]))[0]


@pytest.fixture(scope="module")
def peaked_translator(toy_tokenizer):
    """A random model with larger output weights, so distributions are peaked and
    sentences end before the length cap (like a trained model)."""
    from s2s_demo.translator import Translator

    model = make_model(toy_tokenizer, seed=5)
    with torch.no_grad():
        model.generator.bias[model.config.eos_id] += 2.5
        model.tgt_embed.weight.mul_(4.0)
    return Translator(model, toy_tokenizer)


@pytest.fixture(params=["random", "peaked"])
def translator(request, random_translator, peaked_translator):
    return random_translator if request.param == "random" else peaked_translator


def test_beam_size_one_equals_greedy(translator, toy_sentences):
    for text in toy_sentences[:5]:
        greedy = translator.translate(text, DecodeSettings(method="greedy"))
        beam1 = translator.translate(text, DecodeSettings(method="beam", beam_size=1, length_penalty=0))
        assert beam1.hypotheses[0].token_ids == greedy.hypotheses[0].token_ids


def test_sampling_with_top_k_one_equals_greedy(translator, toy_sentences):
    for text in toy_sentences[:5]:
        greedy = translator.translate(text, DecodeSettings(method="greedy"))
        sampled = translator.translate(text, DecodeSettings(method="sample", top_k=1, seed=7))
        assert sampled.hypotheses[0].token_ids == greedy.hypotheses[0].token_ids


def test_one_seed_one_output_and_seeds_differ(random_translator, toy_sentences):
    text = toy_sentences[0]
    settings = DecodeSettings(method="sample", temperature=1.5, seed=11)
    first = random_translator.translate(text, settings)
    again = random_translator.translate(text, settings)
    assert first.hypotheses[0].token_ids == again.hypotheses[0].token_ids
    assert first.seed == 11
    outputs = {tuple(random_translator.translate(text, settings.replace(seed=s)).hypotheses[0].token_ids)
               for s in range(6)}
    assert len(outputs) > 1  # the random model's distributions are nearly flat


def test_unseeded_sampling_records_its_seed(random_translator, toy_sentences):
    trace = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", temperature=1.5))
    replay = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", temperature=1.5,
                                                                         seed=trace.seed))
    assert replay.hypotheses[0].token_ids == trace.hypotheses[0].token_ids


@pytest.mark.parametrize("settings", [
    DecodeSettings(method="greedy"),
    DecodeSettings(method="sample", temperature=0.7, top_k=20, top_p=0.9, seed=1),
    DecodeSettings(method="beam", beam_size=4, n_best=3),
])
def test_recorded_distributions_and_logprobs(translator, toy_sentences, settings):
    text = toy_sentences[1]
    ids = translator.source_ids(text)
    result = search(translator.model, [ids], settings, record=True)[0]
    assert len(result.steps) == len(result.hypotheses[0].tokens)
    for rec in result.steps:
        # full distributions are not kept; their top-n must be a valid part of one
        for values in (rec.model_top[0], rec.top[0]):
            assert float(values.exp().sum()) <= 1 + 1e-4  # values: (n,)
    for hyp in result.hypotheses:
        own = _score(translator.model, ids, hyp.tokens)
        torch.testing.assert_close(torch.tensor(hyp.token_logprobs), own, atol=1e-4, rtol=1e-4)
        assert hyp.logprob == pytest.approx(float(own.sum()), abs=1e-3)
    trace = translator.translate(text, settings)
    for step in trace.steps:
        assert sum(c.prob for c in step.model_top) <= 1 + 1e-4
        assert step.prob <= 1 + 1e-6 and step.model_prob == pytest.approx(math.exp(step.logprob))
        assert len(step.attention) == len(trace.source_pieces)
        assert sum(step.attention) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_recorded_top_n_and_entropy_match_the_models_distribution(translator, toy_sentences, method):
    """Each step's raw top-n and entropy are those of the model's own distribution at that
    prefix (teacher forcing), computed independently here."""
    ids = translator.source_ids(toy_sentences[2])
    result = search(translator.model, [ids], DecodeSettings(method=method, beam_size=3), record=True)[0]
    tokens = result.hypotheses[0].tokens
    src = torch.tensor([ids])
    tgt_in = torch.tensor([[translator.model.config.bos_id] + tokens[:-1]])
    with torch.no_grad():
        logits = translator.model(src, torch.tensor([len(ids)]), tgt_in)[0]  # (T, V)
    expected_entropy = torch.distributions.Categorical(logits=logits).entropy()
    expected_top = torch.log_softmax(logits, -1).topk(len(result.steps[0].model_top[0]), -1)
    assert len(result.steps) == len(tokens)
    for t, rec in enumerate(result.steps):
        assert rec.model_entropy == pytest.approx(float(expected_entropy[t]), abs=1e-4)
        torch.testing.assert_close(rec.model_top[0], expected_top.values[t], atol=1e-4, rtol=1e-4)
        assert 0.0 <= rec.entropy <= math.log(logits.size(-1)) + 1e-4


def test_entropy_skips_removed_tokens_and_underflow():
    """Filtered tokens (-inf) and probabilities below float's range add nothing, as 0 log 0 = 0."""
    rows = torch.log_softmax(torch.tensor([[3.0, 1.0, -2.0, 0.5], [200.0, 0.0, 1.0, -150.0]]), -1)
    rows[0, 2] = -math.inf
    rows[0] = torch.log_softmax(rows[0], -1)
    probs = rows.double().exp()
    expected = -(probs * rows.double().nan_to_num(neginf=0.0)).sum(-1)
    torch.testing.assert_close(entropy(rows), expected.float(), atol=1e-6, rtol=1e-5)
    assert torch.isfinite(entropy(rows)).all()


def test_sampling_distribution_sums_to_one(random_translator, toy_sentences):
    settings = DecodeSettings(method="sample", temperature=0.5, top_p=0.8, record_top_n=100, seed=0)
    result = search(random_translator.model, [random_translator.source_ids(toy_sentences[2])], settings,
                    record=True)[0]
    for rec in result.steps:
        values = rec.top[0]
        # top-p keeps few tokens, so the top 100 hold all of the used distribution
        assert float(values[torch.isfinite(values)].exp().sum()) == pytest.approx(1.0, abs=1e-4)


def test_forced_prefix_then_greedy(translator, toy_sentences, toy_tokenizer):
    text = toy_sentences[3]
    base = translator.translate(text, DecodeSettings(method="greedy"))
    alternative = base.steps[0].model_top[1].token_id  # the runner-up at step 0
    forced = translator.translate(text, DecodeSettings(method="greedy", forced_prefix=[alternative]))
    assert forced.hypotheses[0].token_ids[0] == alternative
    assert forced.steps[0].forced and not forced.steps[1].forced
    # the rest is greedy from that prefix: replay by hand
    model = translator.model
    ids = translator.source_ids(text)
    state = model.encode(torch.tensor([ids]), torch.tensor([len(ids)]))
    prev, expected = torch.tensor([model.config.bos_id]), []
    cap = min(DecodeSettings().max_length, int(len(ids) * DecodeSettings().max_length_ratio + 10))
    for t in range(cap):
        log_probs, _, state = model.step(prev, state)
        log_probs[:, [model.config.unk_id, model.config.bos_id, model.config.pad_id]] = -math.inf
        token = alternative if t == 0 else int(log_probs.argmax())
        token = model.config.eos_id if t == cap - 1 else token  # the length cap ends it
        expected.append(token)
        if token == model.config.eos_id:
            break
        prev = torch.tensor([token])
    assert forced.hypotheses[0].token_ids == expected


def test_forced_prefix_by_piece_for_every_method(peaked_translator, toy_sentences, toy_tokenizer):
    pieces = toy_tokenizer.target_pieces(toy_tokenizer.encode_target("A dog runs"))
    for method in ("greedy", "sample", "beam"):
        trace = peaked_translator.translate(toy_sentences[0], DecodeSettings(method=method, forced_prefix=pieces,
                                                                             seed=0))
        assert trace.hypotheses[0].pieces[: len(pieces)] == pieces
    with pytest.raises(SettingsError, match="forced_prefix"):
        peaked_translator.translate(toy_sentences[0], DecodeSettings(forced_prefix=["no-such-piece-xyz"]))


def test_beam_never_worse_than_greedy(translator, toy_sentences):
    for text in toy_sentences[:8]:
        greedy = translator.translate(text, DecodeSettings(method="greedy"))
        beam = translator.translate(text, DecodeSettings(method="beam", beam_size=5, length_penalty=0))
        assert beam.hypotheses[0].logprob >= greedy.hypotheses[0].logprob - 1e-5


def test_n_best_sorted_and_distinct(translator, toy_sentences):
    trace = translator.translate(toy_sentences[4], DecodeSettings(method="beam", beam_size=6, n_best=6))
    scores = [h.score for h in trace.hypotheses]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert len({tuple(h.token_ids) for h in trace.hypotheses}) == 6
    for hyp in trace.hypotheses:
        expected = hyp.logprob / length_normalizer(len(hyp.token_ids), DecodeSettings())
        assert hyp.score == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_length_limits_and_ngram_blocking(translator, toy_sentences, method):
    text = toy_sentences[5]
    capped = translator.translate(text, DecodeSettings(method=method, max_length=4, seed=2))
    assert all(len(h.token_ids) <= 4 for h in capped.hypotheses)
    assert capped.hypotheses[0].token_ids[-1] == translator.model.config.eos_id
    longer = translator.translate(text, DecodeSettings(method=method, min_length=6, seed=2))
    assert all(len(h.token_ids) >= 7 for h in longer.hypotheses)  # 6 tokens + EOS
    blocked = translator.translate(text, DecodeSettings(method=method, no_repeat_ngram_size=2, seed=2))
    for hyp in blocked.hypotheses:
        bigrams = list(zip(hyp.token_ids, hyp.token_ids[1:]))
        assert len(bigrams) == len(set(bigrams))


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_a_trace_with_banned_earlier_tokens_is_strict_json(translator, toy_sentences, method):
    """With every earlier token banned (no_repeat_ngram_size 1) the live payloads carry those
    tokens for the repetition penalty with no score: null, never -Infinity, in the JSON."""
    trace = translator.translate(toy_sentences[5], DecodeSettings(method=method, no_repeat_ngram_size=1, min_length=4,
                                                                  live_top_n=16)).to_dict()
    json.dumps(trace, allow_nan=False)
    banned = [(step["live"]["ids"], step["live"]["scores"]) for step in trace["steps"][1:]]
    earlier = [[step["token_id"] for step in trace["steps"][:t + 1]] for t in range(len(trace["steps"]) - 1)]
    extras = [score for (ids, scores), before in zip(banned, earlier)
              for token, score in zip(ids, scores) if token in before]
    assert extras and all(score is None for score in extras)


def test_beam_tree_is_consistent(peaked_translator, toy_sentences):
    trace = peaked_translator.translate(toy_sentences[6], DecodeSettings(beam_size=4, n_best=2))
    nodes = {n.id: n for n in trace.beam_nodes}
    assert nodes[0].parent == -1
    for node in trace.beam_nodes[1:]:
        parent = nodes[node.parent]
        assert parent.status == "kept" and parent.step == node.step - 1
        assert node.score <= parent.score + 1e-6
    finished = [n for n in trace.beam_nodes if n.status == "finished"]
    assert len(finished) >= 2
    best = max(trace.hypotheses, key=lambda h: h.score)
    assert any(n.score == pytest.approx(best.logprob, abs=1e-4) for n in finished)


def test_batched_translation_matches_single(peaked_translator, toy_sentences):
    model = peaked_translator.model
    sources = [peaked_translator.source_ids(t) for t in toy_sentences[:7]]
    for settings in (DecodeSettings(method="greedy"), DecodeSettings(method="beam", beam_size=3)):
        batched = translate_ids(model, sources, settings, batch_size=4)
        single = [translate_ids(model, [s], settings)[0] for s in sources]
        assert batched == single


@pytest.mark.parametrize("settings", [
    DecodeSettings(method="greedy"),
    DecodeSettings(method="beam", beam_size=3, n_best=3, length_penalty=0.6),
    DecodeSettings(method="beam", beam_size=4, n_best=2, min_length=2, no_repeat_ngram_size=2),
    DecodeSettings(method="beam", beam_size=2, forced_prefix=(7,), length_penalty=0.0),
])
@pytest.mark.parametrize("drop_fraction", [0, 2, 1000])
def test_done_sentences_leaving_the_batch_change_no_result(translator, toy_sentences, settings,
                                                           drop_fraction, monkeypatch):
    """Every hypothesis of a batch search equals that of the sentence searched alone,
    whether done sentences leave the batch never (0), once half of those searched are
    done (2) or as soon as one is (1000)."""
    import s2s_demo.decoding as decoding

    monkeypatch.setattr(decoding, "DROP_FRACTION", drop_fraction)
    model = translator.model  # the random one runs to each sentence's length cap
    sources = [translator.source_ids(t) for t in toy_sentences[:8]]
    assert len({len(s) for s in sources}) > 1  # different caps: sentences end at different steps
    batched = search(model, sources, settings)
    for source, result in zip(sources, batched):
        alone = search(model, [source], settings)[0]
        assert len(result.hypotheses) == len(alone.hypotheses) > 0
        for a, b in zip(result.hypotheses, alone.hypotheses):
            assert a.tokens == b.tokens and a.slots == b.slots
            assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
            assert a.score == pytest.approx(b.score, abs=1e-4)


@pytest.mark.parametrize("field,value", [
    ("method", "viterbi"), ("temperature", 0), ("temperature", -1), ("top_k", -1), ("top_p", 0),
    ("top_p", 1.5), ("beam_size", 0), ("beam_size", 17), ("length_penalty", -1),
    ("max_length", 0), ("no_repeat_ngram_size", -2), ("temperature", float("nan")), ("top_k", 2.5),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(SettingsError) as err:
        DecodeSettings(**{field: value})
    assert err.value.field == field and field in str(err.value)


def test_n_best_cannot_exceed_beam():
    with pytest.raises(SettingsError, match="n_best"):
        DecodeSettings(beam_size=2, n_best=3)
    with pytest.raises(SettingsError, match="min_length"):
        DecodeSettings(max_length=5, min_length=6)


def test_recording_over_the_memory_budget_gives_the_same_trace(translator, toy_sentences, monkeypatch):
    settings = DecodeSettings(method="beam", beam_size=4, n_best=2)
    ids = translator.source_ids(toy_sentences[1])
    held = search(translator.model, [ids], settings, record=True)[0]
    # a budget of one step's distributions summarises every step for all rows as it goes
    monkeypatch.setattr(Recorder, "BUDGET", 1)
    summarised = search(translator.model, [ids], settings, record=True)[0]
    assert summarised.hypotheses == held.hypotheses and summarised.nodes == held.nodes
    assert len(summarised.steps) == len(held.steps) > 0
    for a, b in zip(summarised.steps, held.steps):
        torch.testing.assert_close(a.model_top[0], b.model_top[0])
        assert torch.equal(a.top[1], b.top[1]) and a.forced == b.forced
        assert a.model_entropy == pytest.approx(b.model_entropy, abs=1e-5)


@pytest.mark.parametrize("settings", [
    DecodeSettings(method="greedy"),
    DecodeSettings(method="greedy", min_length=4, max_length=6, no_repeat_ngram_size=2, ban_unk=False),
    DecodeSettings(method="greedy", forced_prefix=(7, 9), length_penalty=0.6),
    DecodeSettings(method="sample", temperature=1.3, top_k=20, top_p=0.9, seed=3),
    DecodeSettings(method="sample", temperature=0.7, seed=4, forced_prefix=(5,), no_repeat_ngram_size=1),
    DecodeSettings(method="beam", beam_size=5, n_best=3),
    DecodeSettings(method="beam", beam_size=3, min_length=4, max_length=7, no_repeat_ngram_size=2,
                   ban_unk=False, length_penalty=0.0),
    DecodeSettings(method="beam", beam_size=2, n_best=2, forced_prefix=(7, 9), length_penalty=1.5),
])
def test_recording_changes_no_result_and_the_best_path_is_the_best_hypothesis(translator, toy_sentences,
                                                                              settings):
    """A recorded search finds what an unrecorded one finds; its tree's best path runs from
    the start node through the best hypothesis' tokens to a finished node, each node the
    child of the one before, with the hypothesis' cumulative log-prob at the end."""
    model = translator.model
    for text in toy_sentences[:4]:
        ids = [translator.source_ids(text)]
        plain, recorded = search(model, ids, settings)[0], search(model, ids, settings, record=True)[0]
        assert [h.tokens for h in plain.hypotheses] == [h.tokens for h in recorded.hypotheses]
        assert plain.seed == recorded.seed
        best = recorded.hypotheses[0]
        by_id = {n["id"]: n for n in recorded.nodes}
        path = [by_id[i] for i in recorded.best_path[1:]]
        assert recorded.best_path[0] == 0 and [n["token_id"] for n in path] == best.tokens
        assert [n["step"] for n in path] == list(range(len(best.tokens)))
        assert [n["parent"] for n in path] == recorded.best_path[:-1]
        assert [n["status"] for n in path] == ["kept"] * (len(path) - 1) + ["finished"]
        assert path[-1]["score"] == pytest.approx(best.logprob, abs=1e-4)
        assert len(recorded.steps) == len(best.tokens)


def test_a_forced_step_uses_only_the_forced_token(peaked_translator, toy_sentences):
    """At a forced step the method's distribution is the forced token alone (p = 1), and the
    model's mass on every other token is what forcing cut."""
    trace = peaked_translator.translate(toy_sentences[0], DecodeSettings(method="beam", beam_size=3,
                                                                         forced_prefix=(7,)))
    step = trace.steps[0]
    assert step.forced and step.token_id == 7
    assert [c.token_id for c in step.top] == [7] and step.prob == pytest.approx(1.0)
    assert step.cut_mass == pytest.approx(1.0 - step.model_prob, abs=1e-5)
    assert not trace.steps[1].forced and len(trace.steps[1].top) > 1


def test_trace_of_a_model_without_attention(toy_tokenizer, toy_sentences):
    from s2s_demo.translator import Translator

    translator = Translator(make_model(toy_tokenizer, attention="none"), toy_tokenizer)
    for settings in (DecodeSettings(method="greedy"), DecodeSettings(method="beam", beam_size=3)):
        trace = translator.translate(toy_sentences[0], settings)
        assert trace.steps and all(step.attention is None for step in trace.steps)
        assert [step.token_id for step in trace.steps] == trace.hypotheses[0].token_ids
        # the overview shades entropy up to ln |V|, the most a step's distribution can have
        assert trace.target_vocab_size == toy_tokenizer.tgt_vocab_size
        for step in trace.steps:
            assert 0 <= step.model_entropy <= math.log(trace.target_vocab_size) + 1e-4
            assert len(step.model_top) == 10 and step.model_top[0].prob >= step.model_top[-1].prob
            if settings.method == "greedy":  # greedy takes the best allowed token
                assert step.top[0].token_id == step.token_id
                assert step.top[0].prob == pytest.approx(step.prob, rel=1e-5)


def test_cut_mass_is_the_model_probability_the_method_could_not_pick(random_translator, toy_sentences):
    # top-k 1 keeps one token: everything else the model proposed was cut
    sampled = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", top_k=1, seed=0))
    assert sampled.steps
    for step in sampled.steps:
        assert step.cut_mass == pytest.approx(1 - step.model_prob, abs=1e-4)
    # top-p 1 and no top-k cut nothing but the banned tokens, a small share of an untrained model's mass
    plain = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", seed=0))
    nucleus = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", top_p=0.5, seed=0))
    # (the last step is left out: at the length cap only EOS may be picked, and the rest is cut)
    assert all(0 <= s.cut_mass < 0.2 for s in plain.steps[:-1])
    assert all(s.cut_mass >= 0.4 for s in nucleus.steps[:-1])  # a flat distribution loses about half to top-p 0.5


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_a_recorded_search_keeps_the_states_along_its_best_hypothesis(toy_tokenizer, toy_sentences, method):
    """The states the familiarity check and the neighbours read are the search's own: equal to a
    teacher-forced pass along the best hypothesis (neighbours.encode_states)."""
    from s2s_demo.neighbours import encode_states
    from s2s_demo.translator import Translator

    translator = Translator(make_model(toy_tokenizer, seed=4), toy_tokenizer)
    ids = translator.source_ids(toy_sentences[2])
    result = search(translator.engine, [ids], DecodeSettings(method=method, beam_size=3, seed=1), record=True)[0]
    tokens = result.hypotheses[0].tokens
    tgt_in = torch.tensor([[translator.config.bos_id] + tokens[:-1]])
    encoding, states = encode_states(translator.engine, torch.tensor([ids]), torch.tensor([len(ids)]), tgt_in)
    torch.testing.assert_close(result.states, states[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(result.encoding, encoding[0], atol=1e-6, rtol=1e-6)
    assert search(translator.engine, [ids], DecodeSettings(method=method, seed=1))[0].states is None
