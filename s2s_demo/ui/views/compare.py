"""The Compare tab: the sentence through every model that reads its language, side by side."""

from __future__ import annotations

import gradio as gr

from .. import render
from ..api import guarded
from ..request import Request, compare_request
from ..registry import UnknownModelError
from .context import PageContext

INTRO = ("The same sentence through every model that reads its language (the attention models and the plain "
         "encoder-decoder), with the decoding settings above; score and log-prob are those of each model's best "
         "hypothesis.")


def build(ctx: PageContext) -> dict:
    gr.Markdown(INTRO)
    button = gr.Button("Compare on this sentence")
    table = gr.Dataframe(headers=render.COMPARE_COLUMNS, label="Translations by model", interactive=False,
                         wrap=True, elem_id="comparison")
    note = gr.Markdown(elem_id="compare-note")

    def show(text_value, model_value, *control_values):
        # text in the other language of the model's pair: compare the models that read it instead
        try:
            better = ctx.registry.better_model(model_value, text_value)
        except UnknownModelError:  # compare_request names it
            better = None
        request = Request.from_controls(text_value, better or model_value, *control_values)
        rows = guarded(compare_request, ctx.registry, request, labels=ctx.labels)
        switched = (f"The sentence reads as {render.safe(rows[0]['pair'].split('→')[0])}, which "
                    f"{render.safe(model_value)} does not read: here are the models that read it. " if better else "")
        return render.compare_table(rows), switched + render.compare_note(rows)

    button.click(show, [ctx.text, ctx.model, *ctx.controls], [table, note], api_visibility="undocumented")
    return {}
