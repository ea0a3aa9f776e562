"""The Score tab: the visitor's own translation rated token by token (teacher forcing), and the
model's continuation from the first word it would have chosen otherwise."""

from __future__ import annotations

import gradio as gr

from .. import render
from ..api import guarded
from ..request import Request, same_request, score_request, translate_request
from . import translation as translation_view
from .context import PageContext

INTRO = ("Type your own translation of the sentence: how likely the model finds each of its tokens (teacher "
         "forcing), its score beside the model's best, and the first step where the model would have written "
         "something else.")


def build(ctx: PageContext) -> dict:
    """Lay the tab out and wire it; returns what a change of model must clear (``cleared``)."""
    gr.Markdown(INTRO)
    reference = gr.Textbox(label="Your translation", lines=2, max_lines=6, elem_id="reference")
    button = gr.Button("Score this translation")
    summary = gr.Markdown(elem_id="score-summary")
    tokens = gr.HighlightedText(label="Your translation (colour: the model's probability of each word's least sure "
                                      "piece)", show_legend=True, color_map=render.CONFIDENCE_COLORS,
                                show_inline_category=False, elem_id="scored")
    best = gr.Textbox(label="The model's best translation", interactive=False)
    table = gr.Dataframe(headers=render.REFERENCE_COLUMNS, label="Token by token", interactive=False,
                         elem_id="scored-table")
    continue_btn = gr.Button("Force your translation up to the first difference; let the model go on")
    continued = gr.HighlightedText(label="Your translation up to the first difference, then the model's",
                                   show_legend=True, color_map=render.CONFIDENCE_COLORS, show_inline_category=False,
                                   elem_id="continued")
    state = gr.State(None)

    def show(text_value, model_value, reference_value, *control_values):
        request = Request.from_controls(text_value, model_value, *control_values)
        scored = guarded(score_request, ctx.registry, request, reference_value, labels=ctx.labels)
        return (scored, render.reference_summary(scored), translation_view.chips(render.reference_tokens(scored)),
                scored["best_translation"],
                render.reference_table(scored), None)

    outputs = [state, summary, tokens, best, table, continued]
    button.click(show, [ctx.text, ctx.model, reference, *ctx.controls], outputs, api_visibility="undocumented")

    def go_on(scored):
        if not scored:
            raise gr.Error("Score a translation first.")
        first = scored["first_difference"]
        if first is None:
            raise gr.Error("The model would write your whole translation itself: nothing to continue.")
        forced = guarded(translate_request, ctx.registry, same_request(scored, scored["token_ids"][: first + 1]),
                         labels=ctx.labels)
        return translation_view.chips(render.highlighted_tokens(forced))

    continue_btn.click(go_on, state, continued, api_visibility="undocumented")
    return {"cleared": (outputs, (None, "", None, "", None, None))}
