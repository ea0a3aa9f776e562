"""The steps view: the overview of every step, the step selector, the chosen step's distribution
(the server's plot and the live chart the browser redraws) and the what-if alternatives."""

from __future__ import annotations

import gradio as gr

from .. import render
from ..live_view import step_payload


def view(trace: dict | None, index: int | None = 0) -> dict:
    """Updates of overview, step, step_plot, alternative and live_chart for step ``index`` of
    ``trace`` (clamped to its last step)."""
    if not trace:
        empty = gr.update(choices=[], value=None)
        return {"overview": None, "step": empty, "step_plot": None, "alternative": empty, "live_chart": None}
    index = min(max(int(index or 0), 0), len(trace["steps"]) - 1) if trace["steps"] else None
    return {"overview": render.steps_overview_plot(trace),
            "step": gr.update(choices=render.step_choices(trace), value=index), **step_view(trace, index)}


def step_view(trace: dict, index: int | None) -> dict:
    """The parts that follow the step selector: step_plot, alternative and live_chart."""
    return {"step_plot": render.step_distribution_plot(trace, index or 0),
            "alternative": alternatives(trace, index or 0), "live_chart": step_payload(trace, index)}


def alternatives(trace: dict, index: int):
    if not trace["steps"]:
        return gr.update(choices=[], value=None)
    rec = trace["steps"][min(index, len(trace["steps"]) - 1)]
    choices = [(f"{render.display_piece(c['piece'])}  (p={c['prob']:.3f})", c["token_id"])
               for c in rec["model_top"] if c["token_id"] != rec["token_id"]]
    return gr.update(choices=choices, value=choices[0][1] if choices else None)
