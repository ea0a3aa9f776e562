"""Text + DecodeSettings -> Trace: input checks, tokenisation and decoding in one place."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import torch

from . import attribution, familiarity
from .neighbours import NeighbourIndex, encode_states
from . import internals as lstm_internals
from .decoding import Hypothesis, length_normalizer, search, teacher_forced_log_probs, translate_ids
from .hub import resolve
from .inference import ARITHMETIC_CHOICES, InferenceEngine, UnsupportedArithmetic
from .model import Seq2Seq
from .model_folder import CARD_FILE, ModelLoadError, load_config, load_model, load_tokenizer, read_front_matter
from .settings import DecodeSettings, SettingsError, check_int
from .tokenizer import TokenizerPair, normalize_text
from .trace import Trace, build_trace

MAX_CHARS = 1000
MAX_SOURCE_TOKENS = 200
_UNREAD = object()  # a lazily read attribute not read yet


def load(ref: str | Path, revision: str | None = None, device: str = "cpu", arithmetic: str = "float32",
         inference_dtype: str | None = None, lazy: bool = False) -> "Translator":
    """A ready :class:`Translator` from a local model folder or a Hub repo id (both through
    :meth:`Translator.from_folder`, so a shipped folder and a downloaded snapshot load alike).

    ``arithmetic``: what decoding multiplies the weights in (see :mod:`s2s_demo.inference`):
    "float32" (exact), "bfloat16", "float16", "int8", or "auto" (the fastest this CPU runs
    within 0.01 of float32's probabilities). One the CPU cannot run is a
    :class:`ModelLoadError` naming the missing CPU feature. ``inference_dtype`` is its old
    name, still accepted (deprecated). ``lazy``: the weights on first use (see :class:`Translator`).
    """
    if inference_dtype is not None:
        arithmetic = inference_dtype
    return Translator.from_folder(resolve(ref, revision), device, arithmetic, ref=str(ref), revision=revision,
                                  lazy=lazy)


class InputError(ValueError):
    """Text that cannot be translated; the message is meant for the person who typed it."""


class BatchTranslations(list):
    """``translate_batch``'s translations, one string per input text ("" where it could not
    translate one), and ``errors``: input index -> why that text was not translated."""

    def __init__(self, translations: list[str], errors: dict[int, str]) -> None:
        super().__init__(translations)
        self.errors = errors


class Translator:
    """A model folder: the model, its decoding engine, its tokenizers and its card's metadata.
    ``engine`` defaults to the model's weights in exact float32.

    Opened with ``from_folder(..., lazy=True)``, the config, card and tokenizers are read at
    once and the weights (and the neighbour index) on first use of ``model`` or ``engine``,
    or by ``load()``: a server can show its page before every model is in memory.
    """

    def __init__(self, model: Seq2Seq | None, tokenizer: TokenizerPair, folder: Path | None = None,
                 ref: str | None = None, revision: str | None = None,
                 engine: InferenceEngine | None = None, loader=None, config=None) -> None:
        if model is None and loader is None:
            raise ValueError("a Translator needs a model or a loader of one")
        self._model, self._engine, self._loader = model, engine, loader
        if model is not None and engine is None:
            self._engine = InferenceEngine(model, "float32")
        self.config = model.config if model is not None else config
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        self.folder, self.ref, self.revision = folder, ref, revision
        self.card = read_card_metadata(folder) if folder else {}
        self.name = self.card.get("model_name") or (folder.name if folder else "model")
        self.familiarity = familiarity.Thresholds.from_dict(read_results(folder).get("familiarity"))
        self._neighbours = _UNREAD

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> "Translator":
        """Read the weights and the neighbour index now, if they are not yet in memory (one
        thread at a time); returns self. A server warming its models in the background keeps
        both off its first requests."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    model, engine = self._loader()
                    if self._neighbours is _UNREAD:
                        self._neighbours = NeighbourIndex.load(self.folder)
                    self._engine, self._model = engine, model
        return self

    @property
    def model(self) -> Seq2Seq:
        self.load()
        return self._model

    @property
    def engine(self) -> InferenceEngine:
        self.load()
        return self._engine

    @engine.setter
    def engine(self, engine: InferenceEngine) -> None:
        self._engine = engine

    @property
    def neighbours(self) -> NeighbourIndex | None:
        """The nearest-neighbour index of the folder (read on first use), or None."""
        if self._neighbours is _UNREAD:
            self._neighbours = NeighbourIndex.load(self.folder)
        return self._neighbours

    @neighbours.setter
    def neighbours(self, index: NeighbourIndex | None) -> None:
        self._neighbours = index

    @classmethod
    def from_folder(cls, folder: Path, device: str = "cpu", arithmetic: str = "float32",
                    ref: str | None = None, revision: str | None = None, lazy: bool = False) -> "Translator":
        """The Translator of a local model folder: config validated before any weight is read,
        weights loaded strictly from safetensors, tokenizers checked against the config.
        ``arithmetic`` as in :func:`load`; ``lazy``: the weights on first use (see the class)."""
        if arithmetic not in ARITHMETIC_CHOICES:
            raise ValueError(f"arithmetic {arithmetic!r} is not one of {', '.join(ARITHMETIC_CHOICES)}")
        folder = Path(folder)
        config = load_config(folder)
        tokenizer = load_tokenizer(folder, config)

        def loader():
            model = load_model(folder, device)
            try:
                return model, InferenceEngine(model, arithmetic)
            except UnsupportedArithmetic as err:
                raise ModelLoadError(str(err)) from err

        translator = cls(None, tokenizer, folder=folder, ref=str(ref if ref is not None else folder),
                         revision=revision, loader=loader, config=config)
        return translator if lazy else translator.load()

    @property
    def pair(self) -> str:
        return f"{self.config.src_lang}→{self.config.tgt_lang}"

    @property
    def description(self) -> str:
        return self.card.get("description") or f"{self.pair} LSTM translator"

    def default_settings(self) -> DecodeSettings:
        """Beam search with the length penalty tuned on validation data (from the card)."""
        tuned = self.card.get("decoding") or {}
        try:
            return DecodeSettings(**{k: v for k, v in tuned.items() if k in ("length_penalty", "beam_size")})
        except (SettingsError, TypeError):
            return DecodeSettings()

    def source_ids(self, text) -> list[int]:
        """Check and encode a visitor's text; raises InputError with a readable reason."""
        if not isinstance(text, str):
            raise InputError("The text must be a string.")
        if len(text) > MAX_CHARS:
            raise InputError(f"The text has {len(text):,} characters; the limit is {MAX_CHARS:,}.")
        clean = normalize_text(text)
        if not clean:
            raise InputError("Type a sentence to translate (the text is empty).")
        ids = self.tokenizer.encode_source(clean)
        if len(ids) > MAX_SOURCE_TOKENS:
            raise InputError(f"The text has {len(ids)} tokens; the limit is {MAX_SOURCE_TOKENS}. "
                             "Split it into shorter sentences.")
        return ids

    def resolve_prefix(self, settings: DecodeSettings) -> DecodeSettings:
        """Forced-prefix pieces -> target ids, each checked against the vocabulary."""
        ids = []
        vocab = self.tokenizer.tgt_vocab_size
        for item in settings.forced_prefix:
            if isinstance(item, str):
                token = self.tokenizer.target_id(item)
                if token == self.config.unk_id and item != self.tokenizer.target_pieces([token])[0]:
                    raise SettingsError("forced_prefix", f"{item!r} is not a target piece of this model")
            elif isinstance(item, int) and not isinstance(item, bool):
                token = item
            else:
                raise SettingsError("forced_prefix", f"items must be pieces or ids, got {item!r}")
            if not 0 <= token < vocab:
                raise SettingsError("forced_prefix", f"token id {token} is outside [0, {vocab})")
            ids.append(token)
        return settings.replace(forced_prefix=tuple(ids))

    def _checked(self, text, settings: DecodeSettings | None) -> tuple[DecodeSettings, list[int]]:
        """``translate``'s input checks for one text: the settings (default: the model's) with
        the forced prefix resolved, and the source ids; raises InputError or SettingsError."""
        settings = self.resolve_prefix(settings or self.default_settings())
        ids = self.source_ids(text)
        self.check_prefix(settings, ids)
        return settings, ids

    def check_prefix(self, settings: DecodeSettings, ids: list[int]) -> None:
        """A forced prefix must end before the output's length cap for a source of ``ids``."""
        cap = settings.length_cap(len(ids))
        if len(settings.forced_prefix) >= cap:  # the search would stop before the prefix ends
            raise SettingsError("forced_prefix", f"has {len(settings.forced_prefix)} tokens, but this output may "
                                f"have at most {cap - 1} before its end (max_length {settings.max_length}, "
                                f"{len(ids)} source pieces)")

    def translate(self, text: str, settings: DecodeSettings | None = None, internals: bool = False) -> Trace:
        """Decode one sentence and record everything the demo shows; ``internals``: also the
        LSTM's gates, cells and bridge along the best hypothesis (``s2s_demo.internals``)."""
        start = time.perf_counter()
        settings, ids = self._checked(text, settings)
        cap = settings.length_cap(len(ids))
        result = search(self.engine, [ids], settings, record=True)[0]
        timings = {"search_ms": round((time.perf_counter() - start) * 1000, 2)}
        recorded = None
        if internals and result.hypotheses:
            internals_start = time.perf_counter()
            recorded = lstm_internals.record(self.model, ids, result.hypotheses[0].tokens)
            timings["internals_ms"] = round((time.perf_counter() - internals_start) * 1000, 2)
        trace = build_trace(result, self.tokenizer, model_name=self.name, source=text, source_ids=ids,
                            settings=settings.to_dict(), timings_ms=timings, length_cap=cap,
                            arithmetic=self.engine.arithmetic,
                            familiarity=self._familiarity(text, ids, settings, result), internals=recorded,
                            calibration=self.model.calibration.to_dict())
        timings["total_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return trace

    def _familiarity(self, text: str, ids: list[int], settings: DecodeSettings, result) -> dict:
        """How much the sentence is like the training data (``s2s_demo.familiarity``); the
        translation's log-probs count only when the model chose it (not sampled, not forced)."""
        judged = settings.method != "sample" and not settings.forced_prefix and result.hypotheses
        nearest = None
        if self.neighbours is not None and judged:
            # the states the search went through (a recorded search keeps them): no second pass
            states = (result.encoding, result.states) if result.states is not None else \
                self._states(ids, result.hypotheses[0].tokens)
            nearest = self.neighbours.similarities(*states)
        measured = familiarity.measure(self.tokenizer, ids, result.hypotheses[0].token_logprobs if judged else None,
                                       self.familiarity, nearest)
        if measured["unknown_pieces"]:
            # which characters: the page marks them in the source, where they happen
            measured["unknown_characters"] = self.tokenizer.unknown_source_characters(normalize_text(text))
        return measured

    def _explained(self, ids: list[int], target_ids: list[int] | None, settings: DecodeSettings) -> list[int]:
        """The translation an explainer view explains: ``target_ids`` (checked to be target ids of
        this model), or else the best hypothesis of ``ids`` under ``settings``."""
        if target_ids is None:
            return search(self.engine, [ids], settings)[0].hypotheses[0].tokens
        if not target_ids or not all(isinstance(t, int) and 0 <= t < self.tokenizer.tgt_vocab_size
                                     for t in target_ids):
            raise InputError("The tokens to explain must be target ids of this model.")
        return list(target_ids)

    def _states(self, ids: list[int], target_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence encoding (2He,) of ``ids`` and the decoder states (T, Hd) along
        ``target_ids`` (EOS last), through the decoding engine (``neighbours.encode_states``)."""
        tgt_in = torch.tensor([[self.config.bos_id] + list(target_ids[:-1])])
        encoding, states = encode_states(self.engine, torch.tensor([ids]), torch.tensor([len(ids)]), tgt_in)
        return encoding[0], states[0]

    def nearest_examples(self, text: str, target_ids: list[int] | None = None,
                         settings: DecodeSettings | None = None, k: int = 5) -> dict:
        """The training examples nearest to ``text`` and to each step of its translation
        (``target_ids``, EOS last, or else the best hypothesis under ``settings``), in the model's
        own states (``s2s_demo.neighbours``); raises InputError when the model has no index.

        Returns ``sentences``: the k nearest training pairs (source, target, similarity);
        ``steps``: per target token, the k training states nearest to the decoder's, each with its
        pair, the target ``pieces`` (EOS last) and the ``position`` of the token chosen from it;
        ``trajectory``: the decoder states in the index's PCA plane, ``neighbours`` the planar
        points of each step's nearest states, ``background`` a fixed sample of training states;
        ``similarity``: as ``NeighbourIndex.similarities``; ``ms``.
        """
        start = time.perf_counter()
        check_int("k", k, 1, 20)
        if self.neighbours is None:
            raise InputError(f"{self.name} has no index of training examples (python -m train.neighbours builds one).")
        settings, ids = self._checked(text, settings)
        target_ids = self._explained(ids, target_ids, settings)
        index = self.neighbours
        encoding, states = self._states(ids, target_ids)
        rows, similarity = index.nearest_sentences(encoding, k)
        state_rows, state_similarity = index.nearest_states(states, k)
        eos = self.config.eos_id
        pieces = {}  # training sentence -> its target pieces, EOS last

        def example(row: int, sim: float) -> dict:
            sentence = int(index.state_sentence[row])
            if sentence not in pieces:
                pieces[sentence] = self.tokenizer.target_pieces(self.tokenizer.encode_target(index.targets[sentence])
                                                                + [eos])
            return {"source": index.sources[sentence], "target": index.targets[sentence],
                    "pieces": pieces[sentence], "position": int(index.state_position[row]),
                    "similarity": round(sim, 4)}

        return {"model": self.name, "source": text, "token_ids": list(target_ids),
                "target_pieces": self.tokenizer.target_pieces(target_ids),
                "translation": self.tokenizer.decode_target(target_ids),
                "sentences": [{"source": index.sources[r], "target": index.targets[r], "similarity": round(s, 4)}
                              for r, s in zip(rows, similarity)],
                "steps": [[example(r, s) for r, s in zip(rr.tolist(), ss.tolist())]
                          for rr, ss in zip(state_rows, state_similarity)],
                "trajectory": {"path": _rounded(index.plane(states)),
                               "neighbours": _rounded(index.state_points[state_rows][..., :2]),
                               "background": _rounded(index.background())},
                # the nearest ones' similarities are the maxima ``similarities`` would compute again
                "similarity": index.verdict(similarity[0], float(state_similarity[:, 0].mean())),
                "ms": round((time.perf_counter() - start) * 1000, 1)}

    def best_hypothesis(self, text: str, settings: DecodeSettings | None = None) -> tuple[Hypothesis, float]:
        """The best hypothesis of ``text`` under ``translate``'s checks, without a trace, and
        the milliseconds its search took."""
        start = time.perf_counter()
        settings, ids = self._checked(text, settings)
        return search(self.engine, [ids], settings)[0].hypotheses[0], (time.perf_counter() - start) * 1000

    def attribute(self, text: str, target_ids: list[int] | None = None, settings: DecodeSettings | None = None,
                  steps: int = attribution.DEFAULT_STEPS) -> dict:
        """Which source pieces each token of a translation of ``text`` depends on
        (``s2s_demo.attribution``): of ``target_ids`` (EOS last), or else of the best hypothesis
        under ``settings`` (default: the model's tuned beam search). Adds the source and target
        pieces, the translation and ``total_ms`` (search included) to ``attribution.attribute``'s dict."""
        start = time.perf_counter()
        check_int("steps", steps, 1, attribution.MAX_STEPS)
        settings, ids = self._checked(text, settings)
        target_ids = self._explained(ids, target_ids, settings)
        result = attribution.attribute(self.model, ids, target_ids, steps)
        result.update(model=self.name, source=text, source_pieces=self.tokenizer.source_pieces(ids),
                      target_pieces=self.tokenizer.target_pieces(target_ids), token_ids=list(target_ids),
                      translation=self.tokenizer.decode_target(target_ids),
                      total_ms=round((time.perf_counter() - start) * 1000, 1))
        return result

    def score_reference(self, text: str, reference: str, settings: DecodeSettings | None = None) -> dict:
        """How the model rates a given translation of ``text``, token by token (teacher forcing
        through the decoding engine: the numbers the page shows for its own outputs).

        Returns the reference's pieces and ids (EOS last), each token's model probability and
        rank at its step (1 = the model's own first choice), the total log-prob and the score
        length-normalised as ``settings`` (default: the model's tuned beam search) normalise,
        the model's best translation under those settings with its log-prob and score, and
        ``first_difference``: the first step whose reference token is not the model's choice
        (None when the model would have written the reference itself).
        """
        settings, ids = self._checked(text, settings)
        clean = normalize_text(reference) if isinstance(reference, str) else ""
        if not clean:
            raise InputError("Type a reference translation to score (it is empty).")
        if len(reference) > MAX_CHARS:
            raise InputError(f"The reference has {len(reference):,} characters; the limit is {MAX_CHARS:,}.")
        target = self.tokenizer.encode_target(clean) + [self.config.eos_id]
        log_probs = teacher_forced_log_probs(self.engine, ids, target)  # (T, V)
        chosen = log_probs.gather(1, torch.tensor(target)[:, None])[:, 0]  # (T,)
        ranks = ((log_probs > chosen[:, None]).sum(-1) + 1).tolist()
        logprob = float(chosen.sum())
        best = search(self.engine, [ids], settings)[0].hypotheses[0]  # the source encoded once
        return {"model": self.name, "source": text, "reference": reference,
                "pieces": self.tokenizer.target_pieces(target), "token_ids": target,
                "probs": chosen.exp().tolist(), "ranks": ranks, "logprob": logprob,
                "score": logprob / length_normalizer(len(target), settings),
                "first_difference": next((t for t, rank in enumerate(ranks) if rank > 1), None),
                "best_translation": self.tokenizer.decode_target(best.tokens), "best_logprob": best.logprob,
                "best_score": best.score, "settings": settings.to_dict()}

    def translate_batch(self, texts: list[str], settings: DecodeSettings | None = None,
                        batch_size: int = 64) -> BatchTranslations:
        """Best translation of each text (no traces), under ``translate``'s input checks: a text
        it would refuse gets "" and its reason in ``.errors``; an empty text gets "" quietly
        (so that blank lines of a file stay blank)."""
        settings = self.resolve_prefix(settings or self.default_settings())
        todo, sources, errors = [], [], {}
        for i, text in enumerate(texts):
            if isinstance(text, str) and not normalize_text(text):
                continue
            try:
                _, ids = self._checked(text, settings)  # the prefix is resolved already: ids pass through
            except (InputError, SettingsError) as err:
                errors[i] = str(err)
                continue
            todo.append(i)
            sources.append(ids)
        outputs = [""] * len(texts)
        for i, ids in zip(todo, translate_ids(self.engine, sources, settings, batch_size)):
            outputs[i] = self.tokenizer.decode_target(ids)
        return BatchTranslations(outputs, errors)


def _rounded(points: torch.Tensor) -> list:
    return torch.round(points, decimals=4).tolist()


def read_results(folder: Path | None) -> dict:
    """A model folder's results.json (train.publish, train.calibration), {} when absent or unreadable."""
    path = folder / "results.json" if folder else None
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_card_metadata(folder: Path) -> dict:
    """The YAML front matter of a model card (README.md), {} when there is none."""
    card = folder / CARD_FILE
    return read_front_matter(card)[0] if card.is_file() else {}
