"""Greedy, sampling and beam search: one loop over ``Seq2Seq.step``.

Every method keeps ``W`` rows per sentence (``W`` = beam size for beam search, else 1)
as one tensor batch of ``B * W`` rows. A method only decides which candidates each step
proposes (``_propose``); finishing hypotheses, reordering the state, length limits and
recording are shared. Scores are sums of the model's raw log-probs; constraints
(forced prefix, minimum length, banned tokens, n-gram blocking) only remove candidates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from .model import Seq2Seq
from .settings import DecodeSettings

NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    """A finished output: ``tokens`` end with EOS; ``token_logprobs`` are the model's raw
    log-probs of each token; ``slots`` the beam row each token was produced from."""

    tokens: list[int]
    token_logprobs: list[float]
    used_logprobs: list[float]
    slots: list[int]
    logprob: float
    score: float


@dataclass
class StepRecord:
    """What one step computed for all W rows of a sentence (tensors, converted later).

    ``raw_top``/``used_top``: (values (W, n) log-probs, ids (W, n)); ``raw_entropy``,
    ``used_entropy``: (W,); ``attention``: (W, S) or None; ``nodes``: the beam-tree
    candidates proposed at this step.
    """

    raw_top: tuple[torch.Tensor, torch.Tensor]
    used_top: tuple[torch.Tensor, torch.Tensor]
    raw_entropy: torch.Tensor
    used_entropy: torch.Tensor
    attention: torch.Tensor | None
    forced: bool
    nodes: list[dict] = field(default_factory=list)


@dataclass
class SearchResult:
    hypotheses: list[Hypothesis]
    steps: list[StepRecord]
    seed: int | None


def length_normalizer(length: int | torch.Tensor, settings: DecodeSettings):
    """Divisor of a hypothesis' log-prob for its length (1 when the penalty is off)."""
    alpha = settings.length_penalty
    if settings.length_penalty_type == "average":
        return length ** alpha
    return ((5.0 + length) / 6.0) ** alpha


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    probs = log_probs.exp()
    return -(probs * log_probs.masked_fill(probs == 0, 0.0)).sum(-1)


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


class _Search:
    """State of one batched search; see the module docstring."""

    def __init__(self, model: Seq2Seq, sources: list[list[int]], settings: DecodeSettings,
                 record: bool) -> None:
        if record and len(sources) != 1:
            raise ValueError("recording a trace needs exactly one source sentence")
        if any(len(s) == 0 for s in sources):
            raise ValueError("every source sentence needs at least one token")
        self.model, self.settings, self.record = model, settings, record
        cfg = model.config
        self.eos, self.bos, self.unk = cfg.eos_id, cfg.bos_id, cfg.unk_id
        self.B, self.W = len(sources), settings.width
        device = next(model.parameters()).device
        lengths = torch.tensor([len(s) for s in sources], device=device)
        src = torch.full((self.B, int(lengths.max())), cfg.pad_id, dtype=torch.long, device=device)
        for i, ids in enumerate(sources):
            src[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        state = model.encode(src, lengths)
        rows = torch.arange(self.B, device=device).repeat_interleave(self.W)
        self.state = state.select(rows, memory_rows=rows) if self.W > 1 else state
        caps = (lengths.float() * settings.max_length_ratio + 10).floor().long()
        self.caps = caps.clamp(max=settings.max_length)
        self.device = device
        self.scores = torch.full((self.B, self.W), NEG_INF, device=device)
        self.scores[:, 0] = 0.0
        empty = torch.zeros(self.B, self.W, 0, device=device)
        self.seqs = empty.long()
        self.raw_lp = empty
        self.used_lp = empty.clone()
        self.slots = empty.long()
        self.prev = torch.full((self.B * self.W,), self.bos, dtype=torch.long, device=device)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(self.B)]
        self.done = torch.zeros(self.B, dtype=torch.bool, device=device)
        self.kth_best = torch.full((self.B,), NEG_INF, device=device)
        self.steps: list[StepRecord] = []
        self.node_ids = torch.zeros(self.B, self.W, dtype=torch.long, device=device)
        self.next_node = 1
        self.seed = None
        self.generator = None
        if settings.method == "sample":
            self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
            self.generator = torch.Generator(device=device).manual_seed(self.seed)

    # ------------------------------------------------------------ constraints
    def _banned(self, log_probs: torch.Tensor, t: int) -> torch.Tensor:
        """Remove tokens no method may pick at step t: (N, V) -> (N, V)."""
        s = self.settings
        lp = log_probs.clone()
        if s.ban_unk:
            lp[:, self.unk] = NEG_INF
        lp[:, self.bos] = NEG_INF
        lp[:, self.model.config.pad_id] = NEG_INF
        if t < s.min_length:
            lp[:, self.eos] = NEG_INF
        if s.no_repeat_ngram_size:
            self._block_ngrams(lp)
        # the last allowed step of a sentence may only end it
        at_cap = (self.caps - 1 <= t).repeat_interleave(self.W)
        if at_cap.any():
            lp[at_cap] = NEG_INF
            lp[at_cap, self.eos] = log_probs[at_cap, self.eos]
        return lp

    def _block_ngrams(self, lp: torch.Tensor) -> None:
        n = self.settings.no_repeat_ngram_size
        for row, seq in enumerate(self.seqs.view(self.B * self.W, -1).tolist()):
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
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidates for each sentence, best first: parents (B, C), tokens (B, C),
        cumulative raw scores (B, C)."""
        B, W, V = self.B, self.W, select_lp.size(-1)
        if self.settings.method == "beam":
            total = (self.scores.unsqueeze(-1) + select_lp.view(B, W, V)).view(B, W * V)
            scores, flat = total.topk(min(2 * W, W * V), dim=-1)
            return flat // V, flat % V, scores
        if self.settings.method == "greedy":
            tokens = select_lp.argmax(-1, keepdim=True)
        else:
            tokens = torch.multinomial(select_lp.exp(), 1, generator=self.generator)
        parents = torch.zeros_like(tokens)
        gained = raw.gather(1, tokens)
        gained = torch.where(select_lp.gather(1, tokens) > NEG_INF, gained, NEG_INF)
        return parents, tokens, self.scores + gained

    # ------------------------------------------------------------ main loop
    def run(self) -> list[SearchResult]:
        s = self.settings
        for t in range(int(self.caps.max())):
            raw, attn, self.state = self.model.step(self.prev, self.state)
            allowed = self._banned(raw, t)
            used = _sampling_distribution(allowed, s) if s.method == "sample" else \
                torch.log_softmax(allowed, dim=-1)
            forced = t < len(s.forced_prefix)
            select_lp = self._force(raw, t) if forced else (used if s.method == "sample" else allowed)
            parents, tokens, cand_scores = self._propose(select_lp, raw)
            self._advance(t, raw, used, attn, forced, parents, tokens, cand_scores)
            if bool(self.done.all()):
                break
        return [SearchResult(sorted(f, key=lambda h: -h.score)[: s.n_best], self.steps, self.seed)
                for f in self.finished]

    def _advance(self, t, raw, used, attn, forced, parents, tokens, cand_scores) -> None:
        B, W = self.B, self.W
        C = tokens.size(1)
        batch_rows = torch.arange(B, device=self.device).unsqueeze(1) * W
        rows = (batch_rows + parents).view(-1)
        cand_raw = raw[rows, tokens.view(-1)].view(B, C)
        cand_used = used[rows, tokens.view(-1)].view(B, C)
        valid = (cand_scores > NEG_INF) & ~self.done.unsqueeze(1)
        is_eos = tokens == self.eos
        rank = torch.arange(C, device=self.device).unsqueeze(0)
        finishing = is_eos & valid & (rank < W)
        # first W candidates that do not end the sentence stay alive
        order_key = (is_eos | ~valid).long() * C + rank
        chosen = order_key.topk(W, dim=1, largest=False).indices if C > W else \
            order_key.argsort(dim=1)[:, :W]
        alive_ok = valid.gather(1, chosen) & ~is_eos.gather(1, chosen)
        if self.record:
            self._record_step(raw, used, attn, forced, parents, tokens, cand_scores,
                              valid, finishing, chosen, alive_ok)
        if finishing.any():
            self._finish(t, finishing, parents, cand_scores, cand_raw, cand_used)
        new_parents = parents.gather(1, chosen)
        gather = new_parents.unsqueeze(-1).expand(-1, -1, self.seqs.size(-1))
        self.seqs = torch.cat([self.seqs.gather(1, gather), tokens.gather(1, chosen).unsqueeze(-1)], -1)
        self.raw_lp = torch.cat([self.raw_lp.gather(1, gather), cand_raw.gather(1, chosen).unsqueeze(-1)], -1)
        self.used_lp = torch.cat([self.used_lp.gather(1, gather), cand_used.gather(1, chosen).unsqueeze(-1)], -1)
        self.slots = torch.cat([self.slots.gather(1, gather), new_parents.unsqueeze(-1)], -1)
        self.scores = torch.where(alive_ok, cand_scores.gather(1, chosen), NEG_INF)
        self.prev = self.seqs[:, :, -1].reshape(-1)
        if W > 1 or bool((new_parents != 0).any()):
            self.state = self.state.select((batch_rows + new_parents).view(-1))
        self._update_done(t)

    def _finish(self, t, finishing, parents, cand_scores, cand_raw, cand_used) -> None:
        for b, c in finishing.nonzero().tolist():
            p = int(parents[b, c])
            raw_lps = self.raw_lp[b, p].tolist() + [float(cand_raw[b, c])]
            total = float(cand_scores[b, c])
            hyp = Hypothesis(
                tokens=self.seqs[b, p].tolist() + [self.eos],
                token_logprobs=raw_lps,
                used_logprobs=self.used_lp[b, p].tolist() + [float(cand_used[b, c])],
                slots=self.slots[b, p].tolist() + [p],
                logprob=total,
                score=total / length_normalizer(t + 1, self.settings),
            )
            self.finished[b].append(hyp)
            best = sorted((h.score for h in self.finished[b]), reverse=True)
            if len(best) >= self.W:
                self.kth_best[b] = best[self.W - 1]

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

    def _record_step(self, raw, used, attn, forced, parents, tokens, cand_scores,
                     valid, finishing, chosen, alive_ok) -> None:
        n = min(self.settings.record_top_n, raw.size(-1))
        raw_top = raw.topk(n, dim=-1)
        used_top = used.topk(n, dim=-1)
        record = StepRecord((raw_top.values, raw_top.indices), (used_top.values, used_top.indices),
                            _entropy(raw), _entropy(used), attn, forced)
        kept = torch.zeros_like(valid)
        kept.scatter_(1, chosen, alive_ok)
        parent_nodes = self.node_ids.gather(1, parents)
        status = torch.where(finishing, 2, torch.where(kept, 1, 0))
        new_ids = torch.zeros_like(self.node_ids)
        slot_of = {cand: slot for slot, cand in enumerate(chosen[0].tolist())}
        for c, (ok, parent, token, score, st) in enumerate(zip(
                valid[0].tolist(), parent_nodes[0].tolist(), tokens[0].tolist(),
                cand_scores[0].tolist(), status[0].tolist())):
            if not ok:
                continue
            node_id = self.next_node
            self.next_node += 1
            record.nodes.append({"id": node_id, "parent": parent, "token_id": token, "score": score,
                                 "status": ("pruned", "kept", "finished")[st]})
            if st == 1:
                new_ids[0, slot_of[c]] = node_id
        self.node_ids = new_ids
        self.steps.append(record)


def search(model: Seq2Seq, sources: list[list[int]], settings: DecodeSettings,
           record: bool = False) -> list[SearchResult]:
    """Decode a batch of source id lists; one SearchResult per source.

    ``record=True`` (one source only) keeps per-step distributions, attention and the
    search tree for a Trace.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _Search(model, sources, settings, record).run()
    finally:
        model.train(was_training)


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

