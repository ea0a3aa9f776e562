"""The models the demo serves: every folder under assets/models plus S2S_MODELS."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..hub import fetch_checked, parse_ref
from ..model_folder import ModelLoadError
from ..translator import Translator, load

log = logging.getLogger(__name__)


class UnknownModelError(ValueError):
    pass


# models visitors may load from the Hub at once; the oldest goes when another comes
MAX_VISITOR_MODELS = 3


class ModelRegistry:
    """Name -> Translator. A model that fails to load is reported in ``errors`` and left
    out, so one broken folder never takes the demo down. Visitors may add Hub models
    (``add_from_hub``): one download at a time, at most ``MAX_VISITOR_MODELS`` of them, and
    the models the registry started with always stay."""

    def __init__(self, translators: list[Translator], errors: dict[str, str] | None = None,
                 arithmetic: str = "float32") -> None:
        self.translators: dict[str, Translator] = {}
        for translator in translators:
            self._add(translator)
        self.errors = errors or {}
        self.arithmetic = arithmetic
        self.visitor_models: list[str] = []
        self.download_lock = threading.Lock()

    def _add(self, translator: Translator) -> str:
        name = translator.name
        while name in self.translators:
            name += "'"
        self.translators[name] = translator
        return name

    def add_from_hub(self, text: str) -> str:
        """Load the Hub model ``owner/name[@revision]`` (checked by :func:`s2s_demo.hub.fetch_checked`)
        and return its name in the registry; the same ref again returns the loaded one. A
        ModelLoadError (one sentence) when it cannot be loaded or another download is running."""
        repo_id, revision = parse_ref(str(text or ""))
        ref = f"{repo_id}@{revision}" if revision else repo_id
        for name in self.visitor_models:
            if self.translators[name].ref == ref:
                return name
        if not self.download_lock.acquire(blocking=False):
            raise ModelLoadError("another model is downloading; try again in a moment")
        try:
            folder = fetch_checked(repo_id, revision)
            translator = Translator.from_folder(folder, arithmetic=self.arithmetic, ref=ref, revision=revision)
        finally:
            self.download_lock.release()
        name = self._add(translator)
        self.visitor_models.append(name)
        if len(self.visitor_models) > MAX_VISITOR_MODELS:
            del self.translators[self.visitor_models.pop(0)]
        log.info("visitor loaded %s as %s", ref, name)
        return name

    @classmethod
    def discover(cls, models_dir: str | Path | None = None, extra: str | None = None,
                 arithmetic: str = "float32", lazy: bool = False) -> "ModelRegistry":
        """Load ``models_dir/*`` (sorted, so the default model is stable) and the
        comma-separated refs in ``extra`` (default: the S2S_MODELS variable), each with
        ``arithmetic`` (see :func:`s2s_demo.translator.load`). ``lazy``: read each folder's
        config, card and tokenizers now and its weights on first use or by ``warm``."""
        refs: list[str] = []
        if models_dir and Path(models_dir).is_dir():
            refs += [str(p) for p in sorted(Path(models_dir).iterdir()) if p.is_dir()]
        extra = os.environ.get("S2S_MODELS", "") if extra is None else extra
        refs += [r.strip() for r in extra.split(",") if r.strip()]
        translators, errors = [], {}
        for ref in refs:
            try:
                translators.append(load(*parse_ref(ref), arithmetic=arithmetic, lazy=lazy))
            except ModelLoadError as err:
                log.warning("skipping model %s: %s", ref, err)
                errors[ref] = str(err)
        return cls(translators, errors, arithmetic)

    def warm(self) -> None:
        """Read every model's weights now (a server calls it in the background after it starts
        serving); a model whose weights fail is taken out and reported in ``errors``."""
        failed = set()
        for name, translator in list(self.translators.items()):
            try:
                translator.load()
            except ModelLoadError as err:
                log.warning("taking out model %s: %s", name, err)
                self.errors[translator.ref or name] = str(err)
                failed.add(name)
        if failed:  # one assignment: a request reading the dict meanwhile sees the old or the new
            self.translators = {n: t for n, t in self.translators.items() if n not in failed}

    def start_warming(self) -> threading.Thread:
        thread = threading.Thread(target=self.warm, name="warm-models", daemon=True)
        thread.start()
        return thread

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
        lang = self.get(first).config.src_lang
        return [first] + [n for n, t in self.translators.items()
                          if n != first and t.config.src_lang == lang]

    def better_model(self, name: str | None, text: str) -> str | None:
        """Another model for ``text`` when it reads as model ``name``'s target language rather than
        its source (``TokenizerPair.language_side``): one that reads that language, preferably
        back into ``name``'s source language. None when ``text`` suits ``name`` or no model fits."""
        translator = self.get(name)
        if not isinstance(text, str) or translator.tokenizer.language_side(text) != "target":
            return None
        src, tgt = translator.config.src_lang, translator.config.tgt_lang
        readers = [n for n, t in self.translators.items() if t.config.src_lang == tgt]
        readers.sort(key=lambda n: self.translators[n].config.tgt_lang != src)
        return readers[0] if readers else None

    def label(self, name: str) -> str:
        """The dropdown's text: the name, then the card's description (which names the pair)."""
        return f"{name} — {self.translators[name].description}"

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for a dropdown."""
        return [(self.label(n), n) for n in self.names]
