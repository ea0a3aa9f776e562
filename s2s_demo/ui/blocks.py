"""The page: its layout and events. Handlers only call the request functions of
``s2s_demo.ui.request`` and render the dicts they return; the API endpoints return those same dicts."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import gradio as gr

from ..model_folder import ModelLoadError
from ..settings import BOUNDS, PAGE_SAMPLING_TOP_K, DecodeSettings
from ..translator import MAX_CHARS
from . import links, render
from .api import guarded, register_api
from .live_view import LIVE_CSS, LIVE_SETTINGS, ON_LOAD, REDRAW_JS, TOUR_MOVED_JS, TOUR_START_JS
from .views import attribution as attribution_view, compare as compare_view, lstm as lstm_view
from .views import neighbours as neighbours_view, score as score_view, steps as steps_view
from .views import strategies as strategies_view, translation as translation_view
from .views.context import PageContext
from .registry import ModelRegistry
from .request import CONTROLS, Request, same_request, translate_request

DEFAULTS = DecodeSettings()
INTRO = """# Look inside an LSTM translator
A BiLSTM encoder bridged into an LSTM decoder with attention, trained on **Multi30k image captions**
(*"{example}"*): translate a caption, then watch every decoding step answer the controls."""
# a caption in each source language the shipped models read: the intro's example and the text
# box's placeholder are in the default model's source language
EXAMPLE_CAPTIONS = {"de": "Zwei Hunde spielen im Schnee.", "en": "Two dogs play in the snow.",
                    "fr": "Deux chiens jouent dans la neige."}


def example_caption(registry: ModelRegistry) -> str:
    lang = registry.get(None).config.src_lang
    return EXAMPLE_CAPTIONS.get(lang, EXAMPLE_CAPTIONS["en"])


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
# what each view shows, how to read it, one thing to try (the views in views/ carry their own)
EXPLAIN = {
    "steps": ("At every step the decoder outputs a probability for each of the thousands of tokens it knows (the "
              "softmax); the top chart shows each step's top candidates, the lower one the step chosen in Step. Grey "
              "is the model's own probability, blue what the decoding method made of it. Try: pick a step where the "
              "chosen token was unsure and force its rival below."),
    "attention": ("Where the decoder looked: each row is a word of the translation, each column a piece of the "
                  "source, and a bright cell means that piece weighed most when the word was chosen. Rows sum to 1. "
                  "Try: a sentence with a different word order, and see the bright cells leave the diagonal."),
    "tree": ("The search, step by step from the left: beam search keeps the best few partial translations (blue), "
             "sets aside the ones that end (green) and drops the rest (grey); the thick line is the winner. Try: beam "
             "size 1 (greedy), then 10, and watch the tree widen."),
}
LIVE_HELP = ("**Move a slider: the chart answers while it moves** (worked out in your browser); let go and "
             "the sentence is translated again with the new setting, on the same step.")


def build_demo(registry: ModelRegistry) -> gr.Blocks:
    with gr.Blocks(title="s2s-demo: inside an LSTM translator") as demo:
        Page(registry, demo)
        register_api(registry)
    return demo


class Page:
    """The page's components (``self.c``, by name) and the events between them. Each ``_layout_*``
    method lays out one part, each ``_wire_*`` method wires one concern; the views
    (``s2s_demo.ui.views``) turn traces into updates by name."""

    def __init__(self, registry: ModelRegistry, demo: gr.Blocks) -> None:
        self.registry, self.demo = registry, demo
        with gr.Row(equal_height=False):
            gr.Markdown(INTRO.format(example=example_caption(registry)))
            # the tour is the page's own script (static/tour.js): no request
            gr.Button("Take the tour", elem_id="tour-start", scale=0, min_width=140, size="sm").click(
                None, None, None, js=TOUR_START_JS, api_visibility="undocumented")
        self.c: dict = {"trace": gr.State(None)}  # the trace of the last full translation
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                self._layout_inputs()
            with gr.Column(scale=2, elem_id="controls"):
                self._layout_controls()
        self.c["nbest"] = gr.Dataframe(headers=render.NBEST_COLUMNS, label="n-best hypotheses", interactive=False,
                                       wrap=True)
        self.c["share"] = gr.Textbox(label="Link to this translation", interactive=False, buttons=["copy"],
                                     elem_id="share")
        self.ctx = PageContext(registry, self.c["trace"], self.c["text"], self.c["model"], self.controls, self.labels)
        self._layout_tabs()
        with gr.Accordion("Raw trace (JSON)", open=False) as self.raw_trace:
            # a code view draws only the lines in sight; a JSON tree drew every node (4.6 s frozen
            # tab, 77k DOM nodes for a beam-16 trace)
            self.c["raw_json"] = gr.Code(label="Trace (what the /translate API returns)", language="json",
                                         interactive=False, max_lines=30)
            with gr.Row():
                self.export_btn = gr.Button("Export the trace as a JSON file", scale=1, elem_id="export-trace")
                self.export_file = gr.File(label="Trace file", visible=False, scale=2, elem_id="trace-file")
        # the JSON is sent only while its view is open: closed, it would cost every response ~70 KB
        self.raw_open = gr.State(False)
        # the Attention and Tree plots are drawn while their tab is open, or when it opens: a hidden
        # plot would cost every translation its figure and its transfer (~30 ms of a ~300 ms click)
        self.open_tab = gr.State("Steps")
        # what a translation may update: everything but the visitor's own inputs
        self.outputs = [v for name, v in self.c.items() if name not in ("model", "text", "pin_seed")]
        self.run_inputs = [self.c["text"], self.c["model"], self.open_tab, self.raw_open, self.c["step"],
                           self.c["pin_seed"], *self.controls]
        self._wire_translation()
        self._wire_live()
        self._wire_link()
        self._wire_steps()
        self._wire_controls()
        self._wire_model()

    # ------------------------------------------------------------------ layout
    def _layout_inputs(self) -> None:
        c, registry = self.c, self.registry
        c["model"] = gr.Dropdown(registry.choices(), value=registry.default, label="Model")
        with gr.Accordion("Load a model from the Hugging Face Hub", open=False, elem_id="hub-load"):
            with gr.Row():
                self.hub_ref = gr.Textbox(label="Hub repo id (owner/name, optionally @revision)", scale=3,
                                          placeholder="s2s-demo/en-de", elem_id="hub-ref")
                self.hub_btn = gr.Button("Load", scale=1, elem_id="hub-load-button")
            # plain text: a visitor's repo id and the Hub's answer are never rendered as HTML
            self.hub_status = gr.Textbox(label="Hub", interactive=False, visible=False, elem_id="hub-status")
        c["text"] = gr.Textbox(label=f"Source sentence (up to {MAX_CHARS} characters; Shift+Enter translates)",
                               elem_id="source-text",
                               lines=2, max_lines=6, placeholder=example_caption(registry))
        # above the examples: on a phone it stays within the first screen
        self.translate_btn = gr.Button("Translate", variant="primary", elem_id="translate")
        c["familiarity"] = gr.Markdown(visible=False, elem_id="familiarity")
        # text in the other language of the model's pair: one click to the model that reads it
        c["switch"] = gr.Button(visible=False, variant="secondary", elem_id="switch-model")
        c["suggested"] = gr.State(None)
        c["unreadable"] = gr.HighlightedText(label="Source as this model reads it", color_map=render.SOURCE_COLORS,
                                             show_legend=True, show_inline_category=False, visible=False,
                                             elem_id="unreadable")
        c["translation"] = gr.HighlightedText(label="Translation (colour: the model's probability of each word's "
                                                    "least sure piece)", show_legend=True,
                                              color_map=render.CONFIDENCE_COLORS, show_inline_category=False,
                                              elem_id="translation")
        c["status"] = gr.Markdown(elem_id="status")
        # the step chart sits under the translation, beside the controls that change it: the
        # page's own script redraws it while a slider moves (live_view)
        with gr.Row(equal_height=True):
            c["step"] = gr.Dropdown(choices=[], label="Step", interactive=True, elem_id="step", scale=1,
                                    min_width=140)
            gr.Markdown(LIVE_HELP, elem_classes=["live-help"])
        c["live_chart"] = gr.HTML(None, html_template="<div class='s2s-live'></div>", js_on_load=ON_LOAD,
                                  css_template=LIVE_CSS, elem_id="live-step")
        self.examples = gr.Dataset(components=[c["text"]], samples=_examples(registry, registry.default),
                                   label="Examples from the test set", samples_per_page=6)

    def _layout_controls(self) -> None:
        slider = gr.Slider
        w = self.widgets = {"method": gr.Radio(["beam", "greedy", "sample"], value="beam", label="Decoding method")}
        w["beam_size"] = slider(*BOUNDS["beam_size"], value=DEFAULTS.beam_size, step=1, label="Beam size")
        w["n_best"] = slider(1, DEFAULTS.beam_size, value=DEFAULTS.n_best, step=1, label="n-best")
        w["length_penalty"] = slider(*BOUNDS["length_penalty"], value=_tuned_lp(self.registry, self.registry.default),
                                     step=0.1, label="Length penalty α (GNMT; 0 = off)")
        with gr.Accordion("How the samplers work", open=False, visible=False,
                          elem_classes=["sampler-help"]) as sampling_help:
            gr.Markdown(SAMPLING_HELP)
        hidden = {"visible": False}
        w["temperature"] = slider(*BOUNDS["temperature"], value=1.0, step=0.05, label="Temperature", **hidden)
        # the API takes any k; past 100 a top-k cuts nothing a visitor could see
        w["top_k"] = slider(0, 100, value=PAGE_SAMPLING_TOP_K, step=1, label="Top-k (0 = off)", **hidden)
        w["top_p"] = slider(*BOUNDS["top_p"], value=1.0, step=0.01, label="Top-p", **hidden)
        w["min_p"] = slider(*BOUNDS["min_p"], value=0.0, step=0.01, label="Min-p (0 = off)", **hidden)
        w["typical_p"] = slider(*BOUNDS["typical_p"], value=1.0, step=0.01, label="Typical-p (1 = off)", **hidden)
        w["epsilon_cutoff"] = slider(0.0, 0.02, value=0.0, step=0.0005, label="Epsilon cutoff (0 = off)", **hidden)
        w["eta_cutoff"] = slider(0.0, 0.02, value=0.0, step=0.0005, label="Eta cutoff (0 = off)", **hidden)
        w["repetition_penalty"] = slider(1.0, 3.0, value=1.0, step=0.05, label="Repetition penalty (1 = off)",
                                         **hidden)
        with gr.Row(visible=False) as seed_row:
            w["seed"] = self.c["seed"] = gr.Number(value=None, precision=0, elem_id="seed", scale=2,
                                                   label="Seed (empty: a fresh one each time)")
            self.c["pin_seed"] = gr.Checkbox(False, label="Pin the seed", elem_id="pin-seed", scale=1)
        w["max_length"] = slider(*BOUNDS["max_length"], value=DEFAULTS.max_length, step=1, label="Max length")
        self.sampling_only = [w[name] for name in LIVE_SETTINGS if name != "length_penalty"] + [seed_row,
                                                                                                sampling_help]
        self.controls = [w[name] for name in CONTROLS]  # the order Request.from_controls reads
        self.labels = {name: widget.label for name, widget in w.items()}

    def _layout_tabs(self) -> None:
        c = self.c
        # on a phone the tab names wrap to a second row instead of hiding behind "..."
        with gr.Tabs(overflow_behavior="wrap") as self.tabs:
            with gr.Tab("Steps", id="steps"):
                gr.Markdown(EXPLAIN["steps"], elem_classes=["explain"])
                self._layout_steps_tab()
            with gr.Tab("Attention", id="attention"):
                gr.Markdown(EXPLAIN["attention"], elem_classes=["explain"])
                c["attention"] = gr.Plot(label="Attention", elem_id="attention-plot")
                attributed = attribution_view.build(self.ctx)
            with gr.Tab("Tree", id="tree"):
                gr.Markdown(EXPLAIN["tree"], elem_classes=["explain"])
                c["tree"] = gr.Plot(label="Search tree", elem_id="beam-tree")
            with gr.Tab("LSTM", id="lstm"):
                lstm = lstm_view.build(self.ctx)
            with gr.Tab("Neighbours", id="neighbours"):
                neighbours = neighbours_view.build(self.ctx)
            with gr.Tab("Compare", id="compare"):
                compare_view.build(self.ctx)
            with gr.Tab("Strategies", id="strategies"):
                self.strategies = strategies_view.build(self.ctx)
            with gr.Tab("Score", id="score"):
                self.scored = score_view.build(self.ctx)
        # another translation: the explainer views and the what-if link were of the one before.
        # Their states (and the step selector's choices, which only the server can set) are emptied
        # with the translation, the views in the browser at the click: as outputs of the
        # translation each would cost the server a component update and the browser another pass.
        c.update({"internals": lstm["state"], "attribution": attributed["state"], "neighbours": neighbours["state"],
                  "neighbour_step": neighbours["step"]})
        self.stale_in_browser = [*lstm["stale"], *attributed["stale"], *neighbours["stale"], self.whatif_share]

    def _layout_steps_tab(self) -> None:
        c = self.c
        # drawn at load, so that Plotly's bundle is there before the first Translate
        c["overview"] = gr.Plot(render.placeholder_plot("Translate a sentence to see every step here"),
                                label="All steps")
        c["step_plot"] = gr.Plot(label="Distribution at this step")
        # a panel, not a Group: inside a Group the buttons lose their frames and read as text
        with gr.Column(variant="panel"):
            gr.Markdown("**What if?** Force another token at this step; the model continues from there.")
            with gr.Row():
                c["alternative"] = gr.Dropdown(choices=[], label="Alternative token", interactive=True, scale=3)
                self.whatif_btn = gr.Button("Re-decode with this token", variant="primary", scale=1)
                self.reset_btn = gr.Button("Reset", scale=1)
            with gr.Row():
                c["original"] = gr.Textbox(label="Original translation", interactive=False)
                c["whatif"] = gr.HighlightedText(label="With the forced token", show_legend=True,
                                                 color_map=render.CONFIDENCE_COLORS, show_inline_category=False,
                                                 elem_id="what-if")
            self.whatif_summary = gr.Markdown(elem_id="what-if-summary")
            self.whatif_table = gr.Dataframe(headers=render.WHATIF_COLUMNS, label="Step by step, side by side",
                                             interactive=False, elem_id="what-if-table")
            self.whatif_share = gr.Textbox(label="Link to the translation with the forced token", interactive=False,
                                           buttons=["copy"], elem_id="what-if-share")

    # ------------------------------------------------------------------ events
    def by_component(self, *views: dict) -> dict:
        """The views' updates by name -> by component, as Gradio takes them."""
        return {self.c[name]: value for view in views for name, value in view.items()}

    def lazy(self, trace: dict | None, tab: str, name: str):
        """The Attention or Tree plot while its tab is open; closed, emptied (cheap), so that
        opening it never shows the last translation's plot."""
        plot = {"Attention": render.attention_plot, "Tree": render.beam_tree_plot}[name]
        return plot(trace) if trace and tab == name else None

    def emptied_on_server(self) -> dict:
        return {"internals": None, "attribution": None, "neighbours": None,
                "neighbour_step": gr.update(choices=[], value=None)}

    # the page's gr.Request comes first: Gradio inserts it at its parameter's position, and the
    # controls are *args
    def run(self, page: gr.Request, text_value, model_value, tab, json_open, step_value, pinned, *control_values,
            forced_prefix=None) -> dict:
        """Translate with the controls' settings and redraw every view the translation changes."""
        values = dict(zip(CONTROLS, control_values))
        if not pinned:  # dice: each translation draws a fresh seed, shown afterwards
            values["seed"] = None
        request = Request(text_value, model_value, **values, forced_prefix=forced_prefix)
        trace = guarded(translate_request, self.registry, request, labels=self.labels)
        # the step the visitor was looking at stays selected (the last one, if the output is shorter)
        return self.by_component(self.switch_view(trace, text_value),
            translation_view.view(trace, translation_view.page_url(page)), steps_view.view(trace, step_value),
            {"trace": trace, "attention": self.lazy(trace, tab, "Attention"), "tree": self.lazy(trace, tab, "Tree"),
             "whatif": None, "seed": gr.update(value=trace["seed"]) if trace.get("seed") is not None else gr.update(),
             "raw_json": translation_view.raw_json(trace) if json_open else gr.update()},
            self.emptied_on_server())

    def switch_view(self, trace: dict | None, text: str | None) -> dict:
        """The switch button, shown when the text reads as the other language of the model's pair."""
        better = self.registry.better_model(trace["model"], text) if trace and text else None
        if better is None:
            return {"switch": gr.update(visible=False), "suggested": None}
        lang = self.registry.get(better).config.src_lang
        label = (f"This reads as {lang}, which {trace['model']} does not read: translate it with "
                 f"{better} instead")
        return {"switch": gr.update(value=label, visible=True), "suggested": better}

    def after_run(self, event):
        """What follows a Translate: its raw trace, if that view is open (it may have been opened
        while the translation ran)."""
        def show_json(json_open, trace):
            return translation_view.raw_json(trace) if json_open and trace else gr.update()

        return event.then(show_json, [self.raw_open, self.c["trace"]], self.c["raw_json"],
                          api_visibility="undocumented", show_progress="hidden")

    def _wire_translation(self) -> None:
        c, text = self.c, self.c["text"]
        gr.on([self.translate_btn.click, text.submit, self.examples.click, c["model"].input], None, None,
              self.stale_in_browser, js=f"() => Array({len(self.stale_in_browser)}).fill(null)",
              api_visibility="undocumented")
        # one event draws everything a translation changes, one spinner on the translation
        self.after_run(gr.on([self.translate_btn.click, text.submit], self.run, self.run_inputs, self.outputs,
                             api_visibility="undocumented", show_progress_on=[c["translation"]]))
        # an example is a sentence to translate: fill the box and translate it
        self.after_run(self.examples.click(lambda sample: sample[0], self.examples, text,
                                           api_visibility="undocumented").then(
            self.run, self.run_inputs, self.outputs, api_visibility="undocumented"))

        def on_tab(trace, evt: gr.SelectData):
            return [evt.value] + [self.lazy(trace, evt.value, name) if trace and evt.value == name else gr.update()
                                  for name in ("Attention", "Tree")]

        # a visitor who opens two tabs in quick succession gets the last one drawn (the default
        # drops a select that comes while the one before is still being served)
        self.tabs.select(on_tab, c["trace"], [self.open_tab, c["attention"], c["tree"]],
                         api_visibility="undocumented", trigger_mode="always_last")
        self.raw_trace.expand(lambda trace: (True, translation_view.raw_json(trace) if trace else None), c["trace"],
                              [self.raw_open, c["raw_json"]], api_visibility="undocumented")
        self.raw_trace.collapse(lambda: False, None, self.raw_open, api_visibility="undocumented")
        self.export_btn.click(export_trace, c["trace"], self.export_file, api_visibility="undocumented")

    def _wire_live(self) -> None:
        # a slider moving redraws the step chart in the browser, with no request; its release
        # (or a seed typed) decodes again, the latest setting only (a burst of releases queues one
        # run after the current, and replies come in order); the raw trace, if open, comes with it
        w = self.widgets
        live_inputs = [w[name] for name in LIVE_SETTINGS]
        for name in LIVE_SETTINGS:
            w[name].input(None, live_inputs, None, js=REDRAW_JS, api_visibility="undocumented")
        # the tour's temperature stop is done by moving the slider
        w["temperature"].input(None, None, None, js=TOUR_MOVED_JS, api_visibility="undocumented")
        released = [w[name].release for name in LIVE_SETTINGS + ("beam_size", "n_best", "max_length")]
        gr.on(released + [w["seed"].submit], self.run, self.run_inputs, self.outputs, api_visibility="undocumented",
              trigger_mode="always_last", show_progress="hidden")

    def _wire_link(self) -> None:
        w, c = self.widgets, self.c
        by_name = {"model": c["model"], "text": c["text"], **w}

        def from_link(request: gr.Request):
            # a shared link's model, text, settings and forced tokens; anything invalid in it, or
            # beyond what the page's slider can show (top-k 500), is ignored. A link's seed is
            # pinned: it reproduces the sample it was made from.
            values = links.read_query(dict(request.query_params) if request else {}, self.registry.names)
            values = {name: value for name, value in values.items() if not isinstance(w.get(name), gr.Slider)
                      or w[name].minimum <= value <= w[name].maximum}
            examples = gr.update()
            if "model" in values:  # that model's examples, and its tuned length penalty unless the link has one
                examples = gr.Dataset(samples=_examples(self.registry, values["model"]))
                values.setdefault("length_penalty", _tuned_lp(self.registry, values["model"]))
            return [gr.update(value=values[name]) if name in values else gr.update() for name in by_name] + \
                [bool(values.get("text")), values.get("forced_prefix"), "seed" in values, examples]

        def run_linked(page: gr.Request, go, forced_prefix, *args):
            # no link: nothing changes (Gradio reads an empty dict as one value, not as no updates)
            return self.run(page, *args, forced_prefix=forced_prefix) if go else {self.c["status"]: gr.update()}

        linked, linked_prefix = gr.State(False), gr.State(None)
        self.after_run(self.demo.load(from_link, None, [*by_name.values(), linked, linked_prefix, c["pin_seed"],
                                                        self.examples], api_visibility="undocumented").then(
            run_linked, [linked, linked_prefix, *self.run_inputs], self.outputs, api_visibility="undocumented"))

    def _wire_steps(self) -> None:
        c = self.c

        def show_step(trace, index):
            if not trace or index is None:
                return gr.update(), gr.update(), gr.update()
            updates = steps_view.step_view(trace, int(index))
            return updates["step_plot"], updates["alternative"], updates["live_chart"]

        c["step"].input(show_step, [c["trace"], c["step"]], [c["step_plot"], c["alternative"], c["live_chart"]],
                        api_visibility="undocumented")

        def what_if(trace, index, token_id, request: gr.Request):
            if not trace:
                raise gr.Error("Translate a sentence first.")
            if index is None or token_id is None:
                raise gr.Error("Choose a step and an alternative token.")
            prefix = trace["hypotheses"][0]["token_ids"][: int(index)] + [int(token_id)]
            # the settings of the translation it is compared with, not the controls as they are now
            forced = guarded(translate_request, self.registry, same_request(trace, prefix), labels=self.labels)
            table, summary = render.whatif_diff(trace, forced, int(index))
            # only the visitor's token is marked forced: the steps before it repeat the original
            return (translation_view.chips(render.highlighted_tokens(forced, forced_from=int(index))), summary, table,
                    translation_view.share_link(forced, translation_view.page_url(request)))

        outputs = [c["whatif"], self.whatif_summary, self.whatif_table, self.whatif_share]
        self.whatif_btn.click(what_if, [c["trace"], c["step"], c["alternative"]], outputs,
                              api_visibility="undocumented")
        self.reset_btn.click(lambda: (None, "", None, ""), None, outputs, api_visibility="undocumented")

    def _wire_controls(self) -> None:
        w = self.widgets

        def on_method(value):
            sample, beam = value == "sample", value == "beam"
            return [gr.update(visible=beam)] * 3 + [gr.update(visible=sample)] * len(self.sampling_only)

        def on_beam_size(size, current):
            # n-best can be at most the beam size: the slider says so instead of an error later; a
            # slider needs its maximum above its minimum, so at beam size 1 it stays at 1, fixed
            size = int(size)
            return gr.update(maximum=max(size, 2), value=min(int(current), size), interactive=size > 1)

        w["beam_size"].change(on_beam_size, [w["beam_size"], w["n_best"]], w["n_best"], api_visibility="undocumented")
        w["method"].change(on_method, w["method"], [w["beam_size"], w["n_best"], w["length_penalty"],
                                                    *self.sampling_only], api_visibility="undocumented")

    def _wire_model(self) -> None:
        def on_model(name):
            if name not in self.registry.translators:
                raise gr.Error(f"Unknown model {name!r}")
            return gr.Dataset(samples=_examples(self.registry, name)), _tuned_lp(self.registry, name)

        def clear_outputs():
            # a new model: the last translation was another model's, so it must not stay on screen
            return self.by_component(translation_view.view(None), steps_view.view(None), self.switch_view(None, None),
                                     {"trace": None, "attention": None, "tree": None, "whatif": None,
                                      "seed": gr.update(), "raw_json": None}, self.emptied_on_server())

        # the tabs that keep a result of their own (Score, Strategies) empty too
        cleared = [*self.scored["cleared"][0], *self.strategies["cleared"][0]]
        values = (*self.scored["cleared"][1], *self.strategies["cleared"][1])
        # the visitor's pick only: a link that sets the model must not clear the translation it opens
        self.c["model"].input(on_model, self.c["model"], [self.examples, self.widgets["length_penalty"]],
                               api_visibility="undocumented").then(
            clear_outputs, None, self.outputs, api_visibility="undocumented").then(
            lambda: values, None, cleared, api_visibility="undocumented")

        # the switch: the suggested model, then a translation with it
        self.after_run(self.c["switch"].click(lambda name: name, self.c["suggested"], self.c["model"],
                                              api_visibility="undocumented").then(
            on_model, self.c["model"], [self.examples, self.widgets["length_penalty"]],
            api_visibility="undocumented").then(
            self.run, self.run_inputs, self.outputs, api_visibility="undocumented"))

        def on_hub(text):
            try:
                name = self.registry.add_from_hub(text)
            except ModelLoadError as err:  # a toast; the chain below stops, the page keeps its model
                raise gr.Error(str(err)) from err
            return (gr.update(choices=self.registry.choices(), value=name), *on_model(name),
                    gr.update(value=f"Loaded {self.registry.label(name)}.", visible=True))

        loaded = gr.on([self.hub_btn.click, self.hub_ref.submit], on_hub, self.hub_ref,
                       [self.c["model"], self.examples, self.widgets["length_penalty"], self.hub_status],
                       concurrency_limit=1, api_visibility="undocumented")
        loaded.success(clear_outputs, None, self.outputs, api_visibility="undocumented").then(
            lambda: values, None, cleared, api_visibility="undocumented")


def export_trace(trace: dict | None):
    """The trace as a JSON file (the /translate API's format), named after its model and time."""
    if not trace:
        raise gr.Error("Translate a sentence first: there is no trace to export.")
    folder = Path(tempfile.mkdtemp(prefix="s2s-trace-"))
    name = re.sub(r"[^\w.-]", "_", str(trace.get("model", "model")))
    path = folder / f"trace-{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(translation_view.raw_json(trace), encoding="utf-8")
    return gr.update(value=str(path), visible=True)


def _examples(registry: ModelRegistry, name: str) -> list[list[str]]:
    widget = registry.get(name).card.get("widget") or []
    return [[w["text"]] for w in widget if isinstance(w, dict) and isinstance(w.get("text"), str)][:12]


def _tuned_lp(registry: ModelRegistry, name: str) -> float:
    return registry.get(name).default_settings().length_penalty
