// The step chart that answers while a slider moves: sampling's chain redone in the browser from
// a trace step's live payload (s2s_demo/live.py), with no request to the server.
//
// The chain is Hugging Face's, in its order, as s2s_demo/processors.py runs it: repetition
// penalty, temperature, top-k, top-p, min-p, typical-p, epsilon cutoff, eta cutoff, then
// renormalisation; every cut keeps the most likely token. The carried tokens (the top N, the
// earlier tokens, the chosen one) are computed one by one; the rest of the vocabulary is one
// aggregate whose log-sum-exp the payload gives at a few temperatures. Figures are exact when
// the temperature is one of those and no cut splits the rest; otherwise `exact` is false and
// `bound` is the most any shown probability can be off.
(function () {
  "use strict";
  const NEG_INF = -Infinity;

  function logSumExp(values) {
    let max = NEG_INF;
    for (const v of values) if (v > max) max = v;
    if (max === NEG_INF) return NEG_INF;
    let sum = 0;
    for (const v of values) sum += Math.exp(v - max);
    return max + Math.log(sum);
  }

  // The rest's log-sum-exp of score / T and its weighted mean of score / T at temperature T:
  // exact on the payload's grid; between two grid points the chord (an upper bound, the
  // function being convex in 1/T) and the tangents (lower bounds) bracket it.
  function restAt(rest, temperatures, T) {
    if (!rest.count) return { lse: NEG_INF, low: NEG_INF, high: NEG_INF, mean: 0, exact: true };
    const i = temperatures.findIndex((g) => Math.abs(g - T) < 1e-9);
    if (i >= 0) return { lse: rest.lse[i], low: rest.lse[i], high: rest.lse[i], mean: rest.mean[i], exact: true };
    let hi = temperatures.findIndex((g) => g > T);
    if (hi <= 0) hi = hi === 0 ? 1 : temperatures.length - 1;
    const lo = hi - 1;
    const u = 1 / T, u0 = 1 / temperatures[lo], u1 = 1 / temperatures[hi];
    const f0 = rest.lse[lo], f1 = rest.lse[hi];
    const m0 = rest.mean[lo] / u0, m1 = rest.mean[hi] / u1; // slopes d lse / d(1/T)
    const w = (u - u0) / (u1 - u0);
    const high = f0 + w * (f1 - f0);
    const low = Math.min(high, Math.max(f0 + m0 * (u - u0), f1 + m1 * (u - u1)));
    const meanScore = m0 + w * (m1 - m0);
    return { lse: (low + high) / 2, low, high, mean: meanScore * u, exact: false };
  }

  // payload: a trace step's `live`; temperatures: the trace's `live_temperatures`;
  // s: {repetition_penalty, temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff, eta_cutoff}.
  // Returns per carried token its probability in the model's distribution (after the
  // constraints), after penalty and temperature, and at the end (0 if cut, with `cutBy`), the
  // same for the rest, and whether the figures are exact (else `bound`).
  function chain(payload, temperatures, s) {
    const kept = run(payload, temperatures, s, "all");
    if (!kept.split) return kept;
    // a cut split the rest: the figures assume it kept the rest whole. The truth lies between
    // that and the rest cut whole, unless a later cut read the normaliser (top-p, typical-p,
    // epsilon, eta): its boundary may then fall elsewhere, and nothing is bounded
    const cut = run(payload, temperatures, s, "none");
    let gap = Math.abs(kept.restFinal - cut.restFinal);
    kept.final.forEach((p, i) => { gap = Math.max(gap, Math.abs(p - cut.final[i])); });
    kept.exact = false;
    kept.bound = kept.unbounded ? 1 : kept.bound + gap;
    return kept;
  }

  // one pass of the chain; where a cut would split the rest, the rest becomes `splitAs`
  function run(payload, temperatures, s, splitAs) {
    const n = payload.ids.length;
    // JSON has no infinities: the trace sends a banned token's -inf score as null
    const base = payload.scores.map((v) => (v === null ? NEG_INF : v));
    const rest = payload.rest;
    const baseRest = restAt(rest, temperatures, 1.0);
    const lseModel = logSumExp(base.concat([baseRest.lse]));
    const state = {
      x: base.slice(), alive: new Array(n).fill(true), cutBy: new Array(n).fill(null),
      restState: rest.count ? "all" : "none", restCutBy: null, exact: true, bound: 0, split: false, splitAs,
      unbounded: false,
    };
    const penalty = s.repetition_penalty ?? 1.0;
    if (penalty !== 1.0) {
      const previous = new Set(payload.previous);
      for (let i = 0; i < n; i++) {
        if (previous.has(payload.ids[i])) state.x[i] = state.x[i] < 0 ? state.x[i] * penalty : state.x[i] / penalty;
      }
    }
    const T = s.temperature ?? 1.0;
    for (let i = 0; i < n; i++) state.x[i] /= T;
    const r = restAt(rest, temperatures, T);
    state.rest = { lse: r.lse, max: rest.max / T, min: rest.min / T, mean: r.mean };
    if (!r.exact && rest.count) {
      // the normaliser is known to within [e^low, e^high] for the rest's part
      const carried = logSumExp(state.x);
      const zLow = logSumExp([carried, r.low]), zHigh = logSumExp([carried, r.high]);
      state.exact = false;
      state.bound += 1 - Math.exp(zLow - zHigh);
    }
    const afterTemperature = distribution(state);
    cutTopK(state, s.top_k ?? 0);
    cutTopP(state, s.top_p ?? 1.0);
    if ((s.min_p ?? 0) > 0) cutBelow(state, "min-p", (st) => maxScore(st) + Math.log(s.min_p));
    if ((s.typical_p ?? 1.0) < 1.0) cutTypical(state, s.typical_p);
    if (state.split && ((s.epsilon_cutoff ?? 0) > 0 || (s.eta_cutoff ?? 0) > 0)) state.unbounded = true;
    if ((s.epsilon_cutoff ?? 0) > 0) cutBelow(state, "epsilon", (st) => normaliser(st) + Math.log(s.epsilon_cutoff));
    if ((s.eta_cutoff ?? 0) > 0) {
      cutBelow(state, "eta", (st) => {
        const eta = Math.min(s.eta_cutoff, Math.sqrt(s.eta_cutoff) * Math.exp(-entropy(st)));
        return normaliser(st) + Math.log(eta);
      });
    }
    const final = distribution(state);
    return {
      ids: payload.ids, model: base.map((v) => Math.exp(v - lseModel)),
      restModel: rest.count ? Math.exp(baseRest.lse - lseModel) : 0,
      tempered: afterTemperature.probs, restTempered: afterTemperature.rest,
      final: final.probs, restFinal: final.rest, cutBy: state.cutBy, restCutBy: state.restCutBy,
      restState: state.restState, exact: state.exact, bound: state.bound, split: state.split,
      unbounded: state.unbounded,
    };
  }

  function aliveScores(st) {
    const out = [];
    for (let i = 0; i < st.x.length; i++) if (st.alive[i]) out.push(st.x[i]);
    if (st.restState !== "none") out.push(st.rest.lse);
    return out;
  }
  function normaliser(st) { return logSumExp(aliveScores(st)); }
  function maxScore(st) {
    let m = st.restState !== "none" ? st.rest.max : NEG_INF;
    for (let i = 0; i < st.x.length; i++) if (st.alive[i] && st.x[i] > m) m = st.x[i];
    return m;
  }
  function distribution(st) {
    const z = normaliser(st);
    return {
      probs: st.x.map((v, i) => (st.alive[i] ? Math.exp(v - z) : 0)),
      rest: st.restState !== "none" ? Math.exp(st.rest.lse - z) : 0,
    };
  }
  // entropy of the current distribution (nats); the rest's part from its weighted mean
  function entropy(st) {
    const z = normaliser(st);
    let h = 0;
    for (let i = 0; i < st.x.length; i++) {
      if (st.alive[i]) { const lp = st.x[i] - z; h -= Math.exp(lp) * lp; }
    }
    if (st.restState !== "none") {
      const mass = Math.exp(st.rest.lse - z);
      h -= mass * (st.rest.mean - z);
    }
    return h;
  }
  function cut(st, i, name) { st.alive[i] = false; st.cutBy[i] = name; }
  // the index of the most likely alive carried token: no cut removes it
  function topIndex(st) {
    let best = -1;
    for (let i = 0; i < st.x.length; i++) if (st.alive[i] && (best < 0 || st.x[i] > st.x[best])) best = i;
    return best;
  }
  function restVersus(st, threshold, name) {
    // remove the rest where it all lies below the threshold; keep it where it all lies above
    if (st.restState === "none") return;
    if (st.rest.max < threshold) { st.restState = "none"; st.restCutBy = name; }
    else if (st.rest.min < threshold) split(st, name);
  }
  // a cut that keeps part of the rest: which part, the payload cannot say
  function split(st, name) {
    if (st.restState === "none") return;
    st.split = true;
    st.restState = st.splitAs;
    if (st.splitAs === "none") st.restCutBy = name;
  }
  function cutBelow(st, name, thresholdOf) {
    const threshold = thresholdOf(st);
    const keep = topIndex(st);
    for (let i = 0; i < st.x.length; i++) if (st.alive[i] && i !== keep && st.x[i] < threshold) cut(st, i, name);
    restVersus(st, threshold, name);
  }
  function cutTopK(st, k) {
    if (!k) return;
    const alive = st.x.filter((_, i) => st.alive[i]).sort((a, b) => b - a);
    const restCount = st.restState === "none" ? 0 : st.rest.count;
    if (k >= alive.length + restCount) return;
    const above = st.restState === "none" ? alive.length : alive.filter((v) => v >= st.rest.max).length;
    if (k <= above) {
      const kth = alive[k - 1];
      for (let i = 0; i < st.x.length; i++) if (st.alive[i] && st.x[i] < kth) cut(st, i, "top-k");
      restVersus(st, kth, "top-k");
    } else {
      split(st, "top-k");
    }
  }
  function cutTopP(st, p) {
    if (p >= 1.0) return;
    if (st.split) st.unbounded = true;
    const z = normaliser(st);
    const order = [...st.x.keys()].filter((i) => st.alive[i]).sort((a, b) => st.x[b] - st.x[a]);
    let before = 0, restDone = st.restState === "none";
    for (const i of order) {
      if (!restDone && st.x[i] < st.rest.max) {
        // the rest's tokens interleave from here: only a cut already reached is certain
        if (before >= p) { st.restState = "none"; st.restCutBy = "top-p"; } else split(st, "top-p");
        restDone = true;
      }
      if (before >= p) cut(st, i, "top-p");
      before += Math.exp(st.x[i] - z);
    }
    if (!restDone) {
      if (before >= p) { st.restState = "none"; st.restCutBy = "top-p"; } else split(st, "top-p");
    }
  }
  function cutTypical(st, mass) {
    if (st.split) st.unbounded = true;
    const z = normaliser(st);
    const h = entropy(st);
    const shift = (score) => Math.abs(-(score - z) - h);
    const order = [...st.x.keys()].filter((i) => st.alive[i]).sort((a, b) => shift(st.x[a]) - shift(st.x[b]));
    // the rest's surprisals lie between those of its highest and lowest score
    let restNearest = Infinity;
    if (st.restState !== "none") {
      const lo = -(st.rest.max - z), hi = -(st.rest.min - z);
      restNearest = h < lo ? lo - h : h > hi ? h - hi : 0;
    }
    let cumulative = 0, lastShift = null, certain = true;
    for (const i of order) {
      if (shift(st.x[i]) > restNearest && lastShift === null) certain = false;
      cumulative += Math.exp(st.x[i] - z);
      if (cumulative >= mass) { lastShift = shift(st.x[i]); break; }
    }
    if (lastShift === null) lastShift = order.length ? shift(st.x[order[order.length - 1]]) : 0;
    const keep = order[0];
    for (const i of order) if (i !== keep && shift(st.x[i]) > lastShift) cut(st, i, "typical-p");
    if (st.restState !== "none") {
      if (certain && restNearest > lastShift) { st.restState = "none"; st.restCutBy = "typical-p"; }
      else split(st, "typical-p");
    }
  }

  // ---------------------------------------------------------------- drawing
  const ROWS = 12;
  function escapeText(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function pieceLabel(piece) { return piece == null ? "?" : piece.replace(/\u2581/g, "␣"); }
  function pct(p) { return p >= 0.0995 ? (100 * p).toFixed(0) + "%" : p >= 0.000995 ? (100 * p).toFixed(1) + "%" : p > 0 ? "<0.1%" : "0"; }

  function render(element, data, settings) {
    const box = element.querySelector(".s2s-live") || element;
    if (!data || !data.live) {
      box.innerHTML = `<p class="s2s-live-empty">${escapeText(data && data.message ? data.message : "Translate a sentence to see the distribution at each step.")}</p>`;
      return null;
    }
    const s = Object.assign({}, data.settings, settings || {});
    const sampling = s.method === "sample";
    const result = chain(data.live, data.temperatures, sampling ? s : {});
    const order = [...result.ids.keys()].sort((a, b) => result.tempered[b] - result.tempered[a]);
    let shown = order.slice(0, ROWS);
    const chosen = result.ids.indexOf(data.live.chosen);
    if (chosen >= 0 && !shown.includes(chosen)) shown.push(chosen);
    const pieces = data.live.pieces || {};
    const top = Math.max(...shown.map((i) => Math.max(result.model[i], result.tempered[i], result.final[i])), result.restTempered, 1e-9);
    const bar = (p, cls) => `<span class="bar ${cls}" style="width:${(100 * p / top).toFixed(2)}%"></span>`;
    const rows = shown.map((i) => {
      const mark = i === chosen ? ' class="chosen"' : "";
      const cutNote = result.cutBy[i] ? `<span class="cut">cut by ${result.cutBy[i]}</span>` : pct(result.final[i]);
      return `<tr${mark}><td class="piece">${escapeText(pieceLabel(pieces[String(result.ids[i])]))}${i === chosen ? ' <b title="the token written at this step">◀ chosen</b>' : ""}</td>` +
        `<td class="bars">${bar(result.model[i], "model")}${sampling ? bar(result.tempered[i], "tempered") : ""}${bar(result.final[i], "final")}</td>` +
        `<td class="num">${pct(result.model[i])}</td><td class="num">${cutNote}</td></tr>`;
    });
    const restCount = data.live.rest.count + result.ids.length - shown.length;
    const restModel = result.restModel + shown.reduce((a, i) => a - result.model[i], result.model.reduce((a, b) => a + b, 0));
    const restFinal = result.restFinal + result.final.reduce((a, b) => a + b, 0) - shown.reduce((a, i) => a + result.final[i], 0);
    const restTempered = result.restTempered + result.tempered.reduce((a, b) => a + b, 0) - shown.reduce((a, i) => a + result.tempered[i], 0);
    rows.push(`<tr class="rest"><td class="piece">rest of the vocabulary (${restCount.toLocaleString("en")} tokens)</td>` +
      `<td class="bars">${bar(restModel, "model")}${sampling ? bar(restTempered, "tempered") : ""}${bar(restFinal, "final")}</td>` +
      `<td class="num">${pct(restModel)}</td><td class="num">${pct(restFinal)}</td></tr>`);
    const accuracy = result.exact ? "exact" : result.bound >= 1
      ? "approximate: a cut split the rest of the vocabulary, which the page does not hold token by token"
      : `approximate: each probability within ±${pct(result.bound)}`;
    const legend = sampling
      ? '<span class="key model"></span> the model · <span class="key tempered"></span> after penalty and temperature · <span class="key final"></span> sampled from (after every cut, renormalised)'
      : '<span class="key model"></span> the model · <span class="key final"></span> what the method chose from';
    box.innerHTML = `<div class="s2s-live-head">Step ${data.step}: ${escapeText(pieceLabel(data.piece))} · ${accuracy}</div>` +
      `<div class="s2s-live-legend">${legend}</div>` +
      `<table><thead><tr><th>token</th><th></th><th>model</th><th>${sampling ? "sampled" : "used"}</th></tr></thead><tbody>${rows.join("")}</tbody></table>` +
      (data.finished && data.finished.length ? renderBeam(data.finished, s.length_penalty) : "");
    return result;
  }

  // beam search: the finished hypotheses ranked by score / ((5 + length) / 6) ** alpha
  function rankFinished(finished, alpha) {
    return finished.map((f) => ({ ...f, score: f.logprob / Math.pow((5 + f.length) / 6, alpha) }))
      .sort((a, b) => b.score - a.score);
  }
  function renderBeam(finished, alpha) {
    const rows = rankFinished(finished, alpha ?? 0).slice(0, 8).map((f, k) =>
      `<tr${k === 0 ? ' class="chosen"' : ""}><td>${k + 1}</td><td>${escapeText(f.text)}</td><td class="num">${f.score.toFixed(3)}</td><td class="num">${f.logprob.toFixed(2)}</td><td class="num">${f.length}</td></tr>`);
    return `<div class="s2s-live-head">Finished hypotheses ranked at length penalty α = ${Number(alpha).toFixed(1)}</div>` +
      `<table class="beam"><thead><tr><th>#</th><th>hypothesis</th><th>score</th><th>log-prob</th><th>tokens</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  }

  const live = { chain, rankFinished, render, element: null, data: null, settings: {}, draws: 0 };
  live.redraw = function (settings) {
    if (settings) Object.assign(live.settings, settings);
    if (live.element) { render(live.element, live.data, live.settings); live.draws += 1; }
  };
  window.S2SLive = live;
})();
