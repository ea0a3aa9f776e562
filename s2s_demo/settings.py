"""Decoding settings, validated on construction with errors that name the field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

METHODS = ("greedy", "sample", "beam")
LENGTH_PENALTY_TYPES = ("gnmt", "average")
MAX_BEAM_SIZE = 16
MAX_LENGTH_LIMIT = 512
# The allowed range of each numeric setting, checked here and used as the page's slider limits.
# Temperatures beyond 5 spread a step's mass almost evenly over the vocabulary: nothing to see.
BOUNDS = {
    "temperature": (0.05, 5.0), "top_k": (0, 1_000_000), "top_p": (0.01, 1.0),
    "beam_size": (1, MAX_BEAM_SIZE), "length_penalty": (0.0, 5.0), "max_length": (1, MAX_LENGTH_LIMIT),
    "min_length": (0, MAX_LENGTH_LIMIT), "max_length_ratio": (0.1, 10.0), "no_repeat_ngram_size": (0, 10),
    "record_top_n": (1, 100), "seed": (0, 2**63 - 1),
    # Hugging Face's other samplers; 0 (1 for typical_p and the penalty) turns each off
    "min_p": (0.0, 1.0), "typical_p": (0.01, 1.0), "epsilon_cutoff": (0.0, 0.5), "eta_cutoff": (0.0, 0.5),
    "repetition_penalty": (0.5, 5.0), "live_top_n": (16, 1024),
}


# The page's top-k when a visitor picks sampling (the API's default stays 0, the model's own
# distribution). The shipped models (label smoothing 0.2) leave a fifth of every step's mass
# flat over the vocabulary: at temperature 1, 86-88% of val samples draw a token of p < 0.001,
# 27-34% even at top-p 0.5, but 0-2% at top-k 10 (train.calibration's junk_samples_page).
PAGE_SAMPLING_TOP_K = 10


class SettingsError(ValueError):
    """A decoding setting outside its allowed range; ``field`` names the setting."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def check_int(name: str, value, low: int, high: int, note: str = "") -> None:
    """Raise SettingsError naming ``name`` unless ``value`` is an int (not a bool) in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        extra = f" ({note})" if note else ""
        raise SettingsError(name, f"must be an integer in [{low}, {high}]{extra}, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode. Every field is checked in ``__post_init__``.

    ``length_penalty`` is the exponent alpha of the length normaliser: GNMT's
    ``((5 + len) / 6) ** alpha`` or, with ``length_penalty_type="average"``, ``len ** alpha``
    (alpha 1 = average log-prob); 0 turns normalisation off. The output length is capped at
    ``min(max_length, max_length_ratio * source_length + 10)`` tokens.
    Sampling's chain has Hugging Face's names, semantics and order (``s2s_demo.processors``):
    ``repetition_penalty``, ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``,
    ``epsilon_cutoff``, ``eta_cutoff``.
    ``forced_prefix`` holds target token ids (or pieces, resolved by the translator) that
    the first steps must produce whatever the method.
    """

    method: str = "beam"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 0.6
    length_penalty_type: str = "gnmt"
    min_length: int = 0
    max_length: int = 100
    max_length_ratio: float = 2.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None
    min_p: float = 0.0
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    repetition_penalty: float = 1.0
    forced_prefix: tuple = field(default_factory=tuple)
    ban_unk: bool = True
    record_top_n: int = 10
    # tokens per step the trace carries with their scores, so the page can redo sampling's chain
    live_top_n: int = 256

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingsError("method", f"must be one of {METHODS}, got {self.method!r}")
        self._check_number("temperature")
        self._check_int("top_k", note="0 turns it off")
        self._check_number("top_p")
        self._check_int("beam_size")
        self._check_int("n_best", 1, self.beam_size, "n_best must not exceed beam_size")
        self._check_number("length_penalty", note="0 turns it off")
        if self.length_penalty_type not in LENGTH_PENALTY_TYPES:
            raise SettingsError("length_penalty_type", f"must be one of {LENGTH_PENALTY_TYPES}")
        self._check_int("max_length")
        self._check_int("min_length", 0, self.max_length, "must not exceed max_length")
        self._check_number("max_length_ratio")
        self._check_int("no_repeat_ngram_size", note="0 turns it off")
        if self.seed is not None:
            self._check_int("seed")
        self._check_int("record_top_n")
        self._check_int("live_top_n")
        for name in ("min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty"):
            self._check_number(name)
        if isinstance(self.forced_prefix, (str, bytes)) or not isinstance(self.forced_prefix, (list, tuple)):
            raise SettingsError("forced_prefix", "must be a list of token ids or pieces")
        object.__setattr__(self, "forced_prefix", tuple(self.forced_prefix))
        if len(self.forced_prefix) >= self.max_length:
            raise SettingsError("forced_prefix", "must be shorter than max_length")

    def _check_number(self, name: str, note: str = "") -> None:
        low, high = BOUNDS[name]
        value = getattr(self, name)
        if not _is_number(value) or not low <= value <= high:
            extra = f" ({note})" if note else ""
            raise SettingsError(name, f"must be a number in [{low}, {high}]{extra}, got {value!r}")

    def _check_int(self, name: str, low: int | None = None, high: int | None = None, note: str = "") -> None:
        if low is None:
            low, high = BOUNDS[name]
        value = getattr(self, name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
            object.__setattr__(self, name, value)
        check_int(name, value, low, high, note)

    @property
    def width(self) -> int:
        """Rows kept per sentence during search: the beam size for beam search, else 1."""
        return self.beam_size if self.method == "beam" else 1

    def length_cap(self, source_length: int) -> int:
        """The most output tokens (EOS included) for a source of ``source_length`` pieces."""
        return min(self.max_length, int(source_length * self.max_length_ratio + 10))

    def replace(self, **changes) -> "DecodeSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["forced_prefix"] = list(self.forced_prefix)
        return data
