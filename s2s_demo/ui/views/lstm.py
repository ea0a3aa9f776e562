"""The LSTM tab: the decoder's gates, cells and hidden states unit by unit at every step of the
translation, and the bridge, replayed on request (``s2s_demo.internals``)."""

from __future__ import annotations

import gradio as gr

from ... import internals
from .. import render
from .context import PageContext

INTRO = ("Inside the decoder's LSTM along the translation: its input, forget and output gates, its cell and "
         "hidden states, unit by unit at every step, and the bridge that turns the encoder's final forward and "
         "backward states into the decoder's first state. Replayed from the model's float32 weights with the "
         "textbook LSTM equations.")


def build(ctx: PageContext) -> dict:
    """Lay the tab out (inside its gr.Tab) and wire it; returns its recording's state and the
    plots another translation leaves stale."""
    gr.Markdown(INTRO)
    layers = max(ctx.registry.get(name).config.num_layers for name in ctx.registry.names)
    with gr.Row():
        quantity = gr.Dropdown([(label, name) for name, label in render.QUANTITY_LABELS.items()],
                               value="forget_gate", label="Quantity")
        layer = gr.Dropdown([(f"layer {i + 1}", i) for i in range(layers)], value=0, label="Decoder layer")
        unit_order = gr.Dropdown(list(render.UNIT_ORDERS), value=render.UNIT_ORDERS[0], label="Units")
    button = gr.Button("Show the LSTM's gates and cells", elem_id="lstm-button")
    heatmap = gr.Plot(label="Units × steps", elem_id="lstm-heatmap")
    bridge = gr.Plot(label="The bridge", elem_id="bridge")
    recorded_state = gr.State(None)

    def show(trace, quantity_value, layer_value, order_value):
        if not trace:
            raise gr.Error("Translate a sentence first.")
        translator = ctx.registry.get(trace["model"])
        recorded = internals.record(translator.model, translator.source_ids(trace["source"]),
                                    trace["hypotheses"][0]["token_ids"])
        return (recorded, *view(trace, recorded, quantity_value, layer_value, order_value))

    button.click(show, [ctx.trace, quantity, layer, unit_order], [recorded_state, heatmap, bridge],
                 api_visibility="undocumented")

    def redraw(trace, recorded, quantity_value, layer_value, order_value):
        if not trace or not recorded:
            return gr.update(), gr.update()
        return view(trace, recorded, quantity_value, layer_value, order_value)

    gr.on([quantity.change, layer.change, unit_order.change], redraw,
          [ctx.trace, recorded_state, quantity, layer, unit_order], [heatmap, bridge], api_visibility="undocumented")
    return {"state": recorded_state, "stale": [heatmap, bridge]}


def view(trace: dict, recorded: dict, quantity: str, layer: int, order: str) -> tuple:
    """The units x steps heatmap and the bridge for ``layer`` (clamped to the model's layers)."""
    layer = min(int(layer), recorded["num_layers"] - 1)
    return render.lstm_plot(trace, recorded, quantity, layer, order), render.bridge_plot(recorded, layer)
