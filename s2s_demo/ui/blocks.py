"""The page: its layout and events. Handlers only call the request functions of
``s2s_demo.ui.request`` and render the dicts they return; the API endpoints return those same dicts."""

from __future__ import annotations


import gradio as gr

from .. import internals
from ..settings import BOUNDS, PAGE_SAMPLING_TOP_K, DecodeSettings
from ..translator import MAX_CHARS
from . import links, render
from .api import guarded as _guarded, register_api
from .live_view import LIVE_CSS, LIVE_SETTINGS, ON_LOAD, REDRAW_JS
from .views import steps as steps_view, translation as translation_view
from .registry import ModelRegistry
from .. import attribution
from .request import (CONTROLS, Request, same_request, attribute_request, compare_request, neighbours_request,
                      score_request, translate_request)

DEFAULTS = DecodeSettings()
INTRO = """# Look inside an LSTM translator
A BiLSTM encoder bridged into an LSTM decoder with attention, trained on **Multi30k image captions**
(*"Two dogs play in the snow."*): translate a caption, then watch every decoding step answer the controls."""


# Gradio takes a page's CSS at launch: app.py, the browser tests and benchmarks.page pass it
PAGE_CSS = """
/* on a phone the beam tree keeps a readable width and scrolls sideways in its box (labels of
   a 390 px wide tree overlap) */
@media (max-width: 640px) {
  #beam-tree { overflow-x: auto; }
  #beam-tree [data-testid="plotly"] { width: 760px; }
  /* the controls stay at hand as a sheet at the bottom of the screen while the chart is in view;
     the page gets room below its end to scroll everything above the sheet */
  #controls { position: fixed; left: 0; right: 0; bottom: 0; z-index: 20; max-height: 30vh; overflow-y: auto;
              padding: 4px 8px; background: var(--background-fill-primary); border-top: 2px solid #93c5fd;
              display: flex; flex-direction: column !important; flex-wrap: nowrap !important; }
  #controls > * { flex: 0 0 auto; }
  .gradio-container { padding-bottom: 32vh !important; }
  #controls .sampler-help { display: none; }
}
/* beside the chart on a wide screen, the controls follow the page as it scrolls */
@media (min-width: 641px) {
  #controls { position: sticky; top: 8px; align-self: flex-start; }
}
.live-help p { font-size: 13px; margin: 0; }
/* an empty translation box stays one line high, so the chart is in view at 1280x900 */
#translation .textfield, #translation .empty { min-height: 2.5em; }
#translation > div:has(> .empty) { min-height: 0; height: auto; }
"""

SAMPLING_HELP = ("Sampling draws each token from the model's distribution, reshaped by these controls in "
                 "this order (Hugging Face's): the repetition penalty, **temperature**, then each cut — "
                 "**top-k** keeps the k most likely tokens, **top-p** the fewest whose probabilities add up to "
                 "p, **min-p** those at least min-p times as likely as the best, **typical-p** those nearest "
                 "the step's average surprise, **epsilon**/**eta** drop tokens below a floor — then "
                 "renormalisation.")
LIVE_HELP = ("**Move a slider: the chart answers while it moves** (worked out in your browser); let go and "
             "the sentence is translated again with the new setting, on the same step.")


def build_demo(registry: ModelRegistry) -> gr.Blocks:
    with gr.Blocks(title="s2s-demo: inside an LSTM translator") as demo:
        gr.Markdown(INTRO)
        trace_state = gr.State(None)     # the trace of the last full translation
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                model = gr.Dropdown(registry.choices(), value=registry.default, label="Model")
                text = gr.Textbox(label=f"Source sentence (up to {MAX_CHARS} characters; Shift+Enter translates)",
                                  lines=2, max_lines=6, placeholder="Ein Mann fährt mit dem Fahrrad.")
                # above the examples: on a phone it stays within the first screen
                translate_btn = gr.Button("Translate", variant="primary", elem_id="translate")
                familiarity = gr.Markdown(visible=False, elem_id="familiarity")
                unreadable = gr.HighlightedText(label="Source as this model reads it",
                                                color_map=render.SOURCE_COLORS, show_legend=True,
                                                show_inline_category=False, visible=False, elem_id="unreadable")
                translation = gr.HighlightedText(label="Translation (colour: the model's probability of each "
                                                       "word's least sure piece)",
                                                 show_legend=True, color_map=render.CONFIDENCE_COLORS,
                                                 show_inline_category=False, elem_id="translation")
                timing = gr.Markdown(elem_id="status")
                # the step chart sits under the translation, beside the controls that change it: the
                # page's own script redraws it while a slider moves (live_view)
                with gr.Row(equal_height=True):
                    step = gr.Dropdown(choices=[], label="Step", interactive=True, elem_id="step", scale=1,
                                       min_width=140)
                    gr.Markdown(LIVE_HELP, elem_classes=["live-help"])
                live_chart = gr.HTML(None, html_template="<div class='s2s-live'></div>", js_on_load=ON_LOAD,
                                     css_template=LIVE_CSS, elem_id="live-step")
                examples = gr.Dataset(components=[text], samples=_examples(registry, registry.default),
                                      label="Examples from the test set", samples_per_page=6)
            with gr.Column(scale=2, elem_id="controls"):
                method = gr.Radio(["beam", "greedy", "sample"], value="beam", label="Decoding method")
                beam_size = gr.Slider(*BOUNDS["beam_size"], value=DEFAULTS.beam_size, step=1, label="Beam size")
                n_best = gr.Slider(1, DEFAULTS.beam_size, value=DEFAULTS.n_best, step=1, label="n-best")
                length_penalty = gr.Slider(*BOUNDS["length_penalty"], value=_tuned_lp(registry, registry.default),
                                           step=0.1,
                                           label="Length penalty α (GNMT; 0 = off)")
                with gr.Accordion("How the samplers work", open=False, visible=False,
                                  elem_classes=["sampler-help"]) as sampling_help:
                    gr.Markdown(SAMPLING_HELP)
                temperature = gr.Slider(*BOUNDS["temperature"], value=1.0, step=0.05, label="Temperature",
                                        visible=False)
                # the API takes any k; past 100 a top-k cuts nothing a visitor could see
                top_k = gr.Slider(0, 100, value=PAGE_SAMPLING_TOP_K, step=1, label="Top-k (0 = off)", visible=False)
                top_p = gr.Slider(*BOUNDS["top_p"], value=1.0, step=0.01, label="Top-p", visible=False)
                min_p = gr.Slider(*BOUNDS["min_p"], value=0.0, step=0.01, label="Min-p (0 = off)", visible=False)
                typical_p = gr.Slider(*BOUNDS["typical_p"], value=1.0, step=0.01, label="Typical-p (1 = off)",
                                      visible=False)
                epsilon_cutoff = gr.Slider(0.0, 0.02, value=0.0, step=0.0005, label="Epsilon cutoff (0 = off)",
                                           visible=False)
                eta_cutoff = gr.Slider(0.0, 0.02, value=0.0, step=0.0005, label="Eta cutoff (0 = off)", visible=False)
                repetition_penalty = gr.Slider(1.0, 3.0, value=1.0, step=0.05, label="Repetition penalty (1 = off)",
                                               visible=False)
                with gr.Row(visible=False) as seed_row:
                    seed = gr.Number(value=None, precision=0, label="Seed (empty: a fresh one each time)",
                                     elem_id="seed", scale=2)
                    pin_seed = gr.Checkbox(False, label="Pin the seed", elem_id="pin-seed", scale=1)
                max_length = gr.Slider(*BOUNDS["max_length"], value=DEFAULTS.max_length, step=1,
                                       label="Max length")
        nbest = gr.Dataframe(headers=render.NBEST_COLUMNS, label="n-best hypotheses", interactive=False, wrap=True)
        share = gr.Textbox(label="Link to this translation", interactive=False, buttons=["copy"], elem_id="share")
        internals_state = gr.State(None)  # the LSTM tab's recording of the current translation
        score_state = gr.State(None)      # the Score tab's scored reference
        attribution_state = gr.State(None)  # the Attention tab's attribution of the current translation
        neighbours_state = gr.State(None)   # the Neighbours tab's examples for the current translation
        # on a phone the tab names wrap to a second row instead of hiding behind "..."
        with gr.Tabs(overflow_behavior="wrap") as tabs:
            with gr.Tab("Steps", id="steps"):
                # drawn at load, so that Plotly's bundle is there before the first Translate
                overview = gr.Plot(render.placeholder_plot("Translate a sentence to see every step here"),
                                   label="All steps")
                step_plot = gr.Plot(label="Distribution at this step")
                # a panel, not a Group: inside a Group the buttons lose their frames and read as text
                with gr.Column(variant="panel"):
                    gr.Markdown("**What if?** Force another token at this step; the model continues from there.")
                    with gr.Row():
                        alternative = gr.Dropdown(choices=[], label="Alternative token", interactive=True, scale=3)
                        whatif_btn = gr.Button("Re-decode with this token", variant="primary", scale=1)
                        reset_btn = gr.Button("Reset", scale=1)
                    with gr.Row():
                        original_box = gr.Textbox(label="Original translation", interactive=False)
                        whatif_box = gr.HighlightedText(label="With the forced token", show_legend=True,
                                                       color_map=render.CONFIDENCE_COLORS,
                                                       show_inline_category=False, elem_id="what-if")
                    whatif_summary = gr.Markdown(elem_id="what-if-summary")
                    whatif_table = gr.Dataframe(headers=render.WHATIF_COLUMNS, label="Step by step, side by side",
                                                interactive=False, elem_id="what-if-table")
                    whatif_share = gr.Textbox(label="Link to the translation with the forced token",
                                              interactive=False, buttons=["copy"], elem_id="what-if-share")
            with gr.Tab("Attention", id="attention"):
                attention = gr.Plot(label="Attention", elem_id="attention-plot")
                gr.Markdown("**Attribution**: which source pieces each word of the translation depends on, from "
                            "the gradients of its log-prob (computed on request: about a second).")
                with gr.Row():
                    attribution_method = gr.Radio([(label, name) for name, label in
                                                   render.ATTRIBUTION_LABELS.items()],
                                                  value="integrated_gradients", label="Attribution method", scale=3)
                    attribute_btn = gr.Button("Attribute the translation", scale=1, elem_id="attribute")
                attribution_summary = gr.Markdown(elem_id="attribution-summary")
                attribution_heatmap = gr.Plot(label="Attribution", elem_id="attribution")
            with gr.Tab("Tree", id="tree"):
                tree = gr.Plot(label="Beam search tree", elem_id="beam-tree")
            with gr.Tab("LSTM", id="lstm"):
                gr.Markdown("Inside the decoder's LSTM along the translation: its input, forget and output gates, "
                            "its cell and hidden states, unit by unit at every step, and the bridge that turns the "
                            "encoder's final forward and backward states into the decoder's first state. Replayed "
                            "from the model's float32 weights with the textbook LSTM equations.")
                with gr.Row():
                    quantity = gr.Dropdown([(label, name) for name, label in render.QUANTITY_LABELS.items()],
                                           value="forget_gate", label="Quantity")
                    layer = gr.Dropdown([(f"layer {i + 1}", i) for i in range(_layers(registry))], value=0,
                                        label="Decoder layer")
                    unit_order = gr.Dropdown(list(render.UNIT_ORDERS), value=render.UNIT_ORDERS[0], label="Units")
                internals_btn = gr.Button("Show the LSTM's gates and cells", elem_id="lstm-button")
                lstm_heatmap = gr.Plot(label="Units × steps", elem_id="lstm-heatmap")
                bridge = gr.Plot(label="The bridge", elem_id="bridge")
            with gr.Tab("Neighbours", id="neighbours"):
                gr.Markdown("The training captions nearest to this sentence in the model's own encoding, and for "
                            "each step of the translation the training sentences whose decoder state was nearest "
                            "(as Seq2Seq-Vis shows them), with the path of the decoder's states drawn among "
                            "the training states.")
                neighbours_btn = gr.Button("Find the nearest training examples", elem_id="find-neighbours")
                neighbours_summary = gr.Markdown(elem_id="neighbours-summary")
                neighbour_sentences = gr.Dataframe(headers=render.NEIGHBOUR_COLUMNS, label="Nearest training captions",
                                                   interactive=False, wrap=True, elem_id="neighbour-sentences")
                neighbour_step = gr.Dropdown(choices=[], label="Step of the translation", interactive=True)
                neighbour_states = gr.HighlightedText(label="Training sentences whose decoder state was nearest",
                                                      color_map=render.NEIGHBOUR_COLORS, show_legend=True,
                                                      show_inline_category=False, elem_id="neighbour-states")
                trajectory = gr.Plot(label="Trajectory", elem_id="trajectory")
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("The same sentence through every model that reads its language (the attention "
                            "models and the plain encoder-decoder), with the decoding settings above; "
                            "score and log-prob are those of each model's best hypothesis.")
                compare_btn = gr.Button("Compare on this sentence")
                comparison = gr.Dataframe(headers=render.COMPARE_COLUMNS, label="Translations by model",
                                          interactive=False, wrap=True, elem_id="comparison")
                compare_note = gr.Markdown(elem_id="compare-note")
            with gr.Tab("Score", id="score"):
                gr.Markdown("Type your own translation of the sentence: how likely the model finds each of its "
                            "tokens (teacher forcing), its score beside the model's best, and the first step where "
                            "the model would have written something else.")
                reference = gr.Textbox(label="Your translation", lines=2, max_lines=6, elem_id="reference")
                score_btn = gr.Button("Score this translation")
                score_summary = gr.Markdown(elem_id="score-summary")
                scored_tokens = gr.HighlightedText(label="Your translation (colour: the model's probability of each "
                                                         "word's least sure piece)", show_legend=True,
                                                   color_map=render.CONFIDENCE_COLORS, show_inline_category=False,
                                                   elem_id="scored")
                model_best = gr.Textbox(label="The model's best translation", interactive=False)
                scored_table = gr.Dataframe(headers=render.REFERENCE_COLUMNS, label="Token by token",
                                            interactive=False, elem_id="scored-table")
                continue_btn = gr.Button("Force your translation up to the first difference; let the model go on")
                continued = gr.HighlightedText(label="Your translation up to the first difference, then the model's",
                                               show_legend=True, color_map=render.CONFIDENCE_COLORS,
                                               show_inline_category=False, elem_id="continued")
        with gr.Accordion("Raw trace (JSON)", open=False) as raw_trace:
            # a code view draws only the lines in sight; a JSON tree drew every node (4.6 s frozen
            # tab, 77k DOM nodes for a beam-16 trace)
            trace_json = gr.Code(label="Trace (what the /translate API returns)", language="json",
                                 interactive=False, max_lines=30)

        widgets = {"method": method, "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                   "typical_p": typical_p, "epsilon_cutoff": epsilon_cutoff, "eta_cutoff": eta_cutoff,
                   "repetition_penalty": repetition_penalty, "beam_size": beam_size, "n_best": n_best,
                   "length_penalty": length_penalty, "max_length": max_length, "seed": seed}
        controls = [widgets[name] for name in CONTROLS]  # the order Request.from_controls reads
        labels = {name: widget.label for name, widget in widgets.items()}

        # the JSON is sent only while its view is open: closed, it would cost every response ~70 KB
        # and the browser a code view to redraw
        raw_open = gr.State(False)

        # the Attention and Tree plots are drawn while their tab is open, or when it opens: a hidden
        # plot would cost every translation its figure and its transfer (~30 ms of a ~300 ms click)
        open_tab = gr.State("Steps")
        lazy_plots = {"Attention": render.attention_plot, "Tree": render.beam_tree_plot}

        def lazy(trace, tab: str, name: str):
            # closed: emptied (cheap), so that opening it never shows the last translation's plot
            return lazy_plots[name](trace) if tab == name else None

        # the page's gr.Request comes first: Gradio inserts it at its parameter's position, and
        # the controls are *args
        def run(page: gr.Request, text_value, model_value, tab, json_open, step_value, pinned, *control_values,
                forced_prefix=None):
            values = dict(zip(CONTROLS, control_values))
            if not pinned:  # dice: each translation draws a fresh seed, shown afterwards
                values["seed"] = None
            request = Request(text_value, model_value, **values, forced_prefix=forced_prefix)
            trace = _guarded(translate_request, registry, request, labels=labels)
            # the step the visitor was looking at stays selected (the last one, if the output is shorter)
            return by_component(
                translation_view.view(trace, translation_view.page_url(page)), steps_view.view(trace, step_value),
                {"trace": trace, "attention": lazy(trace, tab, "Attention"), "tree": lazy(trace, tab, "Tree"),
                 "whatif": None, "seed": gr.update(value=trace["seed"]) if trace.get("seed") is not None
                 else gr.update(), "raw_json": translation_view.raw_json(trace) if json_open else gr.update()},
                emptied_on_server())

        def on_tab(trace, evt: gr.SelectData):
            tab = evt.value
            return [tab] + [lazy(trace, tab, name) if trace and tab == name else gr.update() for name in lazy_plots]

        tabs.select(on_tab, trace_state, [open_tab, attention, tree], api_visibility="undocumented")

        # another translation: the explainer views and the what-if link were of the one before.
        # Their states (and the step selector's choices, which only the server can set) are emptied
        # with the translation, the views in the browser at the click: as outputs of the
        # translation each would cost the server a component update and the browser another pass.
        stale_on_server = {"internals": internals_state, "attribution": attribution_state,
                           "neighbours": neighbours_state, "neighbour_step": neighbour_step}
        stale_in_browser = [lstm_heatmap, bridge, attribution_summary, attribution_heatmap, neighbours_summary,
                            neighbour_sentences, neighbour_states, trajectory, whatif_share]

        def emptied_on_server() -> dict:
            return {"internals": None, "attribution": None, "neighbours": None,
                    "neighbour_step": gr.update(choices=[], value=None)}

        gr.on([translate_btn.click, text.submit, examples.click, model.change], None, None, stale_in_browser,
              js=f"() => Array({len(stale_in_browser)}).fill(null)", api_visibility="undocumented")

        # one event draws everything a translation changes: each further event is another round
        # trip and another pass of the browser over the page, on the visitor's wait (the raw
        # trace follows it, in show_json)
        components = {"trace": trace_state, "translation": translation, "nbest": nbest, "status": timing,
                      "overview": overview, "step": step, "step_plot": step_plot, "alternative": alternative,
                      "attention": attention, "tree": tree, "original": original_box, "whatif": whatif_box,
                      "familiarity": familiarity, "unreadable": unreadable, "share": share, "live_chart": live_chart,
                      "seed": seed, "raw_json": trace_json, **stale_on_server}
        outputs = list(components.values())

        def by_component(*views: dict) -> dict:
            """The views' updates by name -> by component, as Gradio takes them."""
            return {components[name]: value for view in views for name, value in view.items()}
        run_inputs = [text, model, open_tab, raw_open, step, pin_seed, *controls]

        def show_json(json_open, trace):
            # read after the translation: the view may have been opened while it was running
            return translation_view.raw_json(trace) if json_open and trace else gr.update()

        def after_run(event):
            """What follows every translation: its raw trace, if that view is open."""
            return event.then(show_json, [raw_open, trace_state], trace_json, api_visibility="undocumented",
                              show_progress="hidden")

        # one spinner, on the translation, rather than one on each output
        after_run(gr.on([translate_btn.click, text.submit], run, run_inputs, outputs,
                        api_visibility="undocumented", show_progress_on=[translation]))

        # a slider moving redraws the step chart in the browser, with no request; its release
        # (or a number typed) decodes again, the latest setting only (a burst of releases queues
        # one run after the current, and replies come in order)
        live_inputs = [widgets[name] for name in LIVE_SETTINGS]
        for name in LIVE_SETTINGS:
            widgets[name].input(None, live_inputs, None, js=REDRAW_JS, api_visibility="undocumented")
        redecode = [widgets[name].release for name in LIVE_SETTINGS + ("beam_size", "n_best", "max_length")]
        # one request a release: the raw trace, if open, comes with the translation
        gr.on(redecode + [seed.submit], run, run_inputs, outputs, api_visibility="undocumented",
              trigger_mode="always_last", show_progress="hidden")

        def from_link(request: gr.Request):
            # a shared link's model, text, settings and forced tokens; anything invalid in it is
            # ignored. A link's seed is pinned: it reproduces the sample it was made from.
            values = links.read_query(dict(request.query_params) if request else {}, registry.names)
            # a value the API takes but the page's slider cannot show (top-k 500) is left out too
            values = {name: value for name, value in values.items() if name not in widgets
                      or not isinstance(widgets[name], gr.Slider)
                      or widgets[name].minimum <= value <= widgets[name].maximum}
            by_name = {"model": model, "text": text, **widgets}
            return [gr.update(value=values[name]) if name in values else gr.update() for name in by_name] + \
                [bool(values.get("text")), values.get("forced_prefix"), "seed" in values]

        def run_linked(page: gr.Request, go, forced_prefix, *args):
            return run(page, *args, forced_prefix=forced_prefix) if go else {}

        linked, linked_prefix = gr.State(False), gr.State(None)
        after_run(demo.load(from_link, None, [model, text, *widgets.values(), linked, linked_prefix, pin_seed],
                            api_visibility="undocumented").then(
            run_linked, [linked, linked_prefix, *run_inputs], outputs, api_visibility="undocumented"))
        raw_trace.expand(lambda trace: (True, translation_view.raw_json(trace) if trace else None), trace_state,
                         [raw_open, trace_json], api_visibility="undocumented")
        raw_trace.collapse(lambda: False, None, raw_open, api_visibility="undocumented")

        def show_comparison(text_value, model_value, *control_values):
            rows = _guarded(compare_request, registry, Request.from_controls(text_value, model_value, *control_values),
                            labels=labels)
            return render.compare_table(rows), render.compare_note(rows)

        compare_btn.click(show_comparison, [text, model, *controls], [comparison, compare_note],
                          api_visibility="undocumented")

        def show_score(text_value, model_value, reference_value, *control_values):
            request = Request.from_controls(text_value, model_value, *control_values)
            scored = _guarded(score_request, registry, request, reference_value, labels=labels)
            return (scored, render.reference_summary(scored), render.reference_tokens(scored),
                    scored["best_translation"], render.reference_table(scored), None)

        score_btn.click(show_score, [text, model, reference, *controls],
                        [score_state, score_summary, scored_tokens, model_best, scored_table, continued],
                        api_visibility="undocumented")

        def continue_reference(scored):
            if not scored:
                raise gr.Error("Score a translation first.")
            first = scored["first_difference"]
            if first is None:
                raise gr.Error("The model would write your whole translation itself: nothing to continue.")
            prefix = scored["token_ids"][: first + 1]
            return render.highlighted_tokens(_guarded(translate_request, registry, same_request(scored, prefix),
                                                      labels=labels))

        continue_btn.click(continue_reference, score_state, continued, api_visibility="undocumented")

        def show_attribution(trace, method_value):
            if not trace or not trace["hypotheses"]:
                raise gr.Error("Translate a sentence first.")
            attributed = _guarded(attribute_request, registry, same_request(trace, None),
                                  attribution.DEFAULT_STEPS, trace["hypotheses"][0]["token_ids"], labels=labels)
            return attributed, render.attribution_summary(attributed), render.attribution_plot(attributed,
                                                                                                method_value)

        attribute_btn.click(show_attribution, [trace_state, attribution_method],
                            [attribution_state, attribution_summary, attribution_heatmap],
                            api_visibility="undocumented")
        attribution_method.change(
            lambda attributed, method_value: render.attribution_plot(attributed, method_value) if attributed
            else gr.update(), [attribution_state, attribution_method], attribution_heatmap,
            api_visibility="undocumented")

        def show_neighbours(trace):
            if not trace or not trace["hypotheses"]:
                raise gr.Error("Translate a sentence first.")
            nearest = _guarded(neighbours_request, registry, same_request(trace, None), 5,
                               trace["hypotheses"][0]["token_ids"], labels=labels)
            return (nearest, render.neighbours_summary(nearest), render.neighbour_table(nearest),
                    gr.update(choices=render.neighbour_step_choices(nearest), value=0),
                    render.step_neighbours(nearest, 0), render.trajectory_plot(nearest, 0))

        neighbours_btn.click(show_neighbours, trace_state,
                             [neighbours_state, neighbours_summary, neighbour_sentences, neighbour_step,
                              neighbour_states, trajectory], api_visibility="undocumented")

        def show_neighbour_step(nearest, index):
            if not nearest or index is None:
                return gr.update(), gr.update()
            index = min(int(index), len(nearest["steps"]) - 1)
            return render.step_neighbours(nearest, index), render.trajectory_plot(nearest, index)

        neighbour_step.input(show_neighbour_step, [neighbours_state, neighbour_step], [neighbour_states, trajectory],
                             api_visibility="undocumented")

        def show_internals(trace, quantity_value, layer_value, order_value):
            if not trace:
                raise gr.Error("Translate a sentence first.")
            translator = registry.get(trace["model"])
            layer_value = min(int(layer_value), translator.model.config.num_layers - 1)
            recorded = internals.record(translator.model, translator.source_ids(trace["source"]),
                                        trace["hypotheses"][0]["token_ids"])
            return (recorded, render.lstm_plot(trace, recorded, quantity_value, layer_value, order_value),
                    render.bridge_plot(recorded, layer_value))

        internals_btn.click(show_internals, [trace_state, quantity, layer, unit_order],
                            [internals_state, lstm_heatmap, bridge], api_visibility="undocumented")

        def redraw_internals(trace, recorded, quantity_value, layer_value, order_value):
            if not trace or not recorded:
                return gr.update(), gr.update()
            layer_value = min(int(layer_value), recorded["num_layers"] - 1)
            return (render.lstm_plot(trace, recorded, quantity_value, layer_value, order_value),
                    render.bridge_plot(recorded, layer_value))

        gr.on([quantity.change, layer.change, unit_order.change], redraw_internals,
              [trace_state, internals_state, quantity, layer, unit_order], [lstm_heatmap, bridge],
              api_visibility="undocumented")

        def show_step(trace, index):
            if not trace or index is None:
                return gr.update(), gr.update(), gr.update()
            updates = steps_view.step_view(trace, int(index))
            return updates["step_plot"], updates["alternative"], updates["live_chart"]

        step.input(show_step, [trace_state, step], [step_plot, alternative, live_chart],
                   api_visibility="undocumented")

        def what_if(trace, index, token_id, request: gr.Request):
            if not trace:
                raise gr.Error("Translate a sentence first.")
            if index is None or token_id is None:
                raise gr.Error("Choose a step and an alternative token.")
            prefix = trace["hypotheses"][0]["token_ids"][: int(index)] + [int(token_id)]
            # the settings of the translation it is compared with, not the controls as they are now
            forced = _guarded(translate_request, registry, same_request(trace, prefix), labels=labels)
            table, summary = render.whatif_diff(trace, forced, int(index))
            return (render.highlighted_tokens(forced), summary, table,
                    translation_view.share_link(forced, translation_view.page_url(request)))

        whatif_outputs = [whatif_box, whatif_summary, whatif_table, whatif_share]
        whatif_btn.click(what_if, [trace_state, step, alternative], whatif_outputs, api_visibility="undocumented")
        reset_btn.click(lambda: (None, "", None, ""), None, whatif_outputs, api_visibility="undocumented")

        sampling_controls = [temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff, eta_cutoff,
                             repetition_penalty, seed_row, sampling_help]

        def on_method(value):
            sample, beam = value == "sample", value == "beam"
            return [gr.update(visible=beam)] * 3 + [gr.update(visible=sample)] * len(sampling_controls)

        def on_beam_size(size, current):
            # n-best can be at most the beam size: the slider says so instead of an error later
            size = int(size)
            # a slider needs its maximum above its minimum: at beam size 1 it stays at 1, fixed
            return gr.update(maximum=max(size, 2), value=min(int(current), size), interactive=size > 1)

        beam_size.change(on_beam_size, [beam_size, n_best], n_best, api_visibility="undocumented")
        method.change(on_method, method, [beam_size, n_best, length_penalty, *sampling_controls],
                      api_visibility="undocumented")

        def on_model(name):
            if name not in registry.translators:
                raise gr.Error(f"Unknown model {name!r}")
            return gr.Dataset(samples=_examples(registry, name)), _tuned_lp(registry, name)

        def clear_outputs():
            # a new model: the last translation was another model's, so it must not stay on screen
            return by_component(translation_view.view(None), steps_view.view(None),
                                {"trace": None, "attention": None, "tree": None, "whatif": None, "seed": gr.update(),
                                 "raw_json": None}, emptied_on_server())

        model.change(on_model, model, [examples, length_penalty], api_visibility="undocumented").then(
            clear_outputs, None, outputs, api_visibility="undocumented").then(
            lambda: (None, "", None, "", None, None), None,
            [score_state, score_summary, scored_tokens, model_best, scored_table, continued],
            api_visibility="undocumented")
        # an example is a sentence to translate: fill the box and translate it
        after_run(examples.click(lambda sample: sample[0], examples, text, api_visibility="undocumented").then(
            run, run_inputs, outputs, api_visibility="undocumented"))

        register_api(registry)
    return demo


def _layers(registry: ModelRegistry) -> int:
    return max(registry.get(name).model.config.num_layers for name in registry.names)


def _examples(registry: ModelRegistry, name: str) -> list[list[str]]:
    widget = registry.get(name).card.get("widget") or []
    return [[w["text"]] for w in widget if isinstance(w, dict) and isinstance(w.get("text"), str)][:12]


def _tuned_lp(registry: ModelRegistry, name: str) -> float:
    return registry.get(name).default_settings().length_penalty
