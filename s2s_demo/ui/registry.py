"""The models the demo serves: every folder under assets/models plus S2S_MODELS."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..hub import parse_ref
from ..model_folder import ModelLoadError
from ..translator import load
from ..translator import Translator

log = logging.getLogger(__name__)


class UnknownModelError(ValueError):
    pass


class ModelRegistry:
    """Name -> Translator. A model that fails to load is reported in ``errors`` and left
    out, so one broken folder never takes the demo down."""

    def __init__(self, translators: list[Translator], errors: dict[str, str] | None = None) -> None:
        self.translators: dict[str, Translator] = {}
        for translator in translators:
            name = translator.name
            while name in self.translators:
                name += "'"
            self.translators[name] = translator
        self.errors = errors or {}

    @classmethod
    def discover(cls, models_dir: str | Path | None = None, extra: str | None = None,
                 arithmetic: str = "float32") -> "ModelRegistry":
        """Load ``models_dir/*`` (sorted, so the default model is stable) and the
        comma-separated refs in ``extra`` (default: the S2S_MODELS variable), each with
        ``arithmetic`` (see :func:`s2s_demo.translator.load`)."""
        refs: list[str] = []
        if models_dir and Path(models_dir).is_dir():
            refs += [str(p) for p in sorted(Path(models_dir).iterdir()) if p.is_dir()]
        extra = os.environ.get("S2S_MODELS", "") if extra is None else extra
        refs += [r.strip() for r in extra.split(",") if r.strip()]
        translators, errors = [], {}
        for ref in refs:
            try:
                translators.append(load(*parse_ref(ref), arithmetic=arithmetic))
            except ModelLoadError as err:
                log.warning("skipping model %s: %s", ref, err)
                errors[ref] = str(err)
        return cls(translators, errors)

    @property
    def names(self) -> list[str]:
        return list(self.translators)

    @property
    def default(self) -> str:
        if not self.translators:
            raise UnknownModelError("no model is loaded")
        return self.names[0]

    def get(self, name: str | None) -> Translator:
        if name is None or name == "":
            return self.translators[self.default]
        if not isinstance(name, str):
            raise UnknownModelError(f"model must be a model name (one of {', '.join(self.names)}), "
                                    f"got {type(name).__name__} {name!r}")
        if name not in self.translators:
            raise UnknownModelError(f"Unknown model {name!r}. Available: {', '.join(self.names)}")
        return self.translators[name]

    def same_source(self, name: str | None) -> list[str]:
        """``name`` first (default: the default model), then every other model that reads the
        same source language, in registry order: the models a sentence can be compared on."""
        first = name or self.default
        lang = self.get(first).model.config.src_lang
        return [first] + [n for n, t in self.translators.items()
                          if n != first and t.model.config.src_lang == lang]

    def label(self, name: str) -> str:
        """The dropdown's text: the name, then the card's description (which names the pair)."""
        return f"{name} — {self.translators[name].description}"

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for a dropdown."""
        return [(self.label(n), n) for n in self.names]
