"""Greedy, sampling and beam search: one loop over ``Seq2Seq.step``.

Every method keeps ``W`` rows per sentence (``W`` = beam size for beam search, else 1)
as one tensor batch of ``B * W`` rows. A method only decides which candidates each step
proposes (``_propose``); finishing hypotheses, reordering the state, length limits and
recording are shared. Scores are sums of the model's raw log-probs; constraints
(forced prefix, minimum length, banned tokens, n-gram blocking) only remove candidates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from .model import Seq2Seq
from .settings import DecodeSettings

NEG_INF = float("-inf")
# Done sentences leave a batch search once they are at least 1/DROP_FRACTION of the
# sentences still searched: each drop copies the state and memory rows, so batching the
# drops keeps that copy cheaper than the matmul rows it saves.
DROP_FRACTION = 4


@dataclass
class Hypothesis:
    """A finished output: ``tokens`` end with EOS; ``token_logprobs`` are the model's raw
    log-probs of each token; ``used_logprobs`` the log-probs in the distribution the method
    used (recorded searches only, else empty); ``slots`` the beam row each token came from."""

    tokens: list[int]
    token_logprobs: list[float]
    used_logprobs: list[float]
    slots: list[int]
    logprob: float
    score: float


@dataclass
class StepRecord:
    """One step of the best hypothesis of a recorded search.

    ``raw_top``/``used_top``: (values (n,) log-probs, ids (n,)) of the model's softmax and
    of the distribution the method used, at the beam row the best hypothesis came from;
    ``raw_entropy``/``used_entropy``: their entropies; ``attention``: (S,) or None;
    ``cut_mass``: the model's probability mass on the tokens the method could not pick
    (banned tokens, and those top-k / top-p removed).
    """

    raw_top: tuple[torch.Tensor, torch.Tensor]
    used_top: tuple[torch.Tensor, torch.Tensor]
    raw_entropy: float
    used_entropy: float
    attention: torch.Tensor | None
    forced: bool
    cut_mass: float = 0.0


@dataclass
class SearchResult:
    """``steps``: the best hypothesis' steps (recorded searches only); ``nodes``: every
    candidate the search proposed, as dicts with id, parent, step, token_id, score, status."""

    hypotheses: list[Hypothesis]
    steps: list[StepRecord] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    seed: int | None = None


@dataclass
class _Finished:
    """A hypothesis that ended at ``step`` from beam row ``parent``; its tokens are read
    back through the back-pointers when the search ends."""

    step: int
    parent: int
    raw_logprob: float
    used_logprob: float
    logprob: float
    score: float


def length_normalizer(length: int | torch.Tensor, settings: DecodeSettings):
    """Divisor of a hypothesis' log-prob for its length (1 when the penalty is off)."""
    alpha = settings.length_penalty
    if settings.length_penalty_type == "average":
        return length ** alpha
    return ((5.0 + length) / 6.0) ** alpha


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """(..., V) normalised log-probs -> (...,) entropy in nats (0 * log 0 counts as 0)."""
    # softmax of log-probs is their exp, but its kernel runs ~1.4x faster than exp's on
    # decoding's rows (-inf and deep underflow included); 0 * -inf is NaN, which nansum skips
    return -torch.softmax(log_probs, dim=-1).mul_(log_probs).nansum(-1)


def _sampling_distribution(log_probs: torch.Tensor, settings: DecodeSettings) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering: (N, V) -> renormalised
    log-probs (N, V) with filtered tokens at -inf."""
    scores = log_probs / settings.temperature
    if settings.top_k and settings.top_k < scores.size(-1):
        kth = scores.topk(settings.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, NEG_INF)
    scores = torch.log_softmax(scores, dim=-1)
    if settings.top_p < 1.0:
        sorted_lp, order = scores.sort(dim=-1, descending=True)
        mass_before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        remove_sorted = mass_before >= settings.top_p
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        scores = torch.log_softmax(scores.masked_fill(remove, NEG_INF), dim=-1)
    return scores


class _Recorder:
    """Per-step distributions, attention and search-tree candidates of one sentence.

    A step only keeps references to tensors the search computed anyway; the top-n and
    entropies are computed when the search ends, for the best hypothesis' rows only, in
    one batched topk. Should the held distributions pass ``BUDGET`` floats (long outputs
    with wide beams), the held steps are summarised for all rows at once to free them.
    """

    BUDGET = 8_000_000

    def __init__(self, top_n: int, width: int) -> None:
        self.top_n, self.width = top_n, width
        self.held: list[tuple[torch.Tensor, torch.Tensor]] = []  # raw, used (W, V) per step
        self.summaries: list[tuple[torch.Tensor, ...]] = []      # per step, when over budget
        self.held_floats = 0
        self.attention: list[torch.Tensor | None] = []
        self.forced: list[bool] = []
        self.candidates: list[tuple[torch.Tensor, ...]] = []

    def add(self, raw, used, attn, forced, candidates: tuple[torch.Tensor, ...]) -> None:
        """raw/used (W, V), attn (W, S) or None; candidates: parents, tokens, scores, valid,
        finishing (each (1, C)) and chosen, alive_ok (each (1, W)), as tensors or, from the
        single-row search, as lists of length C and W."""
        self.held.append((raw, used))
        self.attention.append(attn)
        self.forced.append(forced)
        self.candidates.append(candidates)
        self.held_floats += 2 * raw.numel()
        if self.held_floats > self.BUDGET:
            self._summarise_held()

    def _summarise(self, raws: list[torch.Tensor], useds: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """k raw and k used (..., V) rows -> top values, ids (2, k, ..., n), entropies (2, k, ...)
        and the raw mass of the tokens the used distribution excludes (k, ...)."""
        both = torch.stack(raws + useds)  # one copy of the rows: (2k, ..., V)
        both = both.view(2, len(raws), *both.shape[1:])
        top = both.topk(min(self.top_n, both.size(-1)), dim=-1)
        cut = both[0].exp().masked_fill(both[1] > NEG_INF, 0.0).sum(-1)
        return top.values, top.indices, _entropy(both), cut

    def _summarise_held(self) -> None:
        raws, useds = zip(*self.held)
        values, ids, entropy, cut = self._summarise(list(raws), list(useds))  # (2, k, W, n)
        self.summaries.extend((values[:, i], ids[:, i], entropy[:, i], cut[i]) for i in range(len(raws)))
        self.held, self.held_floats = [], 0

    def path_steps(self, slots: list[int]) -> list[StepRecord]:
        """StepRecords of the hypothesis whose token t came from beam row ``slots[t]``."""
        done = len(self.summaries)
        parts = [(v[:, slot], i[:, slot], e[:, slot], c[slot])
                 for (v, i, e, c), slot in zip(self.summaries, slots)]
        rest = slots[done:]
        if rest:
            raw = [self.held[t][0][slot] for t, slot in enumerate(rest)]  # k rows (V,)
            used = [self.held[t][1][slot] for t, slot in enumerate(rest)]
            values, ids, entropy, cut = self._summarise(raw, used)  # (2, k, n), (2, k), (k,)
            # unbind: one op for all steps' views instead of an index op per step
            parts.extend(zip(values.unbind(1), ids.unbind(1), entropy.unbind(1), cut.unbind(0)))
        records = []
        for t, ((values, ids, entropy, cut), slot) in enumerate(zip(parts, slots)):
            attn = self.attention[t]
            raw_entropy, used_entropy = entropy.tolist()
            (raw_values, used_values), (raw_ids, used_ids) = values, ids
            records.append(StepRecord((raw_values, raw_ids), (used_values, used_ids), raw_entropy,
                                      used_entropy, attn[slot] if attn is not None else None,
                                      self.forced[t], float(cut)))
        return records

    def nodes(self) -> list[dict]:
        """Number every valid candidate (node 0 is the start) and link it to its parent's node."""
        if not self.candidates:
            return []
        parents, tokens, scores, valid, finishing, chosen, alive_ok = (
            torch.cat(col).tolist() if torch.is_tensor(col[0]) else list(col) for col in zip(*self.candidates))
        nodes, node_of_slot, next_id = [], [0] * self.width, 1
        for t in range(len(parents)):
            slot_of = {c: slot for slot, (c, ok) in enumerate(zip(chosen[t], alive_ok[t])) if ok}
            new_nodes = [0] * self.width
            for c, ok in enumerate(valid[t]):
                if not ok:
                    continue
                status = "finished" if finishing[t][c] else "kept" if c in slot_of else "pruned"
                nodes.append({"id": next_id, "parent": node_of_slot[parents[t][c]], "step": t,
                              "token_id": tokens[t][c], "score": scores[t][c], "status": status})
                if c in slot_of:
                    new_nodes[slot_of[c]] = next_id
                next_id += 1
            node_of_slot = new_nodes
        return nodes


class _Search:
    """State of one batched search; see the module docstring.

    Rows keep no growing sequence tensors: each step stores back-pointers (B, W) (the
    chosen tokens, their parent rows and log-probs) and finished hypotheses are read back
    through them at the end, so a step costs a fixed, small number of tensor ops.

    A batch runs until its longest output ends, so sentences that are done leave the
    batch (``_drop_done``): ``B`` counts the sentences still searched, ``sentence_ids``
    names them, and each step's back-pointers remember which sentences they cover.
    """

    def __init__(self, model: Seq2Seq, sources: list[list[int]], settings: DecodeSettings,
                 record: bool) -> None:
        if record and len(sources) != 1:
            raise ValueError("recording a trace needs exactly one source sentence")
        if any(len(s) == 0 for s in sources):
            raise ValueError("every source sentence needs at least one token")
        self.model, self.settings = model, settings
        cfg = model.config
        self.eos = cfg.eos_id
        self.B, self.W = len(sources), settings.width
        self.n_sentences = self.B
        self.sentence_ids = list(range(self.B))  # the input index of each searched sentence
        self.active: torch.Tensor | None = None  # sentence_ids as a tensor; None = all of them
        device = model_device(model)
        longest = max(len(s) for s in sources)
        lengths = torch.tensor([len(s) for s in sources], device=device)
        src = torch.tensor([ids + [cfg.pad_id] * (longest - len(ids)) for ids in sources], device=device)
        state = model.encode(src, lengths)
        rows = torch.arange(self.B, device=device).repeat_interleave(self.W)
        self.state = state.select(rows, memory_rows=rows) if self.W > 1 else state
        caps = torch.tensor([settings.length_cap(len(s)) for s in sources], device=device)
        self.caps = caps.repeat_interleave(self.W)  # (B*W,)
        self.first_cap = int(self.caps.min())
        self.device = device
        self.scores = torch.full((self.B, self.W), NEG_INF, device=device)
        self.scores[:, 0] = 0.0
        self.batch_rows = torch.arange(self.B, device=device).unsqueeze(1) * self.W  # (B, 1)
        self.prev = torch.full((self.B * self.W,), cfg.bos_id, dtype=torch.long, device=device)
        self.masks = self._token_masks(cfg, device)
        self.single_parent = torch.zeros((self.B, 1), dtype=torch.long, device=device)  # W = 1
        # back-pointers, one (B, W) tensor per step
        self.kept_tokens: list[torch.Tensor] = []
        self.kept_parents: list[torch.Tensor] = []
        self.kept_raw: list[torch.Tensor] = []
        self.kept_used: list[torch.Tensor] = []
        self.kept_sentences: list[torch.Tensor | None] = []  # each step's `active`
        self.row_seqs: list[list[int]] = [[] for _ in range(self.B * self.W)]  # n-gram blocking only
        self.finished: list[list[_Finished]] = [[] for _ in range(self.B)]
        self.done = torch.zeros(self.B, dtype=torch.bool, device=device)
        self.kth_best = torch.full((self.B,), NEG_INF, device=device)
        self.recorder = _Recorder(settings.record_top_n, self.W) if record else None
        self.seed = None
        self.generator = None
        if settings.method == "sample":
            self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
            self.generator = torch.Generator(device=device).manual_seed(self.seed)

    # ------------------------------------------------------------ constraints
    def _token_masks(self, cfg, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive (V,) masks of tokens no method may pick: (any step, before min_length)."""
        mask = torch.zeros(cfg.tgt_vocab_size, device=device)
        mask[[cfg.bos_id, cfg.pad_id] + ([cfg.unk_id] if self.settings.ban_unk else [])] = NEG_INF
        early = mask.clone()
        early[cfg.eos_id] = NEG_INF
        return mask, early

    def _banned(self, log_probs: torch.Tensor, t: int) -> torch.Tensor:
        """Remove tokens no method may pick at step t: (N, V) -> (N, V)."""
        s = self.settings
        lp = log_probs + self.masks[1 if t < s.min_length else 0]
        if s.no_repeat_ngram_size:
            self._block_ngrams(lp)
        if t >= self.first_cap - 1:
            # the last allowed step of a sentence may only end it
            at_cap = self.caps - 1 <= t
            lp[at_cap] = NEG_INF
            lp[at_cap, self.eos] = log_probs[at_cap, self.eos]
        return lp

    def _block_ngrams(self, lp: torch.Tensor) -> None:
        n = self.settings.no_repeat_ngram_size
        for row, seq in enumerate(self.row_seqs):
            if len(seq) < n - 1 or n < 1:
                continue
            context = tuple(seq[len(seq) - n + 1:]) if n > 1 else ()
            for i in range(len(seq) - n + 1):
                if tuple(seq[i : i + n - 1]) == context:
                    lp[row, seq[i + n - 1]] = NEG_INF

    def _force(self, lp: torch.Tensor, t: int) -> torch.Tensor:
        """At a forced-prefix step keep only the forced token (with its real score)."""
        forced = torch.full_like(lp, NEG_INF)
        token = int(self.settings.forced_prefix[t])
        forced[:, token] = lp[:, token]
        # a forced token a constraint removed still gets its raw score: forcing wins
        return forced

    # ------------------------------------------------------------ proposals
    def _propose(self, select_lp: torch.Tensor, raw: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidates for each sentence, best first: parents (B, C), tokens (B, C), their
        flat index into a sentence's (W * V) scores (B, C) and cumulative raw scores (B, C)."""
        B, W, V = self.B, self.W, select_lp.size(-1)
        if self.settings.method == "beam":
            total = self.scores.unsqueeze(-1) + select_lp.view(B, W, V)
            # best 2W per row, then best 2W of those: the same set as one topk over W * V,
            # but row-wise topk runs ~2x faster than one over the flattened rows
            k = min(2 * W, V)
            row_scores, row_tokens = total.topk(k, dim=-1)  # (B, W, k)
            scores, pick = row_scores.view(B, W * k).topk(min(2 * W, W * k), dim=-1)
            parents = pick // k
            tokens = row_tokens.view(B, W * k).gather(1, pick)
            return parents, tokens, parents * V + tokens, scores
        if self.settings.method == "greedy":
            tokens = select_lp.argmax(-1, keepdim=True)
        else:
            tokens = torch.multinomial(select_lp.exp(), 1, generator=self.generator)
        gained = raw.gather(1, tokens)
        gained = torch.where(select_lp.gather(1, tokens) > NEG_INF, gained, NEG_INF)
        return self.single_parent, tokens, tokens, self.scores + gained

    # ------------------------------------------------------------ main loop
    def _step(self, t: int, needs_used: bool):
        """Run the model one step and apply the constraints: raw log-probs (N, V), attention
        (N, S) or None, the distribution the method uses (N, V) (None unless ``needs_used``),
        whether step t is forced, and the (N, V) scores the method picks from."""
        s = self.settings
        raw, attn, self.state = self.model.step(self.prev, self.state)
        allowed = self._banned(raw, t)
        used = None
        if needs_used:
            used = _sampling_distribution(allowed, s) if s.method == "sample" else \
                torch.log_softmax(allowed, dim=-1)
        forced = t < len(s.forced_prefix)
        select_lp = self._force(raw, t) if forced else (used if s.method == "sample" else allowed)
        return raw, attn, used, forced, select_lp

    def run(self) -> list[SearchResult]:
        s = self.settings
        # greedy and beam pick from `allowed`; its renormalised form is only shown
        needs_used = s.method == "sample" or self.recorder is not None
        for t in range(int(self.caps.max())):
            raw, attn, used, forced, select_lp = self._step(t, needs_used)
            self._advance(t, raw, used, attn, forced, *self._propose(select_lp, raw))
            if bool(self.done.all()):
                break
            if self.recorder is None and int(self.done.sum()) * DROP_FRACTION >= self.B:
                self._drop_done()
        return self._results()

    def _drop_done(self) -> None:
        """Remove the done sentences' rows from every per-row tensor and the state."""
        keep = (~self.done).nonzero().squeeze(1)  # (B',)
        rows = (self.batch_rows[keep] + torch.arange(self.W, device=self.device)).view(-1)  # (B'*W,)
        self.state = self.state.select(rows, memory_rows=rows)
        self.scores, self.kth_best = self.scores[keep], self.kth_best[keep]
        self.caps, self.prev = self.caps[rows], self.prev[rows]
        if self.settings.no_repeat_ngram_size:
            self.row_seqs = [self.row_seqs[r] for r in rows.tolist()]
        self.sentence_ids = [self.sentence_ids[i] for i in keep.tolist()]
        self.active = torch.tensor(self.sentence_ids, device=self.device)
        self.B = len(self.sentence_ids)
        self.batch_rows = self.batch_rows[: self.B]
        self.single_parent = self.single_parent[: self.B]
        self.done = self.done[keep]

    def _advance(self, t, raw, used, attn, forced, parents, tokens, flat, cand_scores) -> None:
        B, W, V = self.B, self.W, raw.size(-1)
        C = tokens.size(1)
        cand_raw = raw.view(B, W * V).gather(1, flat)
        cand_used = used.view(B, W * V).gather(1, flat) if used is not None else None
        valid = (cand_scores > NEG_INF) & ~self.done.unsqueeze(1)
        is_eos = tokens == self.eos
        if C == 1:  # greedy, sampling: the one candidate stays alive unless it ends
            chosen = None
            finishing = is_eos & valid
            alive_ok = valid & ~is_eos
        else:
            rank = torch.arange(C, device=self.device).unsqueeze(0)
            finishing = is_eos & valid & (rank < W)
            # the first W candidates that do not end the sentence stay alive
            order_key = (is_eos | ~valid).long() * C + rank
            chosen = order_key.topk(W, dim=1, largest=False).indices
            alive_ok = valid.gather(1, chosen) & ~is_eos.gather(1, chosen)
        if self.recorder is not None:
            kept = chosen if chosen is not None else parents  # greedy/sampling: (1, 1) zeros
            self.recorder.add(raw, used, attn, forced, (parents, tokens, cand_scores, valid,
                                                         finishing, kept, alive_ok))
        if bool(finishing.any()):
            self._finish(t, finishing, parents, cand_scores, cand_raw, cand_used)
        pick = (lambda x: x) if chosen is None else (lambda x: x.gather(1, chosen))
        new_parents, new_tokens = pick(parents), pick(tokens)
        self.kept_tokens.append(new_tokens)
        self.kept_parents.append(new_parents)
        self.kept_raw.append(pick(cand_raw))
        self.kept_sentences.append(self.active)
        if cand_used is not None:
            self.kept_used.append(pick(cand_used))
        self.scores = torch.where(alive_ok, pick(cand_scores), NEG_INF)
        self.prev = new_tokens.reshape(-1)
        if W > 1 or self.settings.no_repeat_ngram_size:
            parent_rows = (self.batch_rows + new_parents).view(-1)  # (B*W,) rows the kept beams extend
            if W > 1:
                self.state = self.state.select(parent_rows)
            if self.settings.no_repeat_ngram_size:
                self.row_seqs = [self.row_seqs[r] + [tok] for r, tok in zip(parent_rows.tolist(), self.prev.tolist())]
        if C == 1:
            # greedy, sampling: done exactly when the one candidate ended or was invalid (beam
            # search of width 1 has two candidates and uses the bound, as wider beams do)
            self.done |= ~alive_ok[:, 0]
        else:
            self._update_done(t)

    def _finish(self, t, finishing, parents, cand_scores, cand_raw, cand_used) -> None:
        where = finishing.nonzero(as_tuple=True)
        used = cand_used[where].tolist() if cand_used is not None else [math.nan] * len(where[0])
        changed = set()
        for b, p, raw_lp, used_lp, total in zip(where[0].tolist(), parents[where].tolist(),
                                                 cand_raw[where].tolist(), used, cand_scores[where].tolist()):
            score = total / length_normalizer(t + 1, self.settings)
            self.finished[self.sentence_ids[b]].append(_Finished(t, p, raw_lp, used_lp, total, score))
            changed.add(b)
        for b in changed:
            finished = self.finished[self.sentence_ids[b]]
            if len(finished) >= self.W:
                self.kth_best[b] = sorted((f.score for f in finished), reverse=True)[self.W - 1]

    def _update_done(self, t: int) -> None:
        """A sentence is done when no alive row can still enter its W best finished.

        The bound divides the best alive log-prob by the normaliser of the current
        length: exact without a length penalty (log-probs only fall), the usual
        heuristic with one.
        """
        best_alive = self.scores.max(dim=1).values
        bound = best_alive / length_normalizer(t + 1, self.settings)
        # kth_best stays -inf until W hypotheses have finished, so it cannot pass a finite bound
        self.done |= (self.kth_best >= bound) | (best_alive == NEG_INF)

    # ------------------------------------------------------------ results
    def _results(self) -> list[SearchResult]:
        """Read the n best finished hypotheses of every sentence back through the pointers;
        a recorded search adds its best hypothesis' steps and the search tree."""
        if not self.kept_tokens:
            return [SearchResult([], seed=self.seed) for _ in range(self.B)]
        tokens = self._all_sentences(self.kept_tokens).tolist()  # (T, B, W)
        parents = self._all_sentences(self.kept_parents).tolist()
        raw = self._all_sentences(self.kept_raw).tolist()
        used = self._all_sentences(self.kept_used).tolist() if self.kept_used else None
        results = []
        for b, finished in enumerate(self.finished):
            best = sorted(finished, key=lambda f: -f.score)[: self.settings.n_best]
            hyps = [self._backtrack(b, f, tokens, parents, raw, used) for f in best]
            results.append(SearchResult(hyps, seed=self.seed))
        return self._with_trace(results)

    def _all_sentences(self, kept: list[torch.Tensor]) -> torch.Tensor:
        """Per-step (B', W) back-pointers -> (T, B, W) indexed by input sentence (zeros
        where a sentence had left the batch: no hypothesis reads them)."""
        if self.active is None:  # no sentence ever left
            return torch.stack(kept)
        out = kept[0].new_zeros((len(kept), self.n_sentences, self.W))
        for t, (step, sentences) in enumerate(zip(kept, self.kept_sentences)):
            if sentences is None:
                out[t] = step
            else:
                out[t, sentences] = step
        return out

    def _with_trace(self, results: list[SearchResult]) -> list[SearchResult]:
        """A recorded search adds its best hypothesis' steps and the search tree."""
        if self.recorder is not None and results[0].hypotheses:
            results[0].steps = self.recorder.path_steps(results[0].hypotheses[0].slots)
        if self.recorder is not None:
            results[0].nodes = self.recorder.nodes()
        return results

    def _backtrack(self, b: int, fin: _Finished, tokens, parents, raw, used) -> Hypothesis:
        out_tokens, out_raw, out_used, slots = [self.eos], [fin.raw_logprob], [fin.used_logprob], [fin.parent]
        slot = fin.parent
        for t in range(fin.step - 1, -1, -1):
            out_tokens.append(tokens[t][b][slot])
            out_raw.append(raw[t][b][slot])
            if used is not None:
                out_used.append(used[t][b][slot])
            slot = parents[t][b][slot]
            slots.append(slot)
        return Hypothesis(tokens=out_tokens[::-1], token_logprobs=out_raw[::-1],
                          used_logprobs=out_used[::-1] if used is not None else [],
                          slots=slots[::-1], logprob=fin.logprob, score=fin.score)


class _RowSearch(_Search):
    """Greedy or sampling search of one sentence (the demo's page): one row, so the
    bookkeeping runs on Python scalars instead of (1, 1) tensors. The model step, the
    constraints and the recorder are ``_Search``'s; besides them a step costs an argmax (or
    draw) and three scalar reads instead of ~20 tensor ops, each a few microseconds of
    dispatch. Results equal ``_Search``'s (scores summed in float64 instead of float32).
    """

    def run(self) -> list[SearchResult]:
        s = self.settings
        needs_used = s.method == "sample" or self.recorder is not None
        score, tokens, raws, useds, finished = 0.0, [], [], [], None
        for t in range(int(self.caps[0])):
            raw, attn, used, forced, select_lp = self._step(t, needs_used)
            if s.method == "greedy":
                self.prev = select_lp.argmax(-1)
            else:
                self.prev = torch.multinomial(select_lp.exp(), 1, generator=self.generator).view(1)
            token = int(self.prev)
            raw_lp = float(raw[0, token])
            valid = float(select_lp[0, token]) > NEG_INF
            used_lp = float(used[0, token]) if used is not None else math.nan
            score = score + raw_lp if valid else NEG_INF
            finishing, alive = valid and token == self.eos, valid and token != self.eos
            if self.recorder is not None:
                self.recorder.add(raw, used, attn, forced, ([0], [token], [score], [valid], [finishing],
                                                            [0], [alive]))
            if finishing:
                finished = _Finished(t, 0, raw_lp, used_lp, score,
                                     score / length_normalizer(t + 1, s))
            if not alive:
                break
            tokens.append(token)
            raws.append(raw_lp)
            useds.append(used_lp)
            if s.no_repeat_ngram_size:
                self.row_seqs[0].append(token)
        hypotheses = [] if finished is None else [self._hypothesis(finished, tokens, raws, useds, needs_used)]
        return self._with_trace([SearchResult(hypotheses, seed=self.seed)])

    def _hypothesis(self, fin: _Finished, tokens: list[int], raws: list[float], useds: list[float],
                    has_used: bool) -> Hypothesis:
        """The finished row: the tokens before EOS with their log-probs, then EOS."""
        return Hypothesis(tokens=tokens + [self.eos], token_logprobs=raws + [fin.raw_logprob],
                          used_logprobs=useds + [fin.used_logprob] if has_used else [],
                          slots=[0] * (len(tokens) + 1), logprob=fin.logprob, score=fin.score)


class _BeamRowSearch(_Search):
    """Beam search of one sentence (the demo's page): the model step, the constraints, the
    proposals and the recorder are ``_Search``'s, but deciding which of the 2W candidates
    end, stay or are pruned, the n-best and the stopping rule run on Python lists of those
    2W numbers instead of ~25 (1, 2W)-tensor ops a step. Results equal ``_Search``'s (the
    stopping bound is compared in float64 instead of float32).
    """

    def run(self) -> list[SearchResult]:
        s, W = self.settings, self.W
        needs_used = self.recorder is not None
        history: list[tuple[list, list, list, list]] = []  # per step: kept tokens, parents, raw, used
        finished: list[_Finished] = []
        kth_best = NEG_INF
        for t in range(int(self.caps[0])):
            raw, attn, used, forced, select_lp = self._step(t, needs_used)
            parents_t, tokens_t, flat_t, scores_t = self._propose(select_lp, raw)  # (1, C) each
            parents, tokens, scores = parents_t[0].tolist(), tokens_t[0].tolist(), scores_t[0].tolist()
            cand_raw = raw.view(-1)[flat_t[0]].tolist()
            cand_used = used.view(-1)[flat_t[0]].tolist() if used is not None else [math.nan] * len(tokens)
            chosen, alive_ok, finishing, valid = self._sort_candidates(tokens, scores)
            if self.recorder is not None:
                self.recorder.add(raw, used, attn, forced, (parents, tokens, scores, valid, finishing,
                                                             chosen, alive_ok))
            for c in (c for c, ends in enumerate(finishing) if ends):
                score = scores[c] / length_normalizer(t + 1, s)
                finished.append(_Finished(t, parents[c], cand_raw[c], cand_used[c], scores[c], score))
            if len(finished) >= W:
                kth_best = sorted((f.score for f in finished), reverse=True)[W - 1]
            kept_tokens, kept_parents = [tokens[c] for c in chosen], [parents[c] for c in chosen]
            history.append((kept_tokens, kept_parents, [cand_raw[c] for c in chosen],
                            [cand_used[c] for c in chosen]))
            kept_scores = [scores[c] if ok else NEG_INF for c, ok in zip(chosen, alive_ok)]
            self.scores = torch.tensor([kept_scores], device=self.device)
            self.prev = torch.tensor(kept_tokens, device=self.device)
            self.state = self.state.select(torch.tensor(kept_parents, device=self.device))
            if s.no_repeat_ngram_size:
                self.row_seqs = [self.row_seqs[p] + [tok] for p, tok in zip(kept_parents, kept_tokens)]
            best_alive = max(kept_scores)
            if best_alive == NEG_INF or kth_best >= best_alive / length_normalizer(t + 1, s):
                break
        return self._with_trace([SearchResult(self._n_best(finished, history, needs_used), seed=self.seed)])

    def _sort_candidates(self, tokens: list[int], scores: list[float]):
        """``_advance``'s rules on lists: the first W candidates that neither end nor are
        invalid stay alive (the rest of the W slots get the next ones, marked not alive);
        an EOS among the W best ends a hypothesis."""
        W, C = self.W, len(tokens)
        valid = [score > NEG_INF for score in scores]
        is_eos = [tok == self.eos for tok in tokens]
        finishing = [is_eos[c] and valid[c] and c < W for c in range(C)]
        chosen = sorted(range(C), key=lambda c: (is_eos[c] or not valid[c]) * C + c)[:W]
        alive_ok = [valid[c] and not is_eos[c] for c in chosen]
        return chosen, alive_ok, finishing, valid

    def _n_best(self, finished: list[_Finished], history, has_used: bool) -> list[Hypothesis]:
        """The n best finished hypotheses, read back through the kept back-pointers."""
        tokens = [[step[0]] for step in history]  # (T, 1, W): _backtrack's layout
        parents = [[step[1]] for step in history]
        raw = [[step[2]] for step in history]
        used = [[step[3]] for step in history] if has_used else None
        best = sorted(finished, key=lambda f: -f.score)[: self.settings.n_best]
        return [self._backtrack(0, f, tokens, parents, raw, used) for f in best]


def model_device(model) -> torch.device:
    """Where a model's (or an engine's) tensors live."""
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


def search(model: Seq2Seq, sources: list[list[int]], settings: DecodeSettings,
           record: bool = False) -> list[SearchResult]:
    """Decode a batch of source id lists; one SearchResult per source.

    ``model``: anything with ``config``, ``encode`` and ``step``: an
    :class:`s2s_demo.inference.InferenceEngine` (what the demo decodes with), a ``Seq2Seq``
    (its reference step, put in eval mode for the search) or an ensemble.
    ``record=True`` (one source only) keeps per-step distributions, attention and the
    search tree for a Trace.
    """
    was_training = getattr(model, "training", False)
    if was_training:  # train()/eval() walk every submodule: skip them when already in eval
        model.eval()
    try:
        with torch.inference_mode():
            if len(sources) != 1:
                kind = _Search
            else:
                kind = _BeamRowSearch if settings.method == "beam" else _RowSearch
            return kind(model, sources, settings, record).run()
    finally:
        if was_training:
            model.train()


def teacher_forced_log_probs(model, source: list[int], target: list[int]) -> torch.Tensor:
    """Log-probs (T, V) at every step of ``target`` (ids, ending with EOS) given ``source``,
    through ``model.encode``/``step`` (an engine: the numbers the page would show)."""
    cfg = model.config
    with torch.inference_mode():
        state = model.encode(torch.tensor([source]), torch.tensor([len(source)]))
        prev = torch.tensor([cfg.bos_id])
        rows = []
        for token in target:
            log_probs, _, state = model.step(prev, state)
            rows.append(log_probs[0])
            prev = torch.tensor([token])
    return torch.stack(rows)


def translate_ids(model: Seq2Seq, sources: list[list[int]], settings: DecodeSettings,
                  batch_size: int = 64) -> list[list[int]]:
    """Best hypothesis (ids without EOS) for each source, batched by similar length."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: list[list[int]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        results = search(model, [sources[i] for i in chunk], settings)
        for i, result in zip(chunk, results):
            best = result.hypotheses[0].tokens if result.hypotheses else []
            outputs[i] = [tok for tok in best if tok != model.config.eos_id]
    return outputs

