"""The step view that answers while a slider moves: what the browser needs to redo sampling's
chain at one step (``static/live.js``), built from a trace dict.

The chart is drawn by the page's own script, not by the server: the server sends a step's live
payload once (with the translation, or when another step is chosen) and the sliders' ``input``
events redraw it in the browser, with no request.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
LIVE_JS = (STATIC / "live.js").read_text(encoding="utf-8")
LIVE_CSS = (STATIC / "live.css").read_text(encoding="utf-8")
# the page's charts download as SVG too (loaded with the live view, the page's one script)
EXPORT_JS = (STATIC / "export.js").read_text(encoding="utf-8")
# on a phone, a new translation is scrolled into view above the controls' sheet
PHONE_JS = (STATIC / "phone.js").read_text(encoding="utf-8")
# the guided tour (window.S2STour), loaded with them
TOUR_JS = (STATIC / "tour.js").read_text(encoding="utf-8")
TOUR_START_JS = "() => { if (window.S2STour) window.S2STour.start(); return []; }"
TOUR_MOVED_JS = "() => { if (window.S2STour) window.S2STour.moved('temperature'); return []; }"

# runs once the view is on the page: keep its element, draw each new payload the server sends
# (a new payload comes with the settings it was decoded with, so earlier slider moves are dropped)
ON_LOAD = LIVE_JS + EXPORT_JS + PHONE_JS + TOUR_JS + """
window.S2SLive.element = element;
window.S2SLive.data = props.value;
window.S2SLive.redraw();
watch('value', () => { window.S2SLive.data = props.value; window.S2SLive.settings = {}; window.S2SLive.redraw(); });
"""

# the sliders whose moves the browser redraws, in the order their values reach the script
LIVE_SETTINGS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
                 "repetition_penalty", "length_penalty")
REDRAW_JS = ("(" + ", ".join(LIVE_SETTINGS) + ") => { if (window.S2SLive) window.S2SLive.redraw({"
             + ", ".join(LIVE_SETTINGS) + "}); return []; }")


def step_payload(trace: dict | None, index: int | None) -> dict | None:
    """The live view's value for step ``index`` of ``trace`` (clamped to its last step);
    None clears the view."""
    if not trace or not trace["steps"]:
        return None
    index = min(max(int(index or 0), 0), len(trace["steps"]) - 1)
    step = trace["steps"][index]
    if step.get("live") is None:
        return {"message": "This translation is too long and wide for the live view: its steps' "
                           "top candidates are in the overview above."}
    return {"step": index, "piece": step["piece"], "live": step["live"],
            "temperatures": trace["live_temperatures"], "settings": trace["settings"],
            "finished": finished_hypotheses(trace) if trace["settings"]["method"] == "beam" else []}


def finished_hypotheses(trace: dict) -> list[dict]:
    """Every hypothesis the beam search finished: text, log-prob and length, from the tree."""
    nodes = {node["id"]: node for node in trace["beam_nodes"]}
    out = []
    for node in trace["beam_nodes"]:
        if node["status"] != "finished":
            continue
        pieces, walk = [], node
        while walk["parent"] >= 0:
            pieces.append(walk["piece"])
            walk = nodes[walk["parent"]]
        text = "".join(reversed(pieces[1:])).replace("\u2581", " ").strip()
        out.append({"text": text, "logprob": node["score"], "length": node["step"] + 1})
    return out
