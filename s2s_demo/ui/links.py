"""Shareable links: the page's state in its URL's query, and back.

``?model=en-de&text=...&method=beam&beam_size=5&...&forced=17,305``: the model, the text, the
decoding controls (the names of ``Request``) and the forced target tokens (ids), if any. Opening
such a link fills the controls and translates with those tokens forced.
"""

from __future__ import annotations

from urllib.parse import urlencode

from ..settings import MAX_BEAM_SIZE, DecodeSettings, SettingsError
from ..translator import MAX_CHARS
from .request import CONTROLS, same_request

MAX_FORCED = 512  # no output is longer (settings.BOUNDS["max_length"])


def link_query(trace: dict) -> str:
    """The query string that reproduces ``trace`` (its sample's seed included)."""
    request = same_request(trace, None)
    values = {name: getattr(request, name) for name in ("model", "text", *CONTROLS)}
    if request.method != "sample" or request.seed is None:
        del values["seed"]  # a beam or greedy search has none; a fresh sample's is in the trace
    forced = trace["settings"].get("forced_prefix") or []
    if forced:
        values["forced"] = ",".join(str(token) for token in forced)
    return urlencode(values)


def read_query(params: dict, models: list[str]) -> dict:
    """The link's values that are valid (``DecodeSettings``' own checks), by field name; a
    value that is not is left out, so a broken link opens the page with its defaults."""
    values = {}
    if params.get("model") in models:
        values["model"] = params["model"]
    text = params.get("text")
    if isinstance(text, str) and 0 < len(text) <= MAX_CHARS:
        values["text"] = text
    for name in CONTROLS:
        if name not in params:
            continue
        raw = params[name]
        value = raw if name == "method" else _number(raw)
        try:
            # n_best is checked against the largest beam; the page's own check does the rest
            DecodeSettings(**{name: value}, **({"beam_size": MAX_BEAM_SIZE} if name == "n_best" else {}))
        except (SettingsError, TypeError):
            continue
        values[name] = value
    forced = _token_ids(params.get("forced", ""))
    if forced:
        values["forced_prefix"] = forced
    return values


def _token_ids(text: str) -> list[int] | None:
    """"17,305" -> [17, 305]; None unless every item is a non-negative integer (the model's own
    check, when the link translates, refuses ids outside its vocabulary)."""
    items = text.split(",") if isinstance(text, str) and text else []
    if not items or len(items) > MAX_FORCED or not all(item.strip().isdigit() for item in items):
        return None
    return [int(item) for item in items]


def _number(text: str):
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number
