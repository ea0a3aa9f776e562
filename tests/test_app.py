"""The demo through its API, as gradio_client sees it, on a loopback server."""

import concurrent.futures
import dataclasses
import math
import os
import shutil
import subprocess
import sys

import pytest
from gradio_client import Client

from benchmarks.serve import HttpClient
from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo.inference import unsupported_reason
from s2s_demo.settings import DecodeSettings
from s2s_demo.translator import Translator
from s2s_demo.ui.blocks import build_demo
from s2s_demo.ui.request import compare_request
from s2s_demo.ui.request import Request
from s2s_demo.ui.registry import ModelRegistry

from train.neighbours import build as build_index

from .conftest import ROOT, make_model

CARD = "---\nmodel_name: {name}\ndescription: {desc}\nwidget:\n- text: {example}\n---\n"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, toy_tokenizer, toy_tokenizer_dir, toy_sentences, toy_corpus):
    root = tmp_path_factory.mktemp("models")
    for name, attention in (("toy-attn", "general"), ("toy-plain", "none")):
        card = CARD.format(name=name, desc=f"{attention} attention", example=toy_sentences[0])
        save_folder(make_model(toy_tokenizer, seed=4, attention=attention), toy_tokenizer_dir,
                        root / name, card)
    # toy-attn has an index of its training pairs; toy-plain has none
    translator = load(root / "toy-attn")
    pairs = [(toy_corpus / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
             for split in ("train", "val") for lang in ("de", "en")]
    build_index(translator, pairs[0], pairs[1], 12, 8, 8, pairs[2]).save(root / "toy-attn")
    return root


@pytest.fixture(scope="module")
def registry(model_dirs):
    return ModelRegistry.discover(model_dirs, extra="")


@pytest.fixture(scope="module")
def client(registry):
    demo = build_demo(registry)
    demo.queue(default_concurrency_limit=2, max_size=200)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def translate(client, text, **kw):
    return client.predict(text, api_name="/translate", **kw)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_each_method_returns_translation_and_trace(client, toy_sentences, method):
    text, trace = translate(client, toy_sentences[0], model="toy-attn", method=method, seed=3, n_best=1)
    assert text == trace["translation"]
    assert trace["settings"]["method"] == method
    assert trace["source"] == toy_sentences[0] and trace["source_pieces"]
    step = trace["steps"][0]
    assert {"piece", "token_id", "prob", "model_prob", "top", "model_top", "entropy", "attention"} <= set(step)
    assert len(step["model_top"]) == 10 and len(step["attention"]) == len(trace["source_pieces"])
    assert trace["hypotheses"][0]["text"] == text
    assert trace["timings_ms"]["search_ms"] > 0
    if method == "beam":
        assert {n["status"] for n in trace["beam_nodes"]} >= {"kept", "finished"}


def test_n_best_through_api(client, toy_sentences):
    _, trace = translate(client, toy_sentences[1], model="toy-attn", beam_size=6, n_best=4)
    scores = [h["score"] for h in trace["hypotheses"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)


def test_what_if_forcing_through_api(client, toy_sentences):
    _, base = translate(client, toy_sentences[2], model="toy-attn", method="greedy")
    runner_up = base["steps"][1]["model_top"][1]
    prefix = base["hypotheses"][0]["token_ids"][:1] + [runner_up["token_id"]]
    _, forced = translate(client, toy_sentences[2], model="toy-attn", method="greedy", forced_prefix=prefix)
    assert forced["hypotheses"][0]["token_ids"][:2] == prefix
    assert forced["steps"][1]["forced"] and forced["steps"][1]["piece"] == runner_up["piece"]
    _, by_piece = translate(client, toy_sentences[2], model="toy-attn", method="greedy",
                            forced_prefix=[base["steps"][0]["piece"], runner_up["piece"]])
    assert by_piece["hypotheses"][0]["token_ids"] == forced["hypotheses"][0]["token_ids"]


def test_model_switching_and_listing(client, toy_sentences):
    models = client.predict(api_name="/models")
    assert [m["name"] for m in models] == ["toy-attn", "toy-plain"]
    _, attn = translate(client, toy_sentences[0], model="toy-attn")
    _, plain = translate(client, toy_sentences[0], model="toy-plain")
    assert attn["model"] == "toy-attn" and plain["model"] == "toy-plain"
    assert plain["steps"][0]["attention"] is None and attn["steps"][0]["attention"] is not None


def test_compare_through_api(client, toy_sentences):
    rows = client.predict(toy_sentences[0], model="toy-plain", beam_size=3, api_name="/compare")
    assert [r["model"] for r in rows] == ["toy-plain", "toy-attn"]  # the chosen model first
    for row in rows:  # each row is what /translate gives that model under the same settings
        text, trace = translate(client, toy_sentences[0], model=row["model"], beam_size=3)
        best = trace["hypotheses"][0]
        assert (row["translation"], row["score"], row["logprob"]) == (text, best["score"], best["logprob"])
        assert row["tokens"] == len(best["token_ids"]) and row["search_ms"] > 0
    for bad, message in (({"text": ""}, "empty"), ({"model": "no-such-model"}, "Unknown model"),
                         ({"beam_size": 99}, "beam_size")):
        kw = {"text": toy_sentences[0], "model": "toy-attn", **bad}
        with pytest.raises(Exception, match=message):
            client.predict(kw.pop("text"), api_name="/compare", **kw)
    assert len(client.predict(toy_sentences[1], api_name="/compare")) == 2  # still serving


def test_compare_keeps_to_the_models_that_read_the_language(toy_tokenizer, toy_sentences):
    registry = ModelRegistry([Translator(make_model(toy_tokenizer, seed=1), toy_tokenizer),
                              Translator(make_model(toy_tokenizer, seed=2, src_lang="fr"), toy_tokenizer),
                              Translator(make_model(toy_tokenizer, seed=3, attention="none"), toy_tokenizer)])
    de_attn, fr, de_plain = registry.names
    assert registry.same_source(de_plain) == [de_plain, de_attn]
    assert registry.same_source(fr) == [fr]
    assert registry.same_source(None) == [de_attn, de_plain]
    greedy = DecodeSettings(method="greedy")
    rows = compare_request(registry, Request(toy_sentences[0], de_plain, method="greedy"))
    assert [r["model"] for r in rows] == [de_plain, de_attn]
    assert [r["translation"] for r in rows] == [registry.get(n).translate(toy_sentences[0], greedy).translation
                                                for n in (de_plain, de_attn)]
    # both write the same language, so their scores rank them against each other
    assert sorted(r["rank"] for r in rows) == [1, 2]
    assert rows[0]["rank"] == (1 if rows[0]["score"] >= rows[1]["score"] else 2)


def test_compare_ranks_only_models_of_the_same_target_language(toy_tokenizer, toy_sentences):
    registry = ModelRegistry([Translator(make_model(toy_tokenizer, seed=1), toy_tokenizer),
                              Translator(make_model(toy_tokenizer, seed=2, tgt_lang="fr"), toy_tokenizer)])
    rows = compare_request(registry, Request(toy_sentences[0], None, method="greedy"))
    assert [r["tgt_lang"] for r in rows] == ["en", "fr"]
    assert [r["rank"] for r in rows] == [1, 1]  # each is alone in its language: nothing to rank against


BAD_REQUESTS = [
    ({"text": ""}, "empty"),
    ({"text": "   \n\t "}, "empty"),
    ({"text": "x" * 5000}, "5,000 characters"),
    ({"top_p": 0}, "top_p"),
    ({"beam_size": 0}, "beam_size"),
    ({"temperature": -1, "method": "sample"}, "temperature"),
    ({"n_best": 6, "beam_size": 5}, "n_best"),
    ({"model": "no-such-model"}, "Unknown model"),
    ({"method": "telepathy"}, "method"),
    ({"max_length": 10_000}, "max_length"),
    ({"forced_prefix": ["not-a-piece-zzz"]}, "forced_prefix"),
    ({"forced_prefix": [10**9]}, "outside"),
    ({"model": ["toy-attn"]}, "model must be a model name"),
    ({"model": {"name": "toy-attn"}}, "model must be a model name"),
    ({"forced_prefix": {"a": 1}}, "forced_prefix"),
    ({"forced_prefix": [5] * 90}, "before its end"),  # past the cap a short source gets
]


@pytest.mark.parametrize("request_kw,message", BAD_REQUESTS)
def test_bad_input_is_a_clear_error_and_server_keeps_serving(client, toy_sentences, request_kw, message):
    kw = {"text": toy_sentences[0], "model": "toy-attn", **request_kw}
    with pytest.raises(Exception) as err:
        translate(client, kw.pop("text"), **kw)
    assert message in str(err.value)
    text, _ = translate(client, toy_sentences[0], model="toy-attn")
    assert isinstance(text, str)


@pytest.mark.parametrize("text", [
    "Ein Hund 🐕 rennt 🏃‍♂️ im Schnee ❄️.",
    "كلب يركض في الثلج",
    "Ein\x00 Mann\x1b[31m fährt\u200b Rad\u202e.",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
])
def test_odd_text_translates(client, text):
    out, trace = translate(client, text, model="toy-attn")
    assert isinstance(out, str)
    assert trace["source"] == text  # returned as data, never interpreted


def test_concurrent_clients(client, registry, toy_sentences, model_dirs):
    url = client.src
    expected = {s: registry.get("toy-attn").translate(s).translation for s in toy_sentences[:5]}

    def one_client(i):
        c = Client(url, verbose=False)
        return [(s, c.predict(s, api_name="/translate", model="toy-attn")[0]) for s in toy_sentences[:5]]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = [r for batch in pool.map(one_client, range(16)) for r in batch]
    assert len(results) == 80
    assert all(out == expected[s] for s, out in results)


def test_broken_model_folder_is_skipped_with_reason(model_dirs, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(model_dirs, broken)
    (broken / "toy-plain" / "model.safetensors").write_bytes(b"junk")
    registry = ModelRegistry.discover(broken, extra="s2s-demo/does-not-exist-anywhere")
    assert registry.names == ["toy-attn"]
    assert any("not a valid safetensors" in e for e in registry.errors.values())
    assert len(registry.errors) == 2


def test_a_lazy_registry_reads_weights_on_first_use_or_when_warmed(model_dirs, tmp_path, toy_sentences):
    from s2s_demo.ui.request import Request, RequestError, translate_request

    lazy = ModelRegistry.discover(model_dirs, extra="", lazy=True)
    assert lazy.names == ["toy-attn", "toy-plain"] and not any(t.loaded for t in lazy.translators.values())
    assert lazy.choices() and lazy.get("toy-attn").config.src_lang  # the page needs no weights
    eager = ModelRegistry.discover(model_dirs, extra="")
    assert lazy.get("toy-attn").translate(toy_sentences[0]).translation == \
        eager.get("toy-attn").translate(toy_sentences[0]).translation
    assert lazy.get("toy-attn").loaded and not lazy.get("toy-plain").loaded
    # weights that turn out broken: a clear error for the request, then the model is taken out
    broken = tmp_path / "models"
    shutil.copytree(model_dirs, broken)
    (broken / "toy-plain" / "model.safetensors").write_bytes(b"junk")
    registry = ModelRegistry.discover(broken, extra="", lazy=True)
    assert registry.names == ["toy-attn", "toy-plain"]
    with pytest.raises(RequestError, match="not a valid safetensors"):
        translate_request(registry, Request(toy_sentences[0], "toy-plain"))
    registry.start_warming().join()
    assert registry.names == ["toy-attn"] and any("not a valid safetensors" in e for e in registry.errors.values())


def test_registry_loads_with_the_inference_dtype(model_dirs, toy_sentences):
    from s2s_demo.ui.views.translation import status_line

    # float16 runs on every x86-64 CPU with AVX2 (fbgemm); the page names it
    if unsupported_reason("float16"):
        pytest.skip(unsupported_reason("float16"))
    registry = ModelRegistry.discover(model_dirs, extra="", arithmetic="float16")
    trace = registry.get("toy-attn").translate(toy_sentences[0]).to_dict()
    assert trace["arithmetic"] == "float16"
    assert "· float16 matmuls" in status_line(trace)
    exact = ModelRegistry.discover(model_dirs, extra="").get("toy-attn").translate(toy_sentences[0]).to_dict()
    assert "matmuls" not in status_line(exact)


def test_bad_inference_dtype_setting_is_named():
    env = {**os.environ, "S2S_ARITHMETIC": "float8"}
    done = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "S2S_ARITHMETIC='float8' is not one of auto, float32, bfloat16, float16, int8" in done.stderr


def test_status_line_names_the_seed_of_a_sample_and_a_length_cap(registry, toy_sentences):
    from s2s_demo.ui.request import translate_request
    from s2s_demo.ui.views.translation import status_line

    sampled = translate_request(registry, Request(toy_sentences[0], None, method="sample", seed=None))
    assert sampled["seed"] is not None and f"seed {sampled['seed']}" in status_line(sampled)
    again = translate_request(registry, Request(toy_sentences[0], None, method="sample", seed=sampled["seed"]))
    assert again["translation"] == sampled["translation"]  # the shown seed reproduces the sample
    beam = translate_request(registry, Request(toy_sentences[0], None, method="beam"))
    assert "seed" not in status_line(beam)
    assert "length cap" in status_line({**beam, "length_capped": True})
    assert "length cap" not in status_line({**beam, "length_capped": False})


def test_a_forced_prefix_given_as_one_string_is_one_piece(registry, toy_sentences):
    from s2s_demo.ui.request import translate_request

    plain = translate_request(registry, Request(toy_sentences[0], "toy-attn", method="greedy"))
    piece = plain["steps"][1]["piece"]  # a real target piece, forced at step 0
    forced = translate_request(registry, Request(toy_sentences[0], "toy-attn", method="greedy", forced_prefix=piece))
    assert forced["steps"][0]["piece"] == piece and forced["steps"][0]["forced"]
    assert not forced["steps"][1]["forced"]


def test_a_refused_request_logs_no_traceback(client, toy_sentences, capfd):
    capfd.readouterr()
    with pytest.raises(Exception, match="beam_size"):
        translate(client, toy_sentences[0], model="toy-attn", beam_size=0)
    translate(client, toy_sentences[0], model="toy-attn")  # served after it, and the log is flushed by then
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_the_api_page_describes_every_parameter(client):
    from s2s_demo.ui.request import PARAMETER_DOCS

    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    everything = [f.name for f in dataclasses.fields(Request)]
    for name, fields in (("/translate", everything), ("/compare", everything[:-2])):
        endpoint = endpoints[name]
        assert [p["parameter_name"] for p in endpoint["parameters"]] == fields
        for field in fields:
            assert f"{field}: {PARAMETER_DOCS[field]}" in endpoint["description"]
    assert "[0.05, 5.0]" in endpoints["/translate"]["description"]  # DecodeSettings' own bounds
    assert "[translation, trace]" in endpoints["/translate"]["description"]


def test_what_if_redecodes_with_the_settings_of_the_translation_it_changes(registry, toy_sentences):
    """The page's what-if asks for the model and settings the trace was made with, whatever
    the controls say now (a beam original is continued by beam search, not greedy)."""
    from s2s_demo.ui.request import same_request, translate_request

    original = translate_request(registry, Request(toy_sentences[1], "toy-attn", method="beam", beam_size=3,
                                                   length_penalty=0.4, max_length=30))
    alternative = original["steps"][1]["model_top"][1]["token_id"]
    prefix = original["hypotheses"][0]["token_ids"][:1] + [alternative]
    request = same_request(original, prefix)
    assert (request.model, request.method, request.beam_size, request.length_penalty, request.max_length) == \
        ("toy-attn", "beam", 3, 0.4, 30)
    forced = translate_request(registry, request)
    assert forced["hypotheses"][0]["token_ids"][:2] == prefix
    assert {k: forced["settings"][k] for k in ("method", "beam_size", "length_penalty")} == \
        {"method": "beam", "beam_size": 3, "length_penalty": 0.4}


def test_score_rates_a_reference_token_by_token_through_the_api(client, registry, toy_sentences):
    translator = registry.get("toy-attn")
    source = toy_sentences[2]
    greedy = DecodeSettings(method="greedy")
    own = translator.translate(source, greedy)
    # the model's own greedy output, scored greedily: every token is its first choice
    scored = translator.score_reference(source, own.translation, greedy)
    if scored["token_ids"] == own.hypotheses[0].token_ids:  # the text re-encodes to the same pieces
        assert scored["ranks"] == [1] * len(scored["ranks"]) and scored["first_difference"] is None
        assert scored["probs"] == pytest.approx([s.model_prob for s in own.steps], abs=1e-5)
        assert scored["logprob"] == pytest.approx(own.hypotheses[0].logprob, abs=1e-4)
    # through the API, with a reference the model would not write
    other = client.predict(source, "zzz " + own.translation, model="toy-attn", api_name="/score")
    assert other["token_ids"][-1] == translator.model.config.eos_id
    assert len(other["probs"]) == len(other["ranks"]) == len(other["pieces"])
    assert other["first_difference"] == next(t for t, r in enumerate(other["ranks"]) if r > 1)
    assert other["logprob"] == pytest.approx(sum(math.log(p) for p in other["probs"]), abs=1e-3)
    assert other["best_translation"] == translator.translate(source).translation  # tuned beam search
    with pytest.raises(Exception, match="reference"):
        client.predict(source, "   ", model="toy-attn", api_name="/score")
    assert client.predict(source, "x", model="toy-attn", api_name="/score")["pieces"]  # still serving


def test_the_api_returns_the_lstm_internals_on_request(client, toy_sentences):
    _, plain = translate(client, toy_sentences[0], model="toy-attn", method="greedy")
    assert plain["internals"] is None  # off by default: the trace stays small
    _, traced = translate(client, toy_sentences[0], model="toy-attn", method="greedy", internals=True)
    assert traced["translation"] == plain["translation"]
    steps = len(traced["steps"])
    for layer in traced["internals"]["decoder"]:
        assert set(layer) == {"input_gate", "forget_gate", "output_gate", "cell", "hidden"}
        assert all(len(layer[q]) == steps for q in layer)
    assert len(traced["internals"]["bridge"]) == traced["internals"]["num_layers"]


def test_attribution_through_the_api_explains_the_translation_piece_by_piece(client, registry, toy_sentences):
    source = toy_sentences[1]
    attributed = client.predict(source, model="toy-attn", steps=8, api_name="/attribute")
    translator = registry.get("toy-attn")
    best = translator.translate(source)  # the tuned beam search, as the endpoint documents
    assert attributed["token_ids"] == best.hypotheses[0].token_ids and attributed["translation"] == best.translation
    shape = [len(attributed["source_pieces"])] * len(attributed["target_pieces"])
    for key in ("input_x_gradient", "integrated_gradients", "attention"):
        assert [len(row) for row in attributed[key]] == shape
    assert attributed["steps"] == 8 and 0 <= attributed["agreement"]["integrated_gradients"] <= 1
    assert attributed["completeness"]["max_relative_gap"] <= 0.05
    with pytest.raises(Exception, match=r"steps: must be an integer in \[1, 128\]"):
        client.predict(source, model="toy-attn", steps=0, api_name="/attribute")
    with pytest.raises(Exception, match="empty"):
        client.predict("  ", model="toy-attn", api_name="/attribute")
    assert client.predict(source, model="toy-attn", steps=2, api_name="/attribute")["token_ids"]  # still serving


def test_nearest_training_examples_through_the_api(client, toy_sentences):
    # a training sentence: its nearest training caption is itself
    nearest = client.predict(toy_sentences[3], model="toy-attn", k=3, api_name="/neighbours")
    assert nearest["sentences"][0]["source"] == toy_sentences[3]
    assert nearest["sentences"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert [s["similarity"] for s in nearest["sentences"]] == sorted((s["similarity"] for s in nearest["sentences"]),
                                                                     reverse=True)
    steps = len(nearest["token_ids"])
    assert len(nearest["steps"]) == len(nearest["trajectory"]["path"]) == len(nearest["trajectory"]["neighbours"]) == steps
    for examples in nearest["steps"]:
        assert len(examples) == 3
        for example in examples:  # the marked token is a piece of that training target
            assert 0 <= example["position"] < len(example["pieces"]) and example["pieces"][-1] == "</s>"
    assert set(nearest["similarity"]) == {"sentence", "states", "sentence_floor", "state_floor", "far"}
    _, trace = translate(client, toy_sentences[3], model="toy-attn")
    assert trace["familiarity"]["nearest"]["sentence"] == pytest.approx(nearest["similarity"]["sentence"], abs=1e-3)
    with pytest.raises(Exception, match="has no index of training examples"):
        client.predict(toy_sentences[3], model="toy-plain", api_name="/neighbours")
    with pytest.raises(Exception, match=r"k: must be an integer in \[1, 20\]"):
        client.predict(toy_sentences[3], model="toy-attn", k=0, api_name="/neighbours")
    assert client.predict(toy_sentences[3], model="toy-attn", k=1, api_name="/neighbours")["sentences"]


def test_strategies_api_returns_six_rows_and_refuses_too_many_samples(client, registry, toy_sentences):
    from s2s_demo.strategies import MAX_SAMPLES, STRATEGIES

    result = client.predict(toy_sentences[0], model="toy-attn", beam_size=3, samples=4, reference="",
                            seed=5, api_name="/strategies")
    assert [r["strategy"] for r in result["rows"]] == list(STRATEGIES)
    assert result["seed"] == 5 and "empty" in result["reference_note"]
    assert all(set(r) >= {"translation", "logprob", "score", "chrf", "bleu"} for r in result["rows"])
    with pytest.raises(Exception, match=f"at most {MAX_SAMPLES} samples"):
        client.predict(toy_sentences[0], model="toy-attn", samples=MAX_SAMPLES + 1, api_name="/strategies")
    assert client.predict(toy_sentences[0], model="toy-attn", samples=1, api_name="/strategies")["rows"]


def test_the_rest_api_as_curl_calls_it(client, registry, toy_sentences):
    """POST /gradio_api/call/translate, then its event stream (benchmarks.serve's client): named
    parameters in the endpoint's order, the same translation, and a refusal as an error event."""
    http = HttpClient(client.src)
    text, trace = http.predict("/translate", text=toy_sentences[0], model="toy-attn", method="beam", beam_size=3)
    settings = DecodeSettings(method="beam", beam_size=3)
    assert text == registry.get("toy-attn").translate(toy_sentences[0], settings).translation
    assert trace["settings"]["beam_size"] == 3
    with pytest.raises(RuntimeError, match="beam_size"):
        http.predict("/translate", text=toy_sentences[0], model="toy-attn", method="beam", beam_size=10_000)
    with pytest.raises(TypeError, match="no_repeat_ngram_size"):  # not an API parameter: never silently dropped
        http.predict("/translate", text=toy_sentences[0], model="toy-attn", no_repeat_ngram_size=1)
