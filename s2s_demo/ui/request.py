"""One translation request: what the page's controls and the API's parameters both describe,
and the functions that serve it (translate, compare, score) for the page and the API alike.

``Request`` is built once, from the page's control values (``Request.from_controls``) or from
an API call's parameters (the API functions take exactly its fields, see ``api_function``),
and turned into the model's ``DecodeSettings`` in one place (``settings_for``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import typing

from ..strategies import compare_strategies
from ..settings import BOUNDS, MAX_BEAM_SIZE, METHODS, DecodeSettings, SettingsError
from ..model_folder import ModelLoadError
from ..translator import MAX_CHARS, InputError
from .registry import ModelRegistry, UnknownModelError


# the page's decoding controls, in the order their values reach a handler
CONTROLS = ("method", "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
            "repetition_penalty", "beam_size", "n_best", "length_penalty", "max_length", "seed")


class _RequestMethods:
    @classmethod
    def from_controls(cls, text, model, *values, forced_prefix=None) -> "Request":
        """From the page: ``values`` are the controls' values in ``CONTROLS`` order."""
        return cls(text, model, **dict(zip(CONTROLS, values)), forced_prefix=forced_prefix)

    def settings_for(self, tuned: DecodeSettings) -> DecodeSettings:
        """The DecodeSettings of this request for a model whose tuned defaults are ``tuned``
        (its length penalty fills a missing one); raises SettingsError naming the field."""
        prefix = self.forced_prefix
        return DecodeSettings(**{
            **{name: getattr(self, name) for name in CONTROLS},
            "seed": None if self.seed in (None, "", -1) else self.seed,
            "length_penalty": tuned.length_penalty if self.length_penalty is None else self.length_penalty,
            # one piece given as a string is that piece, not a list of its characters
            "forced_prefix": [prefix] if isinstance(prefix, str) else (prefix or ())})


def _request_fields() -> list[tuple]:
    """Request's fields: the text and model, then the controls with DecodeSettings' own types
    and defaults (a missing length penalty means the model's tuned one), then the prefix."""
    settings = {f.name: f for f in dataclasses.fields(DecodeSettings)}
    controls = [(name, settings[name].type, settings[name].default) for name in CONTROLS]
    controls[CONTROLS.index("length_penalty")] = ("length_penalty", "float | None", None)
    return [("text", "str"), ("model", "str | None", None), *controls, ("forced_prefix", "list | None", None),
            ("internals", "bool", False)]


Request = dataclasses.make_dataclass(
    "Request", _request_fields(), bases=(_RequestMethods,), frozen=True,
    namespace={"__doc__": "One translation request: a text, a model name and the decoding controls.",
               "__module__": __name__})


def _range(name: str) -> str:
    low, high = BOUNDS[name]
    return f"[{low}, {high}]"


# what the API page says of each parameter (Gradio reads them from the functions' docstrings)
PARAMETER_DOCS = {
    "text": f"the sentence to translate (1 to {MAX_CHARS} characters)",
    "model": "a name from /models (default: the first model)",
    "method": f"one of {', '.join(METHODS)} (default beam)",
    "temperature": f"sampling only: divides the logits, in {_range('temperature')} (default 1.0)",
    "top_k": "sampling only: keep the k most likely tokens, 0 = all (default 0)",
    "top_p": f"sampling only: keep the fewest tokens whose mass reaches p, in {_range('top_p')} (default 1.0)",
    "min_p": f"sampling only: cut tokens below min_p x the most likely one's probability, in {_range('min_p')}, "
             "0 = off (default 0)",
    "typical_p": f"sampling only: locally typical sampling's mass, in {_range('typical_p')}, 1 = off (default 1.0)",
    "epsilon_cutoff": f"sampling only: cut tokens of probability below it, in {_range('epsilon_cutoff')}, 0 = off "
                      "(default 0)",
    "eta_cutoff": f"sampling only: cut tokens below min(eta, sqrt(eta) * exp(-entropy)), in {_range('eta_cutoff')}, "
                  "0 = off (default 0)",
    "repetition_penalty": f"sampling only: earlier tokens' log-probs multiplied by it, in "
                          f"{_range('repetition_penalty')}, 1 = off (default 1.0)",
    "beam_size": f"beam only: hypotheses kept per step, 1 to {MAX_BEAM_SIZE} (default 5)",
    "n_best": "beam only: hypotheses returned, 1 to beam_size (default 1)",
    "length_penalty": f"GNMT alpha in {_range('length_penalty')}; null = the model's value tuned on val",
    "max_length": f"most output tokens, in {_range('max_length')} (default 100)",
    "seed": "sampling only: the random seed; null = a fresh one, reported back in the trace",
    "forced_prefix": "target pieces (or ids) the first steps must write; one string = one piece",
    "internals": "true: the trace also holds the LSTM's gates, cells and bridge along the best hypothesis",
}


def api_function(handler, fields: tuple[str, ...], summary: str, returns: str, return_type):
    """An API endpoint that takes ``Request``'s ``fields`` as parameters and calls
    ``handler(request)``. Its signature, type hints and docstring (what Gradio's API page
    shows) are made from ``Request`` and ``PARAMETER_DOCS``, so the API is described where
    the request is."""
    fields_by_name = {f.name: f for f in dataclasses.fields(Request)}
    types = typing.get_type_hints(Request)
    signature = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=types[name],
                          default=(inspect.Parameter.empty if fields_by_name[name].default is dataclasses.MISSING
                                   else fields_by_name[name].default))
        for name in fields], return_annotation=return_type)

    def endpoint(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return handler(Request(**bound.arguments))

    endpoint.__signature__ = signature
    endpoint.__annotations__ = {**{name: types[name] for name in fields}, "return": return_type}
    lines = [summary, "", "Parameters:"] + [f"    {name}: {PARAMETER_DOCS[name]}" for name in fields]
    endpoint.__doc__ = "\n".join(lines + ["", "Returns:", f"    {returns}"])
    return endpoint


def api_description(fields: tuple[str, ...], summary: str, returns: str) -> str:
    """The API page's text for an endpoint: Gradio shows a function's description there but
    not its docstring's parameter lines, so the ranges and defaults go into the description."""
    params = "; ".join(f"{name}: {PARAMETER_DOCS[name]}" for name in fields)
    return f"{summary} Parameters: {params}. Returns: {returns}."


class RequestError(ValueError):
    """A request that cannot be served; the message is shown to the visitor. ``field``: the
    setting at fault, if one is (the page names it by its control's label)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@contextlib.contextmanager
def _refused():
    """What the visitor got wrong (text, a setting, the model name) becomes a RequestError."""
    try:
        yield
    except (InputError, SettingsError, UnknownModelError, ModelLoadError) as err:
        raise RequestError(str(err), getattr(err, "field", None)) from err


def translate_request(registry: ModelRegistry, request: Request) -> dict:
    """Validate everything, translate, and return the trace dict (what the page shows)."""
    return _served(registry, request,
                   lambda t, settings: t.translate(request.text, settings, internals=request.internals).to_dict())


def _served(registry: ModelRegistry, request: Request, serve) -> dict:
    """``serve(translator, settings)`` for the request's model and settings, refusals made
    RequestErrors; the result's ``model`` is the registry's name (unique, so a follow-up request
    asks for the same model)."""
    with _refused():
        translator = registry.get(request.model)
        result = serve(translator, request.settings_for(translator.default_settings()))
    result["model"] = request.model or registry.default
    return result


def score_request(registry: ModelRegistry, request: Request, reference: str) -> dict:
    """Score a visitor's ``reference`` translation of the request's text with its model under
    its settings (``Translator.score_reference``)."""
    return _served(registry, request, lambda t, settings: t.score_reference(request.text, reference, settings))


def strategies_request(registry: ModelRegistry, request: Request, samples: int, reference: str | None) -> dict:
    """Every decoding strategy on the request's text (``s2s_demo.strategies``): beam size and
    length penalty from the request, ``samples`` candidates per sampler, the request's seed."""
    return _served(registry, request, lambda t, settings: compare_strategies(
        t, request.text, settings, samples, reference, settings.seed))


def attribute_request(registry: ModelRegistry, request: Request, steps: int, target_ids: list[int] | None = None
                      ) -> dict:
    """Attribute ``target_ids`` (default: the best hypothesis under the request's settings) of the
    request's text to its source pieces (``Translator.attribute``)."""
    return _served(registry, request, lambda t, settings: t.attribute(request.text, target_ids, settings, steps))


def neighbours_request(registry: ModelRegistry, request: Request, k: int = 5,
                       target_ids: list[int] | None = None) -> dict:
    """The training examples nearest to the request's text and to each step of its translation
    (``Translator.nearest_examples``)."""
    return _served(registry, request, lambda t, settings: t.nearest_examples(request.text, target_ids, settings, k))


def compare_request(registry: ModelRegistry, request: Request) -> list[dict]:
    """Translate the request's text with its model and every other model that reads its
    language, under the same settings (a missing length penalty: each model's own tuned
    value), from each search's best hypothesis (no traces). One dict per model, the request's
    first: name, pair, target language, description, translation, score, log-prob, tokens,
    search time, and ``rank``: by score among the models of the same target language (scores
    of different target languages are not comparable)."""
    rows = []
    with _refused():
        for name in registry.same_source(request.model):
            translator = registry.get(name)
            settings = request.settings_for(translator.default_settings())
            best, search_ms = translator.best_hypothesis(request.text, settings)
            rows.append({"model": name, "pair": translator.pair, "tgt_lang": translator.config.tgt_lang,
                         "description": translator.description,
                         "translation": translator.tokenizer.decode_target(best.tokens),
                         "score": best.score, "logprob": best.logprob, "tokens": len(best.tokens),
                         "search_ms": round(search_ms, 2)})
    for row in rows:
        rivals = [r["score"] for r in rows if r["tgt_lang"] == row["tgt_lang"]]
        row["rank"] = 1 + sum(score > row["score"] for score in rivals)
    return rows


def same_request(trace: dict, forced_prefix: list[int]) -> Request:
    """The request that made ``trace`` (or a scored reference: its model and settings), with
    ``forced_prefix``."""
    s = trace["settings"]
    return Request(trace["source"], trace["model"], **{name: s[name] for name in CONTROLS if name != "seed"},
                   seed=trace.get("seed"), forced_prefix=forced_prefix)
