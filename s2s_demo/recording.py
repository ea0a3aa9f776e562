"""What a recorded search keeps of one sentence: per-step distributions, attention and the
search tree, turned into the best hypothesis' StepRecords and numbered tree nodes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .live import payloads

NEG_INF = float("-inf")


@dataclass
class StepRecord:
    """One step of the best hypothesis of a recorded search.

    ``model_top``/``top``: (values (n,) log-probs, ids (n,)) of the model's softmax and
    of the distribution the method used (the processors' output), at the beam row the best
    hypothesis came from; ``model_entropy``/``entropy``: their entropies; ``attention``:
    (S,) or None; ``cut_mass``: the model's probability mass on the tokens the method could
    not pick (banned, forced away, or removed by top-k / top-p); ``live``: what the page needs
    to redo sampling's chain at this step (``s2s_demo.live``), None where it was not kept;
    ``network_logprob``: the chosen token's log-prob before calibration (None where calibration
    is the identity or the rows were not kept).
    """

    model_top: tuple[torch.Tensor, torch.Tensor]
    top: tuple[torch.Tensor, torch.Tensor]
    model_entropy: float
    entropy: float
    attention: torch.Tensor | None
    forced: bool
    cut_mass: float = 0.0
    live: dict | None = None
    network_logprob: float | None = None


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """(..., V) normalised log-probs -> (...,) entropy in nats (0 * log 0 counts as 0)."""
    # softmax of log-probs is their exp, but its kernel runs ~1.4x faster than exp's on
    # decoding's rows (-inf and deep underflow included); 0 * -inf is NaN, which nansum skips
    return -torch.softmax(log_probs, dim=-1).mul_(log_probs).nansum(-1)


class Recorder:
    """Per-step distributions, attention and search-tree candidates of one sentence.

    A step only keeps references to tensors the search computed anyway; the top-n and
    entropies are computed when the search ends, for the best hypothesis' rows only, in
    one batched topk. Should the held distributions pass ``BUDGET`` floats (long outputs
    with wide beams), the held steps are summarised for all rows at once to free them.
    """

    BUDGET = 8_000_000

    def __init__(self, top_n: int, width: int, live_top_n: int = 0,
                 temperatures: tuple[float, ...] = (1.0,)) -> None:
        self.top_n, self.width = top_n, width
        self.live_top_n, self.temperatures = live_top_n, temperatures
        self.constrained: list[torch.Tensor | None] = []  # (W, V) per step, for the live payloads
        self.network: list[torch.Tensor | None] = []  # (W, V) logits per step, where calibrated
        self.pending: tuple[torch.Tensor | None, ...] = (None, None, None)
        self.hidden: list[torch.Tensor | None] = []  # (W, Hd) top-layer states per step
        self.encoding: torch.Tensor | None = None  # (2He,): the mean encoder output, set by the search
        self.held: list[tuple[torch.Tensor, torch.Tensor]] = []  # model_lp, used (W, V) per step
        self.summaries: list[tuple[torch.Tensor, ...]] = []      # per step, when over budget
        self.held_floats = 0
        self.attention: list[torch.Tensor | None] = []
        self.forced: list[bool] = []
        self.candidates: list[tuple[torch.Tensor, ...]] = []

    def add(self, model_lp, used, attn, forced: bool, candidates: tuple[torch.Tensor, ...]) -> None:
        """model_lp/used (W, V), attn (W, S) or None; candidates: parents, tokens, scores, valid,
        finishing (each (1, C)) and chosen, alive_ok (each (1, W))."""
        self.held.append((model_lp, used))
        self.constrained.append(self.pending[0])
        self.network.append(self.pending[1])
        self.hidden.append(self.pending[2])
        self.pending = (None, None, None)
        self.attention.append(attn)
        self.forced.append(forced)
        self.candidates.append(candidates)
        self.held_floats += 2 * model_lp.numel()
        if self.held_floats > self.BUDGET:
            self._summarise_held()

    def hold_step(self, constrained: torch.Tensor, network: torch.Tensor | None,
                  hidden: torch.Tensor | None = None) -> None:
        """The next step's scores after the constraints and its logits where calibration changes
        them (each (W, V) or None), and its rows' top-layer decoder states (W, Hd); only references are kept."""
        self.pending = (constrained if self.live_top_n else None, network, hidden)

    def path_states(self, slots: list[int]) -> torch.Tensor | None:
        """The top-layer decoder states (T, Hd) of the hypothesis whose token t came from row ``slots[t]``."""
        if not slots or any(self.hidden[t] is None for t in range(len(slots))):
            return None
        return torch.stack([self.hidden[t][slot] for t, slot in enumerate(slots)])

    def _summarise(self, raws: list[torch.Tensor], useds: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """k model and k used (..., V) rows -> top values, ids (2, k, ..., n), entropies (2, k, ...)
        and the model's mass on the tokens the used distribution excludes (k, ...)."""
        both = torch.stack(raws + useds)  # one copy of the rows: (2k, ..., V)
        both = both.view(2, len(raws), *both.shape[1:])
        top = both.topk(min(self.top_n, both.size(-1)), dim=-1)
        cut = both[0].exp().masked_fill(both[1] > NEG_INF, 0.0).sum(-1)
        return top.values, top.indices, entropy(both), cut

    def _summarise_held(self) -> None:
        raws, useds = zip(*self.held)
        values, ids, entropies, cut = self._summarise(list(raws), list(useds))  # (2, k, W, n)
        self.summaries.extend((values[:, i], ids[:, i], entropies[:, i], cut[i]) for i in range(len(raws)))
        self.held, self.held_floats = [], 0
        self.constrained = [None] * len(self.constrained)  # no live payloads for the summarised steps
        self.network = [None] * len(self.network)

    def path_steps(self, slots: list[int], tokens: list[int]) -> list[StepRecord]:
        """StepRecords of the hypothesis whose token t, ``tokens[t]``, came from beam row ``slots[t]``."""
        done = len(self.summaries)
        parts = [(v[:, slot], i[:, slot], e[:, slot], c[slot])
                 for (v, i, e, c), slot in zip(self.summaries, slots)]
        rest = slots[done:]
        if rest:
            model_lp = [self.held[t][0][slot] for t, slot in enumerate(rest)]  # k rows (V,)
            used = [self.held[t][1][slot] for t, slot in enumerate(rest)]
            values, ids, entropies, cut = self._summarise(model_lp, used)  # (2, k, n), (2, k), (k,)
            # unbind: one op for all steps' views instead of an index op per step
            parts.extend(zip(values.unbind(1), ids.unbind(1), entropies.unbind(1), cut.unbind(0)))
        records = []
        for t, ((values, ids, entropies, cut), slot) in enumerate(zip(parts, slots)):
            attn = self.attention[t]
            model_h, used_h = entropies.tolist()
            (model_values, used_values), (model_ids, used_ids) = values, ids
            records.append(StepRecord((model_values, model_ids), (used_values, used_ids), model_h,
                                      used_h, attn[slot] if attn is not None else None,
                                      self.forced[t], float(cut)))
        self._add_live(records, slots, tokens)
        self._add_network(records, slots, tokens)
        return records

    def _add_network(self, records: list[StepRecord], slots: list[int], tokens: list[int]) -> None:
        """Each step's chosen token's log-prob before calibration, from the held logits of its row
        (one softmax over the path's k rows)."""
        steps = [t for t in range(len(records)) if self.network[t] is not None]
        if not steps:
            return
        logits = torch.stack([self.network[t][slots[t]] for t in steps])  # (k, V)
        chosen = torch.tensor([[tokens[t]] for t in steps])  # (k, 1)
        values = torch.log_softmax(logits, dim=-1).gather(1, chosen)[:, 0].tolist()
        for t, value in zip(steps, values):
            records[t].network_logprob = value

    def _add_live(self, records: list[StepRecord], slots: list[int], tokens: list[int]) -> None:
        """The live payloads of the steps, while their constrained rows are all held (a
        search so long and wide that it passed the budget gets none)."""
        steps = range(len(records))
        if not records or any(self.constrained[t] is None for t in steps):
            return
        rows = torch.stack([self.constrained[t][slots[t]] for t in steps])
        for record, payload in zip(records, payloads(rows, tokens[: len(records)], self.live_top_n,
                                                     self.temperatures)):
            record.live = payload

    def tree(self, slots: list[int], last_candidate: int | None) -> tuple[list[dict], list[int]]:
        """The search tree and the best hypothesis' path through it.

        Every valid candidate becomes a node (node 0 is the start) linked to its parent's
        node. ``slots`` (the beam rows the best hypothesis' tokens came from) and
        ``last_candidate`` (the candidate index of its EOS at the last step; None when no
        hypothesis finished) give the path: node ids from 0 to that EOS's node.
        """
        if not self.candidates:
            return [], []
        parents, tokens, scores, valid, finishing, chosen, alive_ok = (
            torch.cat(col).tolist() for col in zip(*self.candidates))
        nodes, node_of_slot, node_of_candidate, next_id = [], [0] * self.width, {}, 1
        for t in range(len(parents)):
            slot_of = {c: slot for slot, (c, ok) in enumerate(zip(chosen[t], alive_ok[t])) if ok}
            new_nodes = [0] * self.width
            for c, ok in enumerate(valid[t]):
                if not ok:
                    continue
                status = "finished" if finishing[t][c] else "kept" if c in slot_of else "pruned"
                nodes.append({"id": next_id, "parent": node_of_slot[parents[t][c]], "step": t,
                              "token_id": tokens[t][c], "score": scores[t][c], "status": status})
                node_of_candidate[t, c] = next_id
                if c in slot_of:
                    new_nodes[slot_of[c]] = next_id
                next_id += 1
            node_of_slot = new_nodes
        if last_candidate is None:
            return nodes, []
        # token t < T was kept at step t into the row token t + 1 came from
        path = [node_of_candidate[t, chosen[t][slots[t + 1]]] for t in range(len(slots) - 1)]
        return nodes, [0] + path + [node_of_candidate[len(slots) - 1, last_candidate]]
