"""Attribution, under the attention plot: which source pieces each word depends on, from the
gradients of its log-prob (``s2s_demo.attribution``), computed on request."""

from __future__ import annotations

import gradio as gr

from ... import attribution
from .. import render
from ..api import guarded
from ..request import attribute_request, same_request
from .context import PageContext


def build(ctx: PageContext) -> dict:
    """Lay the view out and wire it; returns its state and what another translation leaves stale."""
    gr.Markdown("**Attribution**: which source pieces each word of the translation depends on, from the gradients "
                "of its log-prob (computed on request: about a second).")
    with gr.Row():
        method = gr.Radio([(label, name) for name, label in render.ATTRIBUTION_LABELS.items()],
                          value="integrated_gradients", label="Attribution method", scale=3)
        button = gr.Button("Attribute the translation", scale=1, elem_id="attribute")
    summary = gr.Markdown(elem_id="attribution-summary")
    heatmap = gr.Plot(label="Attribution", elem_id="attribution")
    state = gr.State(None)

    def show(trace, method_value):
        if not trace or not trace["hypotheses"]:
            raise gr.Error("Translate a sentence first.")
        attributed = guarded(attribute_request, ctx.registry, same_request(trace, None), attribution.DEFAULT_STEPS,
                             trace["hypotheses"][0]["token_ids"], labels=ctx.labels)
        return attributed, render.attribution_summary(attributed), render.attribution_plot(attributed, method_value)

    button.click(show, [ctx.trace, method], [state, summary, heatmap], api_visibility="undocumented")
    method.change(lambda attributed, value: render.attribution_plot(attributed, value) if attributed
                  else gr.update(), [state, method], heatmap, api_visibility="undocumented")
    return {"state": state, "stale": [summary, heatmap]}
