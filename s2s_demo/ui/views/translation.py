"""The translation and what sits around it: the words coloured by confidence, the n-best list,
the status line, the familiarity note, the source's unreadable characters and the share link."""

from __future__ import annotations

import json

import gradio as gr

from .. import links, render


def view(trace: dict | None, page_url: str = "") -> dict:
    """Updates of translation, nbest, status, familiarity, unreadable, share and original (the
    what-if panel's copy of the translation); ``page_url``: the page's address, for the link."""
    if not trace:
        return {"translation": None, "nbest": None, "status": "", "familiarity": note(""),
                "unreadable": gr.update(value=None, visible=False), "share": "", "original": None}
    return {"translation": chips(render.highlighted_tokens(trace)), "nbest": render.nbest_table(trace),
            "status": status_line(trace), "familiarity": note(render.familiarity_note(trace)),
            "unreadable": unreadable_source(trace), "share": share_link(trace, page_url),
            "original": trace["translation"]}


def chips(words: list[tuple[str, str | None]]):
    """A coloured-words update whose legend lists only the kinds the words have."""
    present = {kind for _, kind in words}
    return gr.update(value=words, color_map={k: v for k, v in render.CONFIDENCE_COLORS.items() if k in present})


def share_link(trace: dict, page_url: str) -> str:
    """The address that reproduces ``trace`` on the page at ``page_url`` (``s2s_demo.ui.links``)."""
    return f"{page_url.split('?')[0]}?{links.link_query(trace)}"


def page_url(request: gr.Request) -> str:
    """The page's own address: an event's request is the queue's, its Referer the page."""
    return request.headers.get("referer") or str(request.url)


def raw_json(trace: dict) -> str:
    return json.dumps(trace, ensure_ascii=False, indent=1)


def unreadable_source(trace: dict):
    """The source with its unreadable characters marked, shown only when it has some."""
    has_unknown = bool((trace.get("familiarity") or {}).get("unknown_characters"))
    return gr.update(value=render.source_highlight(trace) if has_unknown else None, visible=has_unknown)


def note(text: str):
    """A Markdown update that shows ``text``, or hides the box when it is empty."""
    return gr.update(value=text, visible=bool(text))


def length_cap_text(trace: dict) -> str:
    """The cap that ended the output, in words: the source-length rule or the Max length setting."""
    s = trace["settings"]
    source = len(trace["source_pieces"])
    by_source = int(source * s["max_length_ratio"] + 10)
    if by_source <= s["max_length"]:
        return (f"at most {s['max_length_ratio']:g} × {source} source pieces + 10 = {by_source} tokens "
                "(the model would have written more)")
    return f"at most {s['max_length']} tokens (the Max length setting: raise it)"


def status_line(trace: dict) -> str:
    s = trace["settings"]
    method = f"beam {s['beam_size']}" if s["method"] == "beam" else s["method"]
    arithmetic = trace.get("arithmetic", "float32")
    dtype = f" · {arithmetic} matmuls" if arithmetic != "float32" else ""
    # a sample is reproducible with its seed, also when the visitor left the seed empty
    seed = f" · seed {trace['seed']}" if s["method"] == "sample" and trace.get("seed") is not None else ""
    capped = f" · **cut short by the length cap**: {length_cap_text(trace)}" if trace.get("length_capped") else ""
    return (f"{trace['model']} · {method} · {len(trace['steps'])} steps · "
            f"{trace['timings_ms']['search_ms']:.0f} ms{dtype}{seed}{capped}")
