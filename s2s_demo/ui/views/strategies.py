"""The Strategies tab: greedy, beam search, three samplers and MBR on one sentence, side by side."""

from __future__ import annotations

import gradio as gr

from ... import strategies
from ..api import guarded
from ..request import Request, strategies_request
from .context import PageContext

INTRO = ("Greedy or beam or sampling? The same sentence decoded six ways. Greedy takes the likeliest token at "
         "every step; beam search keeps several partial translations and returns the best whole one; sampling draws "
         "each token at random from the model's distribution (top-p and epsilon first cut its unlikely tail); MBR "
         "draws several epsilon samples and keeps the one that agrees most with the others (chrF). Log-prob is how "
         "likely the model finds the whole output; score divides it by the length penalty. Try: give a reference "
         "to see which strategy comes closest, or raise the number of samples.")
COLUMNS = ["strategy", "translation", "log-prob", "score", "tokens", "chrF", "BLEU"]


def table(result: dict) -> list[list]:
    """One row per strategy, metrics rounded; blanks where no reference was scored."""
    def fmt(value, digits=2):
        return "" if value is None else round(value, digits)
    return [[r["strategy"], r["translation"], fmt(r["logprob"]), fmt(r["score"]), r["tokens"], fmt(r["chrf"], 1),
             fmt(r["bleu"], 1)] for r in result["rows"]]


def note(result: dict) -> str:
    base = (f"{result['samples']} samples per sampler, seed {result['seed']}; {result['ms']:.0f} ms. "
            "The samplers' rows show their first sample; MBR chose among the epsilon samples.")
    return base + (f" {result['reference_note']}" if result["reference_note"] else "")


def build(ctx: PageContext) -> dict:
    gr.Markdown(INTRO)
    with gr.Row():
        samples = gr.Slider(1, strategies.MAX_SAMPLES, value=strategies.DEFAULT_SAMPLES, step=1,
                            label="Samples per sampler", scale=1)
        reference = gr.Textbox(label="Reference translation (optional)", lines=1, scale=3, elem_id="strategy-ref")
    button = gr.Button("Run every strategy")
    rows = gr.Dataframe(headers=COLUMNS, label="Strategies side by side", interactive=False, wrap=True,
                        elem_id="strategies")
    summary = gr.Textbox(label="How these were made", interactive=False, elem_id="strategies-note")

    def show(text_value, model_value, samples_value, reference_value, *control_values):
        request = Request.from_controls(text_value, model_value, *control_values)
        result = guarded(strategies_request, ctx.registry, request, int(samples_value), reference_value or None,
                         labels=ctx.labels)
        return table(result), note(result)

    button.click(show, [ctx.text, ctx.model, samples, reference, *ctx.controls], [rows, summary],
                 api_visibility="undocumented")
    return {"cleared": ([rows, summary], (None, ""))}
