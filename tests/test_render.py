"""Renderers from a trace dict to what the page shows."""

import math

from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo.ui import render


def trace_with(pieces, probs, entropies, vocab=8000):
    steps = [{"step": i, "piece": piece, "model_prob": p, "model_entropy": h}
             for i, (piece, p, h) in enumerate(zip(pieces, probs, entropies))]
    return {"steps": steps, "target_vocab_size": vocab}


def test_overview_entropy_shade_means_the_same_in_every_sentence():
    # A calm sentence and an unsure one share a step with 0.5 nats: it must get one shade in both,
    # i.e. a fixed scale, not entropy scaled to each sentence's own maximum.
    calm = render.steps_overview_plot(trace_with(["▁A", "▁dog"], [0.9, 0.8], [0.5, 0.2])).data[0]
    unsure = render.steps_overview_plot(trace_with(["▁A", "▁cat"], [0.4, 0.3], [0.5, 12.0])).data[0]
    assert calm.z[1][0] == unsure.z[1][0] == 0.5 / math.log(8000)
    assert unsure.z[1][1] == 1.0  # beyond the scale: the darkest shade
    assert list(calm.z[0]) == [0.9, 0.8]
    assert list(unsure.customdata[1]) == [0.5, 12.0]  # hover shows nats


def test_overview_entropy_scale_is_the_models_own_vocabulary():
    # ln |V| is the most entropy a step can have: a uniform guess is the darkest shade for any model
    for vocab in (1000, 8000, 32000):
        fig = render.steps_overview_plot(trace_with(["▁A", "▁B"], [0.5, 0.5], [math.log(vocab), 1.0], vocab))
        assert fig.data[0].z[1][0] == 1.0
        assert fig.data[0].z[1][1] == 1.0 / math.log(vocab)
        assert f"ln {vocab:,}" in fig.layout.title.text


def test_overview_labels_escape_html_from_the_model():
    fig = render.steps_overview_plot(trace_with(["▁<b>bold</b>", "</s>"], [0.5, 0.9], [1.0, 0.1]))
    labels = list(fig.data[0].x)
    assert labels[0] == "0:&lt;b&gt;bold&lt;/b&gt;"
    assert "<b>" not in "".join(labels)


def test_overview_of_an_empty_trace_says_so():
    fig = render.steps_overview_plot({"steps": [], "target_vocab_size": 8000})
    assert "No steps" in fig.layout.annotations[0].text


def test_beam_tree_numbers_steps_as_the_step_selector_and_stacks_kept_nodes_first(random_translator,
                                                                                   toy_sentences):
    from s2s_demo.settings import DecodeSettings

    trace = random_translator.translate(toy_sentences[1], DecodeSettings(method="beam", beam_size=3)).to_dict()
    fig = render.beam_tree_plot(trace)
    best = next(d for d in fig.data if d.name == "best")
    # the start node at -1, then one x per output token: the trace's own step numbers
    assert list(best.x) == [-1] + [s["step"] for s in trace["steps"]]
    y = {}
    for d in fig.data:
        if d.name in ("kept", "finished", "pruned"):
            for x, yy in zip(d.x, d.y):
                y.setdefault((x, d.name), []).append(yy)
    for (x, status), ys in y.items():
        if status == "pruned" and (x, "kept") in y:
            assert max(ys) < min(y[x, "kept"])  # every pruned node below every kept one


def _steps(pieces, probs, forced=()):
    return [{"step": i, "piece": p, "model_prob": q, "forced": i in forced} for i, (p, q) in enumerate(zip(pieces, probs))]


def test_translation_chips_are_words_coloured_by_their_least_sure_piece():
    trace = {"steps": _steps(["▁Un", "e", "▁petite", "▁fille", "</s>"], [0.95, 0.3, 0.99, 0.6, 0.9])}
    assert render.highlighted_tokens(trace) == [("Une", "20–50%"), (" petite", "≥ 90%"), (" fille", "50–90%")]


def test_forced_words_and_a_cut_output_are_flagged_in_the_translation():
    trace = {"steps": _steps(["▁Zwei", "▁Hund", "e"], [0.9, 0.9, 0.9], forced=(2,)), "length_capped": True}
    assert render.highlighted_tokens(trace) == [("Zwei", "≥ 90%"), (" Hunde", render.FORCED),
                                                (" …", render.LENGTH_LIMIT)]


def test_source_highlight_marks_only_the_unreadable_characters():
    trace = {"source": "Hi مر x", "familiarity": {"unknown_characters": ["م", "ر"]}}
    assert render.source_highlight(trace) == [("Hi ", None), ("مر", render.UNREADABLE), (" x", None)]
    assert render.source_highlight({"source": "ok", "familiarity": None}) == [("ok", None)]


def test_a_link_carries_the_translation_and_a_broken_one_is_ignored(random_translator, toy_sentences):
    from urllib.parse import parse_qsl

    from s2s_demo.settings import DecodeSettings
    from s2s_demo.ui import links

    trace = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", top_k=5)).to_dict()
    trace["model"] = "toy"
    values = links.read_query(dict(parse_qsl(links.link_query(trace))), ["toy"])
    assert values["model"] == "toy" and values["text"] == toy_sentences[0]
    assert (values["method"], values["top_k"], values["seed"]) == ("sample", 5, trace["seed"])
    assert "forced_prefix" not in values
    forced = random_translator.translate(toy_sentences[0], DecodeSettings(forced_prefix=(7, 9))).to_dict()
    forced["model"] = "toy"
    assert links.read_query(dict(parse_qsl(links.link_query(forced))), ["toy"])["forced_prefix"] == [7, 9]
    assert "forced_prefix" not in links.read_query({"forced": "7,-1"}, ["toy"])
    broken = links.read_query({"model": "nope", "text": "x" * 5000, "beam_size": "99", "method": "viterbi",
                               "top_p": "abc", "max_length": "40"}, ["toy"])
    assert broken == {"max_length": 40}


def test_what_if_diff_aligns_the_two_outputs_and_reports_the_change(random_translator, toy_sentences):
    from s2s_demo.settings import DecodeSettings

    greedy = DecodeSettings(method="greedy")
    original = random_translator.translate(toy_sentences[1], greedy).to_dict()
    alternative = original["steps"][0]["model_top"][1]["token_id"]
    forced = random_translator.translate(toy_sentences[1], greedy.replace(forced_prefix=(alternative,))).to_dict()
    table, summary = render.whatif_diff(original, forced, 0)
    assert len(table) == max(len(original["steps"]), len(forced["steps"]))
    assert table.iloc[0, 3].endswith("(forced)") and not table.iloc[1, 3].endswith("(forced)")
    assert table.iloc[0, 2] == round(original["steps"][0]["model_prob"], 3)
    shifts = [v for v in table["attention moved"] if v is not None]
    assert shifts and all(0 <= v <= 1 for v in shifts)
    assert f"{original['hypotheses'][0]['logprob']:.3f} → {forced['hypotheses'][0]['logprob']:.3f}" in summary


def test_every_figure_the_page_draws_is_valid_plotly(tmp_path, toy_tokenizer, toy_tokenizer_dir, toy_corpus,
                                                     toy_sentences):
    # the figures are built from plain specs that plotly.py does not check as it builds them
    # (render._figure): here plotly.py's own validation reads each one, and rejects any unknown property
    import plotly.graph_objects as go

    from s2s_demo.settings import DecodeSettings
    from train.neighbours import build

    from .conftest import corpus_pairs, make_model

    save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, tmp_path / "m")
    translator = load(tmp_path / "m")
    sources, targets = corpus_pairs(toy_corpus, "train")
    build(translator, sources, targets, 5, 4, 4, corpus_pairs(toy_corpus, "val")[0]).save(tmp_path / "m")
    translator = load(tmp_path / "m")
    text = toy_sentences[0]
    trace = translator.translate(text, DecodeSettings(method="beam", beam_size=3), internals=True).to_dict()
    recorded = trace["internals"]
    figures = [render.steps_overview_plot(trace), render.step_distribution_plot(trace, 1),
               render.attention_plot(trace), render.beam_tree_plot(trace),
               render.lstm_plot(trace, recorded, "forget_gate", 0), render.lstm_plot(trace, recorded, "cell", 0),
               render.bridge_plot(recorded, 0), render.placeholder_plot("Translate a sentence"),
               render.trajectory_plot(translator.nearest_examples(text, k=2), 0)]
    attributed = translator.attribute(text, steps=2)
    figures += [render.attribution_plot(attributed, method) for method in render.ATTRIBUTION_LABELS]
    for fig in figures:
        checked = go.Figure(fig.to_dict())  # raises ValueError on an invalid property or value
        assert checked.to_plotly_json()["data"] == fig.to_plotly_json()["data"]
        assert len(fig.to_json()) < 200_000


def test_the_length_cap_message_names_the_cap_that_applied():
    from s2s_demo.ui.views.translation import length_cap_text

    trace = {"source_pieces": ["▁a"] * 7, "settings": {"max_length": 100, "max_length_ratio": 2.0}}
    assert length_cap_text(trace).startswith("at most 2 × 7 source pieces + 10 = 24 tokens")
    trace["settings"]["max_length"] = 12
    assert length_cap_text(trace) == "at most 12 tokens (the Max length setting: raise it)"


def test_the_tree_names_its_method_and_folds_a_wide_beam(random_translator, toy_sentences):
    from s2s_demo.settings import DecodeSettings

    sampled = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", seed=1)).to_dict()
    assert render.beam_tree_plot(sampled).layout.title.text.startswith("Samples")
    wide = random_translator.translate(toy_sentences[0], DecodeSettings(beam_size=12)).to_dict()
    figure = render.beam_tree_plot(wide)
    assert figure.layout.title.text.startswith("Beam search tree (12 beams)") and "folded" in figure.layout.title.text
    assert {t.visible for t in figure.data if t.legendgroup == "pruned"} == {"legendonly"}
    narrow = render.beam_tree_plot(random_translator.translate(toy_sentences[0], DecodeSettings(beam_size=3)).to_dict())
    assert {t.visible for t in narrow.data if t.legendgroup == "pruned"} == {True}


def test_a_what_if_marks_only_the_visitors_token_as_forced():
    steps = [{"step": t, "piece": p, "forced": t < 3, "model_prob": 0.95} for t, p in
             enumerate(["▁A", "▁man", "▁rides", "▁a", "</s>"])]
    assert [c for _, c in render.highlighted_tokens({"steps": steps})][:3] == [render.FORCED] * 3
    marked = [c for _, c in render.highlighted_tokens({"steps": steps}, forced_from=2)]
    assert marked[2] == render.FORCED and render.FORCED not in marked[:2] + marked[3:]


def test_a_beam_step_draws_one_bar_per_token_and_a_sampled_step_two(random_translator, toy_sentences):
    from s2s_demo.settings import DecodeSettings

    beam = random_translator.translate(toy_sentences[0], DecodeSettings(beam_size=3)).to_dict()
    assert [bar.name for bar in render.step_distribution_plot(beam, 0).data] == ["model softmax"]
    sampled = random_translator.translate(toy_sentences[0], DecodeSettings(method="sample", temperature=0.5,
                                                                           seed=2)).to_dict()
    assert [bar.name for bar in render.step_distribution_plot(sampled, 0).data] == ["model softmax",
                                                                                    "used by decoding"]
