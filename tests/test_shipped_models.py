"""The model folders shipped in assets/models: they load through the Hub code path, name themselves
after their folder, and the README's results table is the one their results.json files build."""

import json
from pathlib import Path

import pytest

from benchmarks.results_table import table
from s2s_demo.translator import load
from s2s_demo.settings import DecodeSettings
from train.prepare import read_split

from .conftest import MULTI30K

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "assets" / "models").iterdir() if (p / "config.json").exists())
SOURCES = {"de": "Zwei Hunde spielen im Schnee.", "en": "Two dogs are playing in the snow."}


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_loads_and_names_itself_after_its_folder(folder):
    translator = load(str(folder), arithmetic="float32")
    assert translator.name == folder.name
    source = SOURCES[translator.model.config.src_lang]
    trace = translator.translate(source, DecodeSettings(method="beam", beam_size=5))
    assert trace.model == folder.name
    assert trace.translation.strip()


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_card_states_the_measured_beam_scores(folder):
    card = (folder / "README.md").read_text()
    for split, by_method in json.loads((folder / "results.json").read_text())["results"].items():
        assert f"value: {by_method['beam5']['bleu']}\n      name: {split} beam5 bleu" in card


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_familiarity_flags_unreadable_text_and_few_test_captions(folder):
    translator = load(str(folder), arithmetic="float32")
    if translator.familiarity is None:
        pytest.skip(f"{folder.name}'s results.json has no familiarity thresholds")
    cfg = translator.model.config
    test = read_split({"corpus": "multi30k", "path": str(MULTI30K), "src_lang": cfg.src_lang,
                       "tgt_lang": cfg.tgt_lang}, "test_2016_flickr").source
    flagged = [s for s in test if translator.translate(s).familiarity["unfamiliar"]]
    assert len(flagged) <= 0.05 * len(test), flagged  # held-out captions are what val reaches
    assert translator.translate("مرحبا كيف حالك").familiarity["unfamiliar"]


def test_an_output_cut_by_the_length_cap_says_so():
    translator = load(str(ROOT / "assets" / "models" / "en-de"), arithmetic="float32")
    capped = translator.translate(SOURCES["en"], DecodeSettings(method="greedy", max_length=3))
    assert capped.length_capped and len(capped.steps) == 3
    assert capped.steps[-1].forced and capped.steps[-1].piece == "</s>"  # the cap chose it, not the model
    whole = translator.translate(SOURCES["en"], DecodeSettings(method="greedy"))
    assert not whole.length_capped and not whole.steps[-1].forced


def test_readme_results_table_is_built_from_the_cards():
    readme = (ROOT / "README.md").read_text()
    assert "\n".join(table()) in readme


NARRATION = ("paused", "sigstop", "interrupted", "resumed", "session", "shared with", "editor", "issue",
             "wall clock", "benchmarks and tests")


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_the_card_states_facts_and_its_recipe_is_the_models_config(folder):
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert not [word for word in NARRATION if word in card.lower()]
    config = json.loads((folder / "config.json").read_text())
    model = card[card.index("## Model"):card.index("## Training")]
    layers = config["num_layers"]
    for fact in (f"Embeddings {config['emb_size']}", f"encoder BiLSTM {layers} layer(s) × {config['enc_hidden_size']}",
                 f"decoder LSTM {layers} layer(s) × {config['dec_hidden_size']}", f"attention: {config['attention']}",
                 f"input feeding: {config['input_feeding']}", f"tied target embeddings: {config['tie_embeddings']}"):
        assert fact in model, fact
    training = card[card.index("## Training"):]
    assert f"dropout {config['dropout']} (embeddings\n{config['emb_dropout']})" in training
