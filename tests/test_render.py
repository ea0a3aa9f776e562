"""Renderers from a trace dict to what the page shows."""

from s2s_demo.ui import render


def trace_with(pieces, probs, entropies):
    steps = [{"step": i, "piece": piece, "model_prob": p, "model_entropy": h}
             for i, (piece, p, h) in enumerate(zip(pieces, probs, entropies))]
    return {"steps": steps}


def colour_range(heatmap):
    return heatmap.zmin, heatmap.zmax


def test_overview_entropy_colour_means_the_same_in_every_sentence():
    # A calm sentence and an unsure one share a step with 0.5 nats: it must get one colour in both,
    # i.e. the strip shows raw nats on one fixed scale, not entropy scaled to each sentence's maximum.
    calm = render.steps_overview_plot(trace_with(["▁A", "▁dog"], [0.9, 0.8], [0.5, 0.2]))
    unsure = render.steps_overview_plot(trace_with(["▁A", "▁cat"], [0.4, 0.3], [0.5, 3.0]))
    for fig, entropies in ((calm, [0.5, 0.2]), (unsure, [0.5, 3.0])):
        prob_strip, entropy_strip = fig.data
        assert list(entropy_strip.z[0]) == entropies
        assert colour_range(entropy_strip) == colour_range(render.steps_overview_plot(
            trace_with(["x"], [1.0], [0.0])).data[1])
        assert colour_range(prob_strip) == (0, 1)
    assert list(calm.data[0].z[0]) == [0.9, 0.8]


def test_overview_labels_escape_html_from_the_model():
    fig = render.steps_overview_plot(trace_with(["▁<b>bold</b>", "</s>"], [0.5, 0.9], [1.0, 0.1]))
    labels = list(fig.data[0].x)
    assert labels[0] == "0:&lt;b&gt;bold&lt;/b&gt;"
    assert "<b>" not in "".join(labels)


def test_overview_of_an_empty_trace_says_so():
    fig = render.steps_overview_plot({"steps": []})
    assert "No steps" in fig.layout.annotations[0].text
