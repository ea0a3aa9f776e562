"""Nearest training examples: which training captions a sentence, and each step of its translation,
are closest to in the model's own state space (as Seq2Seq-Vis shows them).

Two indexes per model folder, built by ``python -m train.neighbours`` from the training pairs
(teacher forcing, the float32 weights):

- **sentences**: each training source's encoding, the mean of the encoder's outputs over its
  pieces (2He);
- **decoder states**: the decoder's top-layer hidden state (Hd) at every target position of a
  subset of those pairs, the state from which the model chose that position's token.

Both are reduced by PCA (fitted on the training vectors, so the axes are the same for every
sentence: the trajectory view's 2-D plane is the first two) and stored as float16 in
``neighbours.safetensors``; the captions are in ``neighbours.json.gz``. A query is a cosine
similarity against every row, one matrix product. ``similarity_floor``: the 1st percentile, over
validation sentences, of the similarity to their nearest training sentence; ``state_floor``: the
1st percentile of the mean, over the decoder states of a validation sentence's translation (the
model's default decoding), of the similarity to the nearest training state. A translation whose
states fall below it is far from anything the model was trained on.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .inference import make_linear, unsupported_reason

INDEX_FILE = "neighbours.safetensors"
TEXTS_FILE = "neighbours.json.gz"
BACKGROUND_POINTS = 600  # training states drawn behind a trajectory (SVG markers: each costs drawing time)
log = logging.getLogger(__name__)


def encode_states(model, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """src (B, S) padded, lengths (B,), tgt_in (B, T) starting with BOS -> sentence encodings
    (B, 2He), the mean encoder output over real pieces, and the decoder's top-layer hidden
    states (B, T, Hd), position t having read tgt_in[:, t] (teacher forcing). ``model``: a
    ``Seq2Seq`` (the index is built with its float32 weights) or an ``InferenceEngine`` (the
    page's query, in the decoding arithmetic)."""
    with torch.inference_mode():
        state = model.encode(src, lengths)
        mask = state.src_mask.unsqueeze(-1).float()
        sentence = (state.memory * mask).sum(1) / mask.sum(1)
        return sentence, model.decoder_states(tgt_in, state)


@dataclass
class Projection:
    """A PCA: ``mean`` (D,), ``components`` (k, D), rows orthonormal, by explained variance."""

    mean: torch.Tensor
    components: torch.Tensor

    @classmethod
    def fit(cls, vectors: torch.Tensor, dims: int) -> "Projection":
        """Fit on vectors (N, D) -> the first ``dims`` principal directions."""
        mean = vectors.mean(0)
        _, _, v = torch.linalg.svd(vectors - mean, full_matrices=False)
        return cls(mean, v[:dims].contiguous())

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, k)."""
        return (vectors - self.mean) @ self.components.T


def _unit(rows: torch.Tensor) -> torch.Tensor:
    return rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-8)


class _Cosines:
    """Cosine similarities of queries to fixed rows (M, k): queries (T, k) -> (T, M).

    The rows are multiplied as they are stored (float16 values) in fbgemm's float16 product, with
    float32 queries and sums, and the products divided by the rows' norms: the same figures as
    float32 unit rows to ~2e-7, reading half the bytes (73,415 en-de training states: 2.0 -> 1.1 ms a
    translation on one thread, cache cold). Where fbgemm does not run, float32."""

    def __init__(self, rows: torch.Tensor) -> None:
        arithmetic = "float16" if unsupported_reason("float16") is None else "float32"
        self.dots = make_linear(rows, None, arithmetic)
        self.inverse_norms = 1.0 / rows.norm(dim=-1).clamp_min(1e-8)  # (M,)

    def __call__(self, queries: torch.Tensor) -> torch.Tensor:
        return self.dots(_unit(queries)).mul_(self.inverse_norms)


class NeighbourIndex:
    """A model folder's training-example indexes (see the module docstring)."""

    def __init__(self, tensors: dict[str, torch.Tensor], texts: dict) -> None:
        self.sentence_projection = Projection(tensors["sentence_mean"].float(), tensors["sentence_components"].float())
        self.state_projection = Projection(tensors["state_mean"].float(), tensors["state_components"].float())
        self.sentences = _unit(tensors["sentence_vectors"].float())  # (N, k) unit rows
        self.state_points = tensors["state_vectors"].float()  # (M, k), projected, not normalised
        self.state_cosines = _Cosines(self.state_points)
        self.state_sentence = tensors["state_sentence"].long()  # (M,) row of sources/targets
        self.state_position = tensors["state_position"].long()  # (M,) target position
        self.sources, self.targets = texts["sources"], texts["targets"]
        self.similarity_floor = float(texts["similarity_floor"])
        self.state_floor = float(texts["state_floor"])
        self.info = texts.get("info", {})

    @classmethod
    def load(cls, folder: Path | None) -> "NeighbourIndex | None":
        """The folder's index, or None when it has none or it cannot be read (logged)."""
        if folder is None or not (folder / INDEX_FILE).is_file():
            return None
        try:
            with gzip.open(folder / TEXTS_FILE, "rt", encoding="utf-8") as f:
                return cls(load_file(str(folder / INDEX_FILE)), json.load(f))
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
            log.warning("%s: the neighbour index cannot be read (%s); the page shows none", folder, err)
            return None

    def save(self, folder: Path) -> None:
        half = {"sentence_vectors": self.sentences, "state_vectors": self.state_points}
        save_file({"sentence_mean": self.sentence_projection.mean, "sentence_components": self.sentence_projection.components,
                   "state_mean": self.state_projection.mean, "state_components": self.state_projection.components,
                   **{k: v.half().contiguous() for k, v in half.items()},
                   "state_sentence": self.state_sentence.int(), "state_position": self.state_position.short()},
                  str(folder / INDEX_FILE))
        with gzip.open(folder / TEXTS_FILE, "wt", encoding="utf-8") as f:
            json.dump({"sources": self.sources, "targets": self.targets, "similarity_floor": self.similarity_floor,
                       "state_floor": self.state_floor, "info": self.info}, f, ensure_ascii=False)

    def nearest_sentences(self, encoding: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
        """A sentence encoding (2He,) -> the k nearest training sentences' rows and similarities."""
        similarity = self.sentences @ _unit(self.sentence_projection(encoding[None]))[0]
        top = similarity.topk(min(k, similarity.numel()))
        return top.indices.tolist(), top.values.tolist()

    def nearest_states(self, states: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder states (T, Hd) -> rows (T, k) of the nearest training states, and similarities (T, k)."""
        similarity = self.state_cosines(self.state_projection(states))  # (T, M)
        top = similarity.topk(min(k, similarity.size(1)), dim=1)
        return top.indices, top.values

    def plane(self, states: torch.Tensor) -> torch.Tensor:
        """Decoder states (T, Hd) -> their first two principal coordinates (T, 2)."""
        return self.state_projection(states)[:, :2]

    def background(self, count: int = BACKGROUND_POINTS) -> torch.Tensor:
        """A fixed sample of ``count`` training states in the plane (count, 2)."""
        rows = torch.randperm(len(self.state_points), generator=torch.Generator().manual_seed(0))[:count]
        return self.state_points[rows, :2]

    def similarities(self, encoding: torch.Tensor, states: torch.Tensor) -> dict:
        """How near a translation is to the training data (``verdict``) from its sentence encoding
        (2He,) and its decoder states (T, Hd)."""
        sentence = float((self.sentences @ _unit(self.sentence_projection(encoding[None]))[0]).max())
        # the largest similarity per state: a max, cheaper than topk over every training state
        state = float(self.state_cosines(self.state_projection(states)).amax(1).mean()) if len(states) else None
        return self.verdict(sentence, state)

    def verdict(self, sentence: float, state: float | None) -> dict:
        """``sentence``: the similarity to the nearest training sentence; ``state``: the mean over
        the decoder states of each one's to the nearest training state -> both, the floors, and
        ``far`` (the states below their floor)."""
        # the states decide: the sentence encoding's similarity separates chat from captions poorly
        far = state < self.state_floor if state is not None else sentence < self.similarity_floor
        return {"sentence": round(sentence, 4), "states": None if state is None else round(state, 4),
                "sentence_floor": self.similarity_floor, "state_floor": self.state_floor, "far": far}
