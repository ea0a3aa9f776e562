"""The Neighbours tab: the training captions nearest to the sentence, each step's nearest training
states and the decoder's path among them (``s2s_demo.neighbours``), on request."""

from __future__ import annotations

import gradio as gr

from .. import render
from ..api import guarded
from ..request import neighbours_request, same_request
from .context import PageContext

INTRO = ("The training captions nearest to this sentence in the model's own encoding, and for each step of the "
         "translation the training sentences whose decoder state was nearest (as Seq2Seq-Vis shows them), with "
         "the path of the decoder's states drawn among the training states.")


def build(ctx: PageContext) -> dict:
    """Lay the tab out and wire it; returns its state, its step selector and what another
    translation leaves stale."""
    gr.Markdown(INTRO)
    button = gr.Button("Find the nearest training examples", elem_id="find-neighbours")
    summary = gr.Markdown(elem_id="neighbours-summary")
    sentences = gr.Dataframe(headers=render.NEIGHBOUR_COLUMNS, label="Nearest training captions",
                             interactive=False, wrap=True, elem_id="neighbour-sentences")
    step = gr.Dropdown(choices=[], label="Step of the translation", interactive=True)
    states = gr.HighlightedText(label="Training sentences whose decoder state was nearest",
                                color_map=render.NEIGHBOUR_COLORS, show_legend=True, show_inline_category=False,
                                elem_id="neighbour-states")
    trajectory = gr.Plot(label="Trajectory", elem_id="trajectory")
    state = gr.State(None)

    def show(trace):
        if not trace or not trace["hypotheses"]:
            raise gr.Error("Translate a sentence first.")
        nearest = guarded(neighbours_request, ctx.registry, same_request(trace, None), 5,
                          trace["hypotheses"][0]["token_ids"], labels=ctx.labels)
        return (nearest, render.neighbours_summary(nearest), render.neighbour_table(nearest),
                gr.update(choices=render.neighbour_step_choices(nearest), value=0), *step_view(nearest, 0))

    button.click(show, ctx.trace, [state, summary, sentences, step, states, trajectory],
                 api_visibility="undocumented")

    def show_step(nearest, index):
        if not nearest or index is None:
            return gr.update(), gr.update()
        return step_view(nearest, index)

    step.input(show_step, [state, step], [states, trajectory], api_visibility="undocumented")
    return {"state": state, "step": step, "stale": [summary, sentences, states, trajectory]}


def step_view(nearest: dict, index: int) -> tuple:
    """The nearest training sentences of step ``index`` (clamped) and the trajectory marking it."""
    index = min(int(index), len(nearest["steps"]) - 1)
    return render.step_neighbours(nearest, index), render.trajectory_plot(nearest, index)
