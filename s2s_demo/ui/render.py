"""Renderers from a trace dict (``Trace.to_dict()``) to what Gradio components show.

All text from the visitor or the model goes into plots HTML-escaped, because Plotly reads
a few tags in labels; Gradio's text components never interpret HTML.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio

# Plotly's default look, without what these 2-D plots never use (3-D scenes, maps, polar and
# ternary axes, default colour scales: every plot sets its own): the default template is 7 KB of
# each ~9 KB figure, sent with every plot and read by Plotly.js on every draw
TEMPLATE = {"layout": {
    key: value for key, value in pio.templates["plotly"].layout.to_plotly_json().items()
    if key in ("autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor", "plot_bgcolor",
               "xaxis", "yaxis", "shapedefaults", "annotationdefaults", "title")}}

STATUS_COLORS = {"kept": "#2563eb", "finished": "#16a34a", "pruned": "#d1d5db"}


def safe(text: str) -> str:
    """Plot-label text: HTML-escaped and with sentencepiece's word marker shown as '▁'."""
    return html.escape(text, quote=False)


def display_piece(piece: str) -> str:
    return piece.replace("▁", " ").strip() or piece


CONFIDENCE_BINS = ((0.9, "≥ 90%"), (0.5, "50–90%"), (0.2, "20–50%"), (0.0, "< 20%"))
FORCED = "forced"
LENGTH_LIMIT = "stopped at the length limit"
UNREADABLE = "<unk>: characters this model cannot read"
CONFIDENCE_COLORS = {"≥ 90%": "#86efac", "50–90%": "#bfdbfe", "20–50%": "#fde68a", "< 20%": "#fca5a5",
                     FORCED: "#c4b5fd", LENGTH_LIMIT: "#d1d5db"}
SOURCE_COLORS = {UNREADABLE: "#fca5a5"}
NEIGHBOUR_TOKEN = "the token chosen from this state"
NEIGHBOUR_COLORS = {NEIGHBOUR_TOKEN: "#fdba74"}


def confidence_label(prob: float) -> str:
    return next(label for low, label in CONFIDENCE_BINS if prob >= low)


def highlighted_tokens(trace: dict, forced_from: int = 0) -> list[tuple[str, str | None]]:
    """(word, category) per output word for gr.HighlightedText. A word is its sub-word pieces
    joined (a piece starting with "▁" starts a word); its colour is the model's probability of
    its least sure piece, or "forced" when a piece of it at step ``forced_from`` or later was
    forced (a what-if forces the earlier steps only to keep the original's prefix: those keep
    their colours). An output the length limit cut ends with a grey chip that says so."""
    words: list[list[dict]] = []
    for step in trace["steps"]:
        if step["piece"] == "</s>":
            continue  # EOS is not part of the text
        if not words or step["piece"].startswith("▁"):
            words.append([])
        words[-1].append(step)
    chips = [(("" if i == 0 else " ") + "".join(s["piece"] for s in word).lstrip("▁"),
              FORCED if any(s["forced"] and s["step"] >= forced_from for s in word)
              else confidence_label(min(s["model_prob"] for s in word)))
             for i, word in enumerate(words)]
    if trace.get("length_capped"):
        chips.append((" …", LENGTH_LIMIT))
    return chips


def source_highlight(trace: dict) -> list[tuple[str, str | None]]:
    """The source text with the characters the model cannot read marked (as runs of
    characters, for gr.HighlightedText, which shows text and never interprets it)."""
    unknown = set((trace.get("familiarity") or {}).get("unknown_characters") or [])
    runs: list[tuple[str, str | None]] = []
    for char in trace["source"]:
        category = UNREADABLE if char in unknown else None
        if runs and runs[-1][1] == category:
            runs[-1] = (runs[-1][0] + char, category)
        else:
            runs.append((char, category))
    return runs


WHATIF_COLUMNS = ["step", "original", "p", "with the forced token", "p ", "attention moved"]


def whatif_diff(original: dict, forced: dict, at: int) -> tuple[pd.DataFrame, str]:
    """The two outputs aligned by step (each token with its model probability, and how much
    of the attention moved: half the L1 distance of the two rows, 0 = the same, 1 = disjoint),
    and a line with the change in log-prob and score. Numbers and model pieces only."""
    rows, moved = [], []
    a, b = original["steps"], forced["steps"]
    for t in range(max(len(a), len(b))):
        x, y = (a[t] if t < len(a) else None), (b[t] if t < len(b) else None)
        shift = None
        if x and y and x["attention"] is not None and y["attention"] is not None:
            shift = round(0.5 * sum(abs(p - q) for p, q in zip(x["attention"], y["attention"])), 3)
            moved.append(shift)
        rows.append([t, display_piece(x["piece"]) if x else "", round(x["model_prob"], 3) if x else None,
                     display_piece(y["piece"]) + (" (forced)" if y["forced"] else "") if y else "",
                     round(y["model_prob"], 3) if y else None, shift])
    old, new = original["hypotheses"][0], forced["hypotheses"][0]
    after = [m for t, m in enumerate(moved) if t > at]
    attention = (f" · after the forced step, attention moved {sum(after) / len(after):.2f} on average"
                 if after else "")
    summary = (f"Forced at step {at}: log-prob {old['logprob']:.3f} → {new['logprob']:.3f}, score "
               f"{old['score']:.3f} → {new['score']:.3f}, {len(old['token_ids'])} → {len(new['token_ids'])} "
               f"tokens{attention}.")
    return pd.DataFrame(rows, columns=WHATIF_COLUMNS), summary


REFERENCE_COLUMNS = ["step", "piece", "p", "rank"]


def reference_tokens(scored: dict) -> list[tuple[str, str | None]]:
    """A scored reference as coloured words (the translation's colours: the least sure piece)."""
    steps = [{"piece": piece, "model_prob": prob, "forced": False}
             for piece, prob in zip(scored["pieces"], scored["probs"])]
    return highlighted_tokens({"steps": steps})


def reference_table(scored: dict) -> pd.DataFrame:
    """One row per reference token: step, piece, model probability, rank at that step."""
    return pd.DataFrame([[t, display_piece(piece), float(f"{prob:.3g}"), rank] for t, (piece, prob, rank)
                         in enumerate(zip(scored["pieces"], scored["probs"], scored["ranks"]))],
                        columns=REFERENCE_COLUMNS)


def reference_summary(scored: dict) -> str:
    """Numbers only (no text the visitor typed): the reference's score against the model's best."""
    first = scored["first_difference"]
    where = ("the model would have written every token of it itself" if first is None else
             f"the model would first have chosen otherwise at step {first} "
             f"(the reference's token there has rank {scored['ranks'][first]})")
    return (f"Reference: log-prob **{scored['logprob']:.3f}**, score **{scored['score']:.3f}** "
            f"({len(scored['pieces'])} tokens) · the model's best: log-prob {scored['best_logprob']:.3f}, "
            f"score {scored['best_score']:.3f} · {where}.")


# one plain sentence: what is wrong, why, and what to expect
UNFAMILIAR_NOTE = ("**This sentence is unlike the photo captions the model learnt from** ({reasons}), so expect a "
                   "fluent but invented translation.")


def familiarity_note(trace: dict) -> str:
    """The warning when the trace's familiarity flags the sentence, else "". The reasons are the
    engine's own words: nothing the visitor typed is in the note."""
    familiarity = trace.get("familiarity") or {}
    if not familiarity.get("unfamiliar"):
        return ""
    return UNFAMILIAR_NOTE.format(reasons="; ".join(familiarity["reasons"]))


NBEST_COLUMNS = ["#", "translation", "score", "log-prob", "tokens"]  # "#": a phone breaks "rank" mid-word


def nbest_table(trace: dict) -> pd.DataFrame:
    rows = [{"#": i + 1, "translation": h["text"], "score": round(h["score"], 4),
             "log-prob": round(h["logprob"], 4), "tokens": len(h["token_ids"])}
            for i, h in enumerate(trace["hypotheses"])]
    return pd.DataFrame(rows, columns=NBEST_COLUMNS)


COMPARE_COLUMNS = ["model", "pair", "translation", "rank in its language", "score", "log-prob", "tokens", "ms"]


def compare_table(rows: list[dict]) -> pd.DataFrame:
    """One row per model of a comparison (see ``blocks.compare_request``); the rank is by
    score among the models that write the same language, "only one" where no other does."""
    by_language = {}
    for r in rows:
        by_language[r["tgt_lang"]] = by_language.get(r["tgt_lang"], 0) + 1
    return pd.DataFrame([[r["model"], r["pair"], r["translation"],
                          f"{r['rank']} of {by_language[r['tgt_lang']]}" if by_language[r["tgt_lang"]] > 1
                          else "only one", round(r["score"], 4), round(r["logprob"], 4), r["tokens"],
                          round(r["search_ms"], 1)] for r in rows], columns=COMPARE_COLUMNS)


def compare_note(rows: list[dict]) -> str:
    """What the comparison can and cannot say, in a line."""
    if len(rows) == 1:
        return (f"Only **{safe(rows[0]['model'])}** reads {safe(rows[0]['pair'].split('→')[0])}: "
                "there is no other model to compare it with.")
    return ("Scores rank models only against others that write the same language: a score is a "
            "log-probability of that language's tokens.")


def step_choices(trace: dict) -> list[tuple[str, int]]:
    return [(f"{s['step']}: {display_piece(s['piece'])}", s["step"]) for s in trace["steps"]]


def step_distribution_plot(trace: dict, step: int) -> go.Figure:
    """Top candidates at one step: the distribution decoding used and the model's softmax."""
    if not trace["steps"]:
        return _empty("No steps to show")
    rec = trace["steps"][max(0, min(step, len(trace["steps"]) - 1))]
    model = {c["token_id"]: c for c in rec["model_top"]}
    used = {c["token_id"]: c for c in rec["top"]}
    ids = list(dict.fromkeys([c["token_id"] for c in rec["model_top"]] + [c["token_id"] for c in rec["top"]]))
    ids.sort(key=lambda i: -(model.get(i) or used.get(i))["prob"])
    labels = [safe(display_piece((model.get(i) or used.get(i))["piece"])) + ("  ◀" if i == rec["token_id"] else "")
              for i in ids]
    model_probs = [model[i]["prob"] if i in model else 0 for i in ids]
    used_probs = [used[i]["prob"] if i in used else 0 for i in ids]
    bars = [_bar(labels, model_probs, "model softmax", "#94a3b8", "model")]
    # greedy and beam search pick from the model's own distribution: a second, equal bar per
    # token would say nothing (it differs only where a constraint or forcing changed the step)
    if any(abs(a - b) > 5e-4 for a, b in zip(model_probs, used_probs)):
        bars.append(_bar(labels, used_probs, "used by decoding", "#2563eb", "used"))
    forced = " (forced)" if rec["forced"] else ""
    cut = rec.get("cut_mass", 0.0)
    # what the sampling filters (and the banned tokens) took away from the model's distribution
    cut_note = f"<br>top-k / top-p and banned tokens removed {100 * cut:.1f}% of the model's probability" \
        if cut >= 0.0005 else ""
    return _figure(bars, {
        "barmode": "group", "height": 360,
        "title": _title(f"Step {rec['step']}: chose “{safe(display_piece(rec['piece']))}”{forced}, "
                        f"p = {rec['model_prob']:.3f}<br>entropy {rec['model_entropy']:.2f} nats{cut_note}"),
        # log scale: alternatives at 0.002 are as visible as the chosen token at 0.8
        "yaxis": {"title": {"text": "probability (log scale)"}, "type": "log", "range": [-4, 0],
                  "tickvals": [1e-4, 1e-3, 1e-2, 0.1, 1], "ticktext": ["0.0001", "0.001", "0.01", "0.1", "1"],
                  "automargin": False},
        # margins fixed, labels turned: Plotly's automatic margins draw the figure twice
        "xaxis": {"tickangle": -45, "automargin": False},
        "margin": {"l": 50, "r": 10, "t": 75, "b": 90},
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"}})


def steps_overview_plot(trace: dict) -> go.Figure:
    """Heat strip over all steps: the chosen token's probability (0..1) and the model's entropy.

    Entropy is shaded from 0 to ln |V| nats, the entropy of a uniform choice over the model's
    target vocabulary (the most a step can have), so a shade means the same thing from one sentence
    to the next, not "the least sure step of this sentence". Hover shows both rows in their own
    units."""
    if not trace["steps"]:
        return _empty("No steps to show")
    pieces = [f"{s['step']}:{safe(display_piece(s['piece']))}" for s in trace["steps"]]
    probs = [s["model_prob"] for s in trace["steps"]]
    entropy = [s["model_entropy"] for s in trace["steps"]]
    vocab = trace["target_vocab_size"]
    max_entropy = math.log(vocab)
    entropy_shade = [min(e / max_entropy, 1.0) for e in entropy]
    strip = _heatmap([probs, entropy_shade], pieces, ["p(chosen)", "entropy"], "Blues", zmin=0, zmax=1,
                     showscale=False, customdata=[probs, entropy],
                     hovertemplate="%{x}<br>%{y}: %{customdata:.3f}<extra></extra>")
    return _figure([strip], {
        "height": 230, "margin": {"l": 70, "r": 10, "t": 50, "b": 80},
        "title": _title(f"All steps: darker = higher<br>entropy from 0 to ln {vocab:,} = {max_entropy:.1f} nats"),
        # margins fixed: Plotly's automatic margins draw the figure twice
        "xaxis": {"tickangle": -45, "automargin": False}, "yaxis": {"automargin": False}})


def attention_plot(trace: dict) -> go.Figure:
    """Source pieces (x) by target pieces (y); hover shows each weight."""
    rows = [s["attention"] for s in trace["steps"] if s["attention"] is not None]
    if not rows:
        return _empty("This model has no attention (plain encoder-decoder)")
    src = [f"{i}:{safe(p)}" for i, p in enumerate(trace["source_pieces"])]
    tgt = [f"{s['step']}:{safe(s['piece'])}" for s in trace["steps"]]
    heat = _heatmap(rows, src, tgt, "Viridis", zmin=0, zmax=1,
                    hovertemplate="source %{x}<br>target %{y}<br>weight %{z:.3f}<extra></extra>")
    return _figure([heat], _pieces_layout("Attention", src, tgt))


ATTRIBUTION_LABELS = {"integrated_gradients": "integrated gradients", "input_x_gradient": "input × gradient"}


def attribution_plot(attributed: dict, method: str) -> go.Figure:
    """Source pieces (x) by target pieces (y), as the attention plot: each token's attribution
    to each source piece by ``method``, red for pieces that raise its log-prob, blue for those
    that lower it, on a scale symmetric around 0."""
    rows = attributed[method]
    src = [f"{i}:{safe(p)}" for i, p in enumerate(attributed["source_pieces"])]
    tgt = [f"{i}:{safe(p)}" for i, p in enumerate(attributed["target_pieces"])]
    largest = max((abs(v) for row in rows for v in row), default=0.0) or 1.0
    heat = _heatmap(rows, src, tgt, "RdBu", reversescale=True, zmid=0, zmin=-largest, zmax=largest,
                    hovertemplate="source %{x}<br>target %{y}<br>attribution %{z:.3f}<extra></extra>")
    return _figure([heat], _pieces_layout(f"Attribution: {ATTRIBUTION_LABELS[method]}", src, tgt))


def _pieces_layout(title: str, src: list[str], tgt: list[str]) -> dict:
    """Source pieces across, target pieces down, every piece labelled (Plotly thins category
    ticks on a narrow screen)."""
    return {"title": {"text": title}, "height": max(320, 24 * len(tgt) + 120),
            "yaxis": {"autorange": "reversed", "tickmode": "array", "tickvals": tgt},
            "xaxis": {"tickangle": -45, "tickmode": "array", "tickvals": src},
            "margin": {"l": 90, "r": 10, "t": 40, "b": 90}}


def attribution_summary(attributed: dict) -> str:
    """How the attribution was computed, how often each method's top piece is attention's,
    and integrated gradients' completeness."""
    agree = attributed["agreement"]
    if agree["integrated_gradients"] is None:
        agreement = "This model has no attention to compare with."
    else:
        agreement = "Top source piece (largest |attribution|) = attention's top piece for " + ", ".join(
            f"{100 * agree[m]:.0f}% of tokens ({ATTRIBUTION_LABELS[m]})" for m in ATTRIBUTION_LABELS) + "."
    gap = attributed["completeness"]["max_relative_gap"]
    return (f"Gradients of each token's log-prob with respect to the source embeddings, summed per piece. "
            f"Integrated gradients: {attributed['steps']} steps from a baseline of {attributed['baseline']}; "
            f"its sums match the change in log-prob within {100 * gap:.1f}%. {agreement} "
            f"Computed in {attributed['ms']:.0f} ms.")


NEIGHBOUR_COLUMNS = ["sim.", "training source", "training target"]  # short: a phone breaks long headers


def neighbour_table(nearest: dict) -> pd.DataFrame:
    """The training pairs nearest to the sentence, most similar first."""
    return pd.DataFrame([[round(row["similarity"], 3), row["source"], row["target"]] for row in nearest["sentences"]],
                        columns=NEIGHBOUR_COLUMNS)


def _text(pieces: list[str]) -> str:
    return "".join(p for p in pieces if p != "</s>").replace("▁", " ")


def step_neighbours(nearest: dict, step: int) -> list[tuple[str, str | None]]:
    """The training sentences whose decoder state was nearest to the translation's at ``step``,
    one a line (similarity first), the token chosen from that state marked."""
    spans = []
    for example in nearest["steps"][step]:
        pieces, at = example["pieces"], example["position"]
        spans += [(f"{example['similarity']:.3f}  " + _text(pieces[:at]), None),
                  (pieces[at].replace("▁", " "), NEIGHBOUR_TOKEN), (_text(pieces[at + 1:]) + "\n", None)]
    return spans


def neighbours_summary(nearest: dict) -> str:
    """How near the translation is to the training data, in words."""
    sim = nearest["similarity"]
    verdict = ("**Far from the training data.**" if sim["far"] else "Within what validation sentences reach.")
    states = "" if sim["states"] is None else (f"; its decoder states, {sim['states']:.3f} on average to the "
                                               f"nearest training state (floor {sim['state_floor']:.3f})")
    return (f"{verdict} Nearest training caption: similarity {sim['sentence']:.2f} (99% of validation sentences "
            f"have one above {sim['sentence_floor']:.2f}){states}. Found in {nearest['ms']:.0f} ms.")


def neighbour_step_choices(nearest: dict) -> list[tuple[str, int]]:
    return [(f"{t}: {display_piece(p)}", t) for t, p in enumerate(nearest["target_pieces"])]


def trajectory_plot(nearest: dict, step: int | None = None) -> go.Figure:
    """The translation's decoder states as a path in the training states' first two principal
    components, over a sample of training states; each step's nearest training states drawn
    small, the chosen ``step``'s large."""
    path = nearest["trajectory"]
    background = path["background"]
    near = [(p, t) for t, points in enumerate(path["neighbours"]) for p in points]
    labels = [f"{t}:{safe(display_piece(p))}" for t, p in enumerate(nearest["target_pieces"])]
    traces = [
        {"type": "scatter", "x": [p[0] for p in background], "y": [p[1] for p in background], "mode": "markers",
         "marker": {"size": 3, "color": "#d1d5db"}, "name": "training states", "hoverinfo": "skip"},
        {"type": "scatter", "x": [p[0] for p, _ in near], "y": [p[1] for p, _ in near], "mode": "markers",
         "marker": {"size": [9 if t == step else 4 for _, t in near],
                    "color": ["#f97316" if t == step else "#fdba74" for _, t in near]},
         "name": "nearest training states", "customdata": [t for _, t in near],
         "hovertemplate": "nearest to step %{customdata}<extra></extra>"},
        {"type": "scatter", "x": [p[0] for p in path["path"]], "y": [p[1] for p in path["path"]],
         "mode": "lines+markers+text", "text": labels, "textposition": "top center", "line": {"color": "#2563eb"},
         "marker": {"size": 7, "color": "#2563eb"}, "name": "this translation",
         "hovertemplate": "step %{text}<extra></extra>"}]
    return _figure(traces, {
        "title": _title("Decoder states, in the training states' first two principal components"),
        "height": 520, "legend": {"orientation": "h", "y": -0.12}, "xaxis": {"title": {"text": "PC 1"}},
        "yaxis": {"title": {"text": "PC 2"}}, "margin": {"l": 40, "r": 10, "t": 50, "b": 40}})


def beam_tree_plot(trace: dict) -> go.Figure:
    """The search tree: x = step (the Step selector's numbers; the start ``<s>`` at -1), the
    nodes of each step stacked kept and finished first, then pruned, each group by score;
    kept branches blue, finished green, pruned grey; the best hypothesis (the search's own
    ``best_path``) drawn thick."""
    nodes = trace["beam_nodes"]
    if len(nodes) <= 1:
        return _empty("No search tree")
    by_id = {n["id"]: n for n in nodes}
    y = {0: 0.0}
    for step in sorted({n["step"] for n in nodes if n["step"] >= 0}):
        layer = sorted((n for n in nodes if n["step"] == step), key=_layer_order)
        for rank, node in enumerate(layer):
            y[node["id"]] = -rank
    best_path = [i for i in trace.get("best_path", []) if i in by_id]
    settings = trace.get("settings") or {}
    width = settings.get("beam_size", 1) if settings.get("method") == "beam" else 1
    # a wide beam prunes dozens of candidates a step: they start folded away (the legend unfolds them)
    folded = width >= WIDE_BEAM
    pruned_shown = "legendonly" if folded else True
    traces = []
    for status in ("pruned", "kept", "finished"):
        xs, ys = [], []
        for n in nodes[1:]:
            if n["status"] == status:
                xs += [by_id[n["parent"]]["step"], n["step"], None]
                ys += [y[n["parent"]], y[n["id"]], None]
        traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "hoverinfo": "skip",
                       "line": {"color": STATUS_COLORS[status], "width": 1}, "showlegend": False,
                       "legendgroup": status, "visible": pruned_shown if status == "pruned" else True})
    if best_path:
        traces.append({"type": "scatter", "x": [by_id[i]["step"] for i in best_path], "y": [y[i] for i in best_path],
                       "mode": "lines", "line": {"color": "#f59e0b", "width": 4}, "name": "best", "hoverinfo": "skip"})
    for status in ("pruned", "kept", "finished"):
        group = [n for n in nodes if n["status"] == status]
        traces.append({
            "type": "scatter", "x": [n["step"] for n in group], "y": [y[n["id"]] for n in group], "name": status,
            "legendgroup": status, "visible": pruned_shown if status == "pruned" else True,
            "mode": "markers+text" if status != "pruned" else "markers",
            "text": [safe(display_piece(n["piece"])) for n in group], "textposition": "top center",
            "textfont": {"size": 10},
            "marker": {"color": STATUS_COLORS[status], "size": 8 if status != "pruned" else 5},
            # JSON has no -inf: a score the trace could not hold is None
            "customdata": [[safe(n["piece"]), n["score"] if n["score"] is not None else None] for n in group],
            "hovertemplate": "%{customdata[0]}<br>log-prob %{customdata[1]:.3f}<extra>" + status + "</extra>"})
    last = max(n["step"] for n in nodes)
    title = {"beam": f"Beam search tree ({width} beams)", "sample": "Samples: the drawn token and its rivals",
             "greedy": "Greedy search: the top token and its rivals"}.get(settings.get("method"), "Search tree")
    fold = " · pruned folded away: click 'pruned' to unfold" if folded else ""
    return _figure(traces, {
        "title": _title(f"{title}<br>x: step · y: kept first, by score{fold}"),
        "height": max(460, 60 + 28 * min(width, 16)),
        "xaxis": {"title": {"text": "step"}, "range": [-1.5, last + 0.5], "dtick": 1},
        "yaxis": {"showticklabels": False}, "margin": {"l": 10, "r": 10, "t": 40, "b": 40}})


WIDE_BEAM = 8  # from this beam size on, the tree starts with its pruned branches folded away


def _layer_order(node: dict) -> tuple[bool, float]:
    """Kept and finished nodes above pruned ones, each group best score first (a score the
    JSON could not hold, -inf, last)."""
    score = node["score"] if node["score"] is not None else -math.inf
    return node["status"] == "pruned", -score


QUANTITY_LABELS = {"input_gate": "input gate", "forget_gate": "forget gate", "output_gate": "output gate",
                   "cell": "cell state", "hidden": "hidden state"}
UNIT_ORDERS = ("by variance over the sentence", "by unit number")


def lstm_plot(trace: dict, internals: dict, quantity: str, layer: int, order: str = UNIT_ORDERS[0]) -> go.Figure:
    """Units x steps heatmap of one decoder quantity and layer; units ordered by how much they
    vary over the sentence (where the structure is) or by number."""
    values = internals["decoder"][layer][quantity]  # (T, H)
    units = list(range(len(values[0])))
    if order == UNIT_ORDERS[0]:
        def variance(u):
            column = [row[u] for row in values]
            mean = sum(column) / len(column)
            return sum((v - mean) ** 2 for v in column)
        units.sort(key=variance, reverse=True)
    steps = [f"{s['step']}:{safe(display_piece(s['piece']))}" for s in trace["steps"]]
    gate = quantity.endswith("gate")
    scale = dict(zmin=0, zmax=1) if gate else dict(zmid=0)
    heat = _heatmap([[row[u] for row in values] for u in units], steps, [f"unit {u}" for u in units],
                    "Viridis" if gate else "RdBu", hovertemplate="%{y}<br>step %{x}<br>value %{z:.3f}<extra></extra>",
                    **scale)
    return _figure([heat], {
        "title": _title(f"Decoder layer {layer + 1}: {QUANTITY_LABELS[quantity]}<br>units ({order})"),
        "height": max(360, min(1200, 3 * len(units) + 140)),
        # the first unit of the order on top
        "yaxis": {"showticklabels": False, "autorange": "reversed"}, "xaxis": {"tickangle": -45},
        "margin": {"l": 10, "r": 10, "t": 60, "b": 90}})


def bridge_plot(internals: dict, layer: int) -> go.Figure:
    """The bridge of one layer: the encoder's final forward and backward states, concatenated,
    become the decoder's initial state through tanh(W [forward; backward] + b)."""
    bridge = internals["bridge"][layer]
    rows = [("encoder forward, last piece", bridge["forward_final"]),
            ("encoder backward, first piece", bridge["backward_final"]),
            ("[forward; backward]", bridge["concatenated"]), ("decoder initial h", bridge["decoder_h0"]),
            ("decoder initial c", bridge["decoder_c0"])]
    width = max(len(values) for _, values in rows)
    heat = _heatmap([values + [None] * (width - len(values)) for _, values in rows], None,
                    [name for name, _ in rows], "RdBu", zmid=0,
                    hovertemplate="%{y}<br>unit %{x}<br>%{z:.3f}<extra></extra>")
    return _figure([heat], {
        "title": _title(f"The bridge, layer {layer + 1}: encoder's final states → decoder's first state"),
        "height": 300, "yaxis": {"autorange": "reversed"}, "margin": {"l": 190, "r": 10, "t": 50, "b": 40},
        "xaxis": {"title": {"text": "unit"}}})


def placeholder_plot(message: str) -> go.Figure:
    """A small figure with a message, for a plot with nothing to show yet."""
    return _empty(message)


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain Plotly specs (traces and layout as dicts), in ``TEMPLATE``.

    plotly.py does not validate them: validation cost 8-13 ms a figure, ~15% of a click's time on
    the server; tests/test_render.py validates every figure the page draws instead."""
    return go.Figure({"data": data, "layout": {"template": TEMPLATE, **layout}}, _validate=False)


def _heatmap(z, x, y, colorscale: str, **spec) -> dict:
    """A heatmap trace; ``colorscale`` by plotly.py's name (Plotly.js has other scales of the same names)."""
    trace = {"type": "heatmap", "z": z, "y": y, "colorscale": plotly.colors.get_colorscale(colorscale), **spec}
    if x is not None:
        trace["x"] = x
    return trace


def _bar(x: list[str], y: list[float], name: str, color: str, short: str) -> dict:
    return {"type": "bar", "x": x, "y": y, "name": name, "marker": {"color": color},
            "hovertemplate": "%{x}<br>p = %{y:.4f}<extra>" + short + "</extra>"}


def _title(text: str) -> dict:
    """A plot title in short lines (``<br>``) and small type: a phone's 390 px must not clip it."""
    return {"text": text, "font": {"size": 13}}


def _empty(message: str) -> go.Figure:
    return _figure([], {"height": 200, "xaxis": {"visible": False}, "yaxis": {"visible": False},
                        "annotations": [{"text": safe(message), "showarrow": False, "x": 0.5, "y": 0.5,
                                         "xref": "paper", "yref": "paper"}]})
