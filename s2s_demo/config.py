"""Model hyper-parameters, stored as ``config.json`` in every model folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .calibration import Calibration, CalibrationError

# general: Luong's bilinear score; additive: Bahdanau's MLP score
ATTENTION_KINDS = ("none", "general", "additive")
ENCODER_RNNS = ("lstm", "gru")
# per_layer: each decoder layer starts from its encoder layer's final [fwd; bwd] h (and c);
# last_hidden: every decoder layer's h and c start from the last encoder layer's final h (Joey NMT)
BRIDGES = ("per_layer", "last_hidden")


class ConfigError(ValueError):
    """A model configuration that cannot describe a valid model."""


@dataclass
class ModelConfig:
    """Sizes and switches of a :class:`s2s_demo.model.Seq2Seq`.

    ``enc_hidden_size`` is per direction: the encoder outputs ``2 * enc_hidden_size``
    features per source position, and the bridge maps the concatenated final forward and
    backward states of each layer to the decoder's ``dec_hidden_size``.
    ``encoder_rnn``, ``bridge`` and ``combine_bias`` describe imported models (Joey NMT's
    GRU encoders, its bridge and its biased attentional layer); ``train/`` uses the defaults.
    ``temperature`` is part of the model: its logits are divided by it before the softmax
    everywhere (training, the page, the API, the CLI); a value fitted on validation data
    (``python -m train.calibration --fit``) makes its probabilities calibrated.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    emb_size: int = 256
    enc_hidden_size: int = 256
    dec_hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.3
    emb_dropout: float = 0.2
    attention: str = "general"
    input_feeding: bool = False
    tie_embeddings: bool = True
    encoder_rnn: str = "lstm"
    bridge: str = "per_layer"
    combine_bias: bool = False
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    temperature: float = 1.0
    # the fitted map from logits to the probabilities every view shows (s2s_demo.calibration);
    # None: the identity
    calibration: dict | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.encoder_rnn not in ENCODER_RNNS:
            raise ConfigError(f"encoder_rnn must be one of {ENCODER_RNNS}, got {self.encoder_rnn!r}")
        if self.bridge not in BRIDGES:
            raise ConfigError(f"bridge must be one of {BRIDGES}, got {self.bridge!r}")
        if self.encoder_rnn == "gru" and self.bridge != "last_hidden":
            raise ConfigError("a GRU encoder has no cell state: it needs bridge 'last_hidden'")
        for name in ("src_vocab_size", "tgt_vocab_size", "emb_size", "enc_hidden_size",
                     "dec_hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not 0.05 <= self.temperature <= 20:
            raise ConfigError(f"temperature must be a number in [0.05, 20], got {self.temperature!r}")
        try:
            Calibration.from_config(self.calibration)
        except CalibrationError as err:
            raise ConfigError(str(err)) from err
        for name in ("dropout", "emb_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.input_feeding and self.attention == "none":
            raise ConfigError("input_feeding needs an attention kind other than 'none'")
        special = (self.pad_id, self.unk_id, self.bos_id, self.eos_id)
        if len(set(special)) != 4 or min(special) < 0:
            raise ConfigError(f"special ids must be distinct and non-negative, got {special}")
        if max(special) >= min(self.src_vocab_size, self.tgt_vocab_size):
            raise ConfigError("special ids must be smaller than both vocabulary sizes")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {unknown}")
        try:
            return cls(**data)
        except TypeError as err:  # a required key is missing
            raise ConfigError(str(err)) from err

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object")
        return cls.from_dict(data)
