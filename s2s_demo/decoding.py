"""Greedy, sampling and beam search: one loop over the model's ``step``, one bookkeeping.

Every method keeps ``W`` rows per sentence (``W`` = beam size for beam search, else 1) as
one tensor batch of ``B * W`` rows, for one sentence (the page) as for 64 (evaluation). A
step runs the model, then the processors (``s2s_demo.processors``: constraints, then for
sampling temperature / top-k / top-p) whose output is the distribution the method uses;
the strategy (``Greedy``, ``Sample``, ``Beam``) only proposes candidates from it. Finishing
hypotheses, reordering the state, the stopping rule, dropping done sentences, recording and
reading the hypotheses back through back-pointers are shared. Scores are sums of the
model's own log-probs: constraints only remove candidates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from .live import TEMPERATURES
from .model import StepModel
from .processors import NEG_INF, StepContext, build_processors
from .recording import Recorder, StepRecord
from .settings import DecodeSettings

__all__ = ["Hypothesis", "SearchResult", "StepRecord", "length_normalizer", "search",
           "teacher_forced_log_probs", "translate_ids", "model_device"]

# Done sentences leave a batch search once they are at least 1/DROP_FRACTION of the
# sentences still searched: each drop copies the state and memory rows, so batching the
# drops keeps that copy cheaper than the matmul rows it saves.
DROP_FRACTION = 4


@dataclass
class Hypothesis:
    """A finished output: ``tokens`` end with EOS; ``token_logprobs`` are the model's
    log-probs of each token; ``used_logprobs`` the log-probs in the distribution the method
    used (recorded searches only, else empty); ``slots`` the beam row each token came from."""

    tokens: list[int]
    token_logprobs: list[float]
    used_logprobs: list[float]
    slots: list[int]
    logprob: float
    score: float


@dataclass
class SearchResult:
    """``steps``: the best hypothesis' steps (recorded searches only); ``nodes``: every
    candidate the search proposed, as dicts with id, parent, step, token_id, score, status;
    ``best_path``: the node ids of the best hypothesis, from the start node 0 to its EOS."""

    hypotheses: list[Hypothesis]
    steps: list[StepRecord] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    seed: int | None = None
    best_path: list[int] = field(default_factory=list)
    # recorded searches: the decoder's top-layer states (T, Hd) along the best hypothesis, state t
    # the one that chose token t, and the sentence encoding (2He,): the mean encoder output
    states: torch.Tensor | None = None
    encoding: torch.Tensor | None = None


@dataclass
class _Finished:
    """A hypothesis that ended at ``step`` as candidate ``candidate`` of beam row ``parent``;
    its tokens are read back through the back-pointers when the search ends."""

    step: int
    parent: int
    candidate: int
    model_logprob: float
    used_logprob: float
    logprob: float
    score: float


def length_normalizer(length: int | torch.Tensor, settings: DecodeSettings):
    """Divisor of a hypothesis' log-prob for its length (1 when the penalty is off)."""
    alpha = settings.length_penalty
    if settings.length_penalty_type == "average":
        return length ** alpha
    return ((5.0 + length) / 6.0) ** alpha


# ------------------------------------------------------------------ strategies
class Greedy:
    """One row per sentence, one candidate: the highest-scoring token."""

    def pick(self, processed: torch.Tensor) -> torch.Tensor:
        """(N, V) processed scores -> (N, 1) tokens."""
        return processed.argmax(-1, keepdim=True)

    def propose(self, processed, model_lp, scores, single_parent):
        """Candidates for each sentence, best first: parents (B, C), tokens (B, C), their
        flat index into a sentence's (W * V) scores (B, C) and cumulative model log-probs (B, C)."""
        tokens = self.pick(processed)
        gained = model_lp.gather(1, tokens)
        gained = torch.where(processed.gather(1, tokens) > NEG_INF, gained, NEG_INF)
        return single_parent, tokens, tokens, scores + gained


class Sample(Greedy):
    """One row per sentence, one candidate drawn from the processed distribution."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def pick(self, processed: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(processed.exp(), 1, generator=self.generator)


class Beam:
    """W rows per sentence; 2W candidates: the best extensions of all rows by total score."""

    def __init__(self, width: int) -> None:
        self.width = width

    def propose(self, processed, model_lp, scores, single_parent):
        B, W, V = scores.size(0), self.width, processed.size(-1)
        # best 2W per row, then best 2W of those: the same set as one topk over W * V,
        # but row-wise topk runs ~2x faster than one over the flattened rows. A row's score is
        # one number added to all its tokens, so it is added to the row's best 2W alone
        k = min(2 * W, V)
        row_scores, row_tokens = processed.view(B, W, V).topk(k, dim=-1)  # (B, W, k)
        row_scores = row_scores + scores.unsqueeze(-1)
        cand_scores, pick = row_scores.view(B, W * k).topk(min(2 * W, W * k), dim=-1)
        parents = pick // k
        tokens = row_tokens.view(B, W * k).gather(1, pick)
        return parents, tokens, parents * V + tokens, cand_scores


class _Search:
    """State of one batched search; see the module docstring.

    Rows keep no growing sequence tensors: each step stores back-pointers (B, W) (the
    chosen tokens, their parent rows and log-probs) and finished hypotheses are read back
    through them at the end, so a step costs a fixed, small number of tensor ops.

    A batch runs until its longest output ends, so sentences that are done leave the
    batch (``_drop_done``): ``B`` counts the sentences still searched, ``sentence_ids``
    names them, and each step's back-pointers remember which sentences they cover.
    """

    def __init__(self, model: StepModel, sources: list[list[int]], settings: DecodeSettings,
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
        self.single_parent = torch.zeros((self.B, 1), dtype=torch.long, device=device)  # W = 1
        # back-pointers, one (B, W) tensor per step
        self.kept_tokens: list[torch.Tensor] = []
        self.kept_parents: list[torch.Tensor] = []
        self.kept_model: list[torch.Tensor] = []
        self.kept_used: list[torch.Tensor] = []
        self.kept_sentences: list[torch.Tensor | None] = []  # each step's `active`
        # each row's tokens so far, for n-gram blocking and the repetition penalty only
        self.tracks_tokens = bool(settings.no_repeat_ngram_size) or (
            settings.method == "sample" and settings.repetition_penalty != 1.0)
        self.row_tokens: list[list[int]] = [[] for _ in range(self.B * self.W)]
        self.finished: list[list[_Finished]] = [[] for _ in range(self.B)]
        self.done = torch.zeros(self.B, dtype=torch.bool, device=device)
        self.kth_best = torch.full((self.B,), NEG_INF, device=device)
        # the live payloads span the temperature slider where sampling can move it
        temperatures = TEMPERATURES if settings.method == "sample" else (1.0,)
        self.recorder = Recorder(settings.record_top_n, self.W, settings.live_top_n, temperatures) \
            if record else None
        # one sentence: the mean of its encoder outputs (a state without one, an ensemble's, has none)
        memory = getattr(self.state, "memory", None)
        if self.recorder is not None and memory is not None:
            self.recorder.encoding = memory[0, : len(sources[0])].mean(0)
        self.processors = build_processors(settings, cfg, self.first_cap, device)
        self.seed = None
        if settings.method == "sample":
            self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
            self.strategy = Sample(torch.Generator(device=device).manual_seed(self.seed))
        else:
            self.strategy = Beam(self.W) if settings.method == "beam" else Greedy()

    # ------------------------------------------------------------ main loop
    def _step(self, t: int, needs_used: bool):
        """Run the model one step and the processors: the model's log-probs (N, V), attention (N, S)
        or None, the scores after the constraints alone (N, V), the processed scores (N, V)
        the strategy picks from and, when ``needs_used``, the distribution they are (N, V)
        log-probs, else None."""
        model_lp, attn, self.state = self.model.step(self.prev, self.state)
        constrained, processed = self.processors.constrained_and_processed(
            model_lp, StepContext(t, model_lp, self.caps, self.row_tokens))
        used = self.processors.used_distribution(processed) if needs_used else None
        return model_lp, attn, constrained, processed, used

    def run(self) -> list[SearchResult]:
        s = self.settings
        # greedy and beam pick from the processed scores; as log-probs they are only shown
        needs_used = s.method == "sample" or self.recorder is not None
        for t in range(int(self.caps.max())):
            model_lp, attn, constrained, processed, used = self._step(t, needs_used)
            proposal = self.strategy.propose(processed, model_lp, self.scores, self.single_parent)
            if self.recorder is not None:
                hidden = getattr(self.state, "h", None)  # (L, W, Hd); an ensemble's state has none
                self.recorder.hold_step(constrained, self.state.network, hidden[-1] if hidden is not None else None)
            self._advance(t, model_lp, used, attn, t < len(s.forced_prefix), *proposal)
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
        if self.tracks_tokens:
            self.row_tokens = [self.row_tokens[r] for r in rows.tolist()]
        self.sentence_ids = [self.sentence_ids[i] for i in keep.tolist()]
        self.active = torch.tensor(self.sentence_ids, device=self.device)
        self.B = len(self.sentence_ids)
        self.batch_rows = self.batch_rows[: self.B]
        self.single_parent = self.single_parent[: self.B]
        self.done = self.done[keep]

    def _advance(self, t, model_lp, used, attn, forced, parents, tokens, flat, cand_scores) -> None:
        B, W, V = self.B, self.W, model_lp.size(-1)
        C = tokens.size(1)
        cand_model = model_lp.view(B, W * V).gather(1, flat)
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
            self.recorder.add(model_lp, used, attn, forced, (parents, tokens, cand_scores, valid,
                                                         finishing, kept, alive_ok))
        if bool(finishing.any()):
            self._finish(t, finishing, parents, cand_scores, cand_model, cand_used)
        pick = (lambda x: x) if chosen is None else (lambda x: x.gather(1, chosen))
        new_parents, new_tokens = pick(parents), pick(tokens)
        self.kept_tokens.append(new_tokens)
        self.kept_parents.append(new_parents)
        self.kept_model.append(pick(cand_model))
        self.kept_sentences.append(self.active)
        if cand_used is not None:
            self.kept_used.append(pick(cand_used))
        self.scores = torch.where(alive_ok, pick(cand_scores), NEG_INF)
        self.prev = new_tokens.reshape(-1)
        if W > 1 or self.tracks_tokens:
            parent_rows = (self.batch_rows + new_parents).view(-1)  # (B*W,) rows the kept beams extend
            if W > 1:
                self.state = self.state.select(parent_rows)
            if self.tracks_tokens:
                self.row_tokens = [self.row_tokens[r] + [tok]
                                   for r, tok in zip(parent_rows.tolist(), self.prev.tolist())]
        if C == 1:
            # greedy, sampling: done exactly when the one candidate ended or was invalid (beam
            # search of width 1 has two candidates and uses the bound, as wider beams do)
            self.done |= ~alive_ok[:, 0]
        else:
            self._update_done(t)

    def _finish(self, t, finishing, parents, cand_scores, cand_model, cand_used) -> None:
        where = finishing.nonzero(as_tuple=True)
        used = cand_used[where].tolist() if cand_used is not None else [math.nan] * len(where[0])
        changed = set()
        for b, c, p, model_lp, used_lp, total in zip(where[0].tolist(), where[1].tolist(), parents[where].tolist(),
                                                    cand_model[where].tolist(), used, cand_scores[where].tolist()):
            score = total / length_normalizer(t + 1, self.settings)
            self.finished[self.sentence_ids[b]].append(_Finished(t, p, c, model_lp, used_lp, total, score))
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
            return [SearchResult([], seed=self.seed) for _ in range(self.n_sentences)]
        tokens = self._all_sentences(self.kept_tokens).tolist()  # (T, B, W)
        parents = self._all_sentences(self.kept_parents).tolist()
        model_lp = self._all_sentences(self.kept_model).tolist()
        used = self._all_sentences(self.kept_used).tolist() if self.kept_used else None
        results, bests = [], []
        for b, finished in enumerate(self.finished):
            best = sorted(finished, key=lambda f: -f.score)[: self.settings.n_best]
            hyps = [self._backtrack(b, f, tokens, parents, model_lp, used) for f in best]
            results.append(SearchResult(hyps, seed=self.seed))
            bests.append(best[0] if best else None)
        return self._with_trace(results, bests[0])

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

    def _with_trace(self, results: list[SearchResult], best: _Finished | None) -> list[SearchResult]:
        """A recorded search adds its best hypothesis' steps, the search tree and the best
        hypothesis' path through it (``best``: its finished entry)."""
        if self.recorder is None:
            return results
        slots = results[0].hypotheses[0].slots if best is not None else []
        if best is not None:
            results[0].steps = self.recorder.path_steps(slots, results[0].hypotheses[0].tokens)
            results[0].states = self.recorder.path_states(slots)
        results[0].encoding = self.recorder.encoding
        results[0].nodes, results[0].best_path = self.recorder.tree(
            slots, best.candidate if best is not None else None)
        return results

    def _backtrack(self, b: int, fin: _Finished, tokens, parents, model_lp, used) -> Hypothesis:
        out_tokens, out_model, out_used, slots = [self.eos], [fin.model_logprob], [fin.used_logprob], [fin.parent]
        slot = fin.parent
        for t in range(fin.step - 1, -1, -1):
            out_tokens.append(tokens[t][b][slot])
            out_model.append(model_lp[t][b][slot])
            if used is not None:
                out_used.append(used[t][b][slot])
            slot = parents[t][b][slot]
            slots.append(slot)
        return Hypothesis(tokens=out_tokens[::-1], token_logprobs=out_model[::-1],
                          used_logprobs=out_used[::-1] if used is not None else [],
                          slots=slots[::-1], logprob=fin.logprob, score=fin.score)



def model_device(model) -> torch.device:
    """Where a model's (or an engine's) tensors live."""
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


def search(model: StepModel, sources: list[list[int]], settings: DecodeSettings,
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
            return _Search(model, sources, settings, record).run()
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


def translate_ids(model: StepModel, sources: list[list[int]], settings: DecodeSettings,
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

