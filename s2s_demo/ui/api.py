"""The page's named API endpoints: /translate, /compare, /strategies, /score, /attribute,
/neighbours and /models. Each takes plain parameters (``Request``'s fields, or a few of its own) and returns
the dicts the page renders, through the same request functions."""

from __future__ import annotations

import dataclasses
import logging

import gradio as gr

from .. import attribution, strategies
from .registry import ModelRegistry
from .request import (Request, RequestError, api_description, api_function, attribute_request, compare_request,
                      neighbours_request, score_request, strategies_request, translate_request)

log = logging.getLogger(__name__)


def register_api(registry: ModelRegistry) -> None:
    """Declare the endpoints inside the Blocks being built."""

    def serve_translate(request: Request) -> tuple[str, dict]:
        trace = guarded(translate_request, registry, request)
        return trace["translation"], trace

    _endpoint(serve_translate, "translate", tuple(f.name for f in dataclasses.fields(Request)),
              "Translate text and return everything the page shows.",
              "[translation, trace]: the best hypothesis as text, and the trace (steps with the top "
              "candidates of the model's and the method's distributions and attention, n-best hypotheses, "
              "beam tree and best_path, familiarity, length_capped, seed, timings)", tuple[str, dict])
    _endpoint(lambda request: guarded(compare_request, registry, request), "compare",
              tuple(f.name for f in dataclasses.fields(Request) if f.name not in ("forced_prefix", "internals")),
              "Translate text with the given model and every other model that reads its language.",
              "one row per model: model, pair, tgt_lang, description, translation, score, logprob, "
              "tokens, search_ms, rank (by score among the models of the same target language)", list[dict])

    def api_strategies(text: str, model: str | None = None, beam_size: int = 5, length_penalty: float | None = None,
                       samples: int = strategies.DEFAULT_SAMPLES, reference: str | None = None,
                       seed: int | None = None) -> dict:
        request = Request(text, model, beam_size=beam_size, length_penalty=length_penalty, seed=seed)
        return guarded(strategies_request, registry, request, samples, reference)

    gr.api(api_strategies, api_name="strategies", api_description=(
        "Run every decoding strategy on text: greedy; beam search (beam_size, length_penalty: default the "
        "model's tuned value); sampling at temperature 1; top-p 0.9; epsilon sampling (epsilon 0.02); and MBR "
        "over the epsilon samples with chrF as the utility. Parameters: text; model (default: the first); "
        f"samples: candidates per sampler, 1 to {strategies.MAX_SAMPLES} (default {strategies.DEFAULT_SAMPLES}); "
        "reference: optional, to score each row with sentence chrF and BLEU; seed (default: a fresh one). "
        "Returns: rows (strategy, description, translation, logprob, score, tokens, candidates, chrf, bleu), "
        "reference_note (why the reference was not scored, or null), samples, seed, settings, ms."))

    def api_score(text: str, reference: str, model: str | None = None) -> dict:
        return guarded(score_request, registry, Request(text, model), reference)

    gr.api(api_score, api_name="score", api_description=(
        "Score a translation of text with a model (teacher forcing), under its tuned beam-search settings. "
        "Parameters: text: the source sentence; reference: your translation of it (1 to 1000 characters); "
        "model: a name from /models (default: the first model). Returns: pieces, token_ids, probs and "
        "ranks (1 = the model's own first choice) per token of the reference, EOS last; logprob and score "
        "(length-normalised as the settings do); best_translation, best_logprob, best_score; "
        "first_difference: the first step whose reference token is not the model's choice, or null."))

    def api_attribute(text: str, model: str | None = None, steps: int = attribution.DEFAULT_STEPS) -> dict:
        return guarded(attribute_request, registry, Request(text, model), steps)

    gr.api(api_attribute, api_name="attribute", api_description=(
        "Attribute each token of a model's translation of text (its tuned beam search) to the source pieces: "
        "gradients of the token's log-prob with respect to the source embeddings, summed per piece. "
        f"Parameters: text: the source sentence; model: a name from /models (default: the first model); "
        f"steps: integrated gradients' steps, 1 to {attribution.MAX_STEPS} (default {attribution.DEFAULT_STEPS}). "
        "Returns: source_pieces, target_pieces (EOS last), token_ids, translation; input_x_gradient and "
        "integrated_gradients (one row per target token, one value per source piece); attention (same "
        "shape, or null); agreement: per method, the share of tokens whose top piece is attention's; "
        "completeness: f_input, f_baseline, ig_sum, relative_gap per token and max_relative_gap; steps, "
        "baseline, ms (attribution) and total_ms (search included)."))

    def api_neighbours(text: str, model: str | None = None, k: int = 5) -> dict:
        return guarded(neighbours_request, registry, Request(text, model), k)

    gr.api(api_neighbours, api_name="neighbours", api_description=(
        "The training examples nearest to text and to each step of a model's translation of it (its tuned "
        "beam search), by cosine similarity in the model's own states (PCA-reduced). Parameters: text: the "
        "source sentence; model: a name from /models (default: the first model); k: examples per query, 1 "
        "to 20 (default 5). Returns: sentences (source, target, similarity); steps: per target token, k "
        "training examples (source, target, pieces, position of the token chosen from the nearest state, "
        "similarity); trajectory: path (the decoder states in the plane of the training states' first two "
        "principal components), neighbours (each step's nearest states in that plane), background (a "
        "sample of training states); similarity: sentence and mean state similarity, their floors from "
        "validation data, far; target_pieces, token_ids, translation, ms."))

    def api_models() -> list[dict]:
        """The loaded models: name, language pair, description."""
        return [{"name": n, "pair": t.pair, "description": t.description,
                 "src_lang": t.config.src_lang, "tgt_lang": t.config.tgt_lang}
                for n, t in registry.translators.items()]

    gr.api(api_models, api_name="models")


def _endpoint(handler, name: str, fields: tuple[str, ...], summary: str, returns: str, return_type) -> None:
    """An API endpoint taking ``Request``'s ``fields``, described on the API page."""
    gr.api(api_function(handler, fields, summary, returns, return_type), api_name=name,
           api_description=api_description(fields, summary, returns))


def guarded(request, *args, labels: dict[str, str] | None = None):
    """Run a request function; its RequestError becomes the message the visitor sees, the
    setting at fault named by its control's label on the page (``labels``), by its API name
    through the API."""
    try:
        return request(*args)
    except RequestError as err:
        # a refused request is the visitor's to fix, not a server fault: one log line, no traceback
        log.info("refused request: %s", err)
        message = str(err)
        if labels and err.field in labels and message.startswith(f"{err.field}:"):
            message = f"{labels[err.field]}:{message[len(err.field) + 1:]}"
        raise gr.Error(message, print_exception=False) from err
