"""The page in a real browser: Debian's Chromium driven by Playwright.

Set S2S_SCREENSHOT_DIR to keep the screenshots (the README's come from assets/screenshots).
"""

import os
import shutil
from pathlib import Path

import pytest

from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo.settings import DecodeSettings
from s2s_demo.ui.blocks import PAGE_CSS, build_demo
from s2s_demo.ui.render import CONFIDENCE_COLORS, FORCED, NEIGHBOUR_COLORS, NEIGHBOUR_TOKEN, SOURCE_COLORS, UNREADABLE
from s2s_demo.ui.registry import ModelRegistry

from .conftest import ROOT, make_model

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
XSS = "<img src=x onerror=\"window.__pwned=1;alert(1)\"><script>window.__pwned=2</script>"

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def page_url(tmp_path_factory, toy_tokenizer, toy_tokenizer_dir):
    shipped = ROOT / "assets" / "models"
    registry = ModelRegistry.discover(shipped, extra="")
    if not registry.names:  # before any model is shipped, a toy one shows the page works
        folder = tmp_path_factory.mktemp("m") / "toy"
        save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, folder)
        registry = ModelRegistry([load(folder)])
    demo = build_demo(registry)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=PAGE_CSS)
    yield url, registry
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _shots() -> Path | None:
    folder = os.environ.get("S2S_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return None


def _source_sentence(registry, model: str | None = None) -> str:
    lang = registry.get(model).model.config.src_lang
    return {"de": "Ein Mann mit einem roten Hut fährt Fahrrad auf der Straße.",
            "en": "A man in a red hat rides a bike down the street."}.get(lang, "Ein Mann fährt Fahrrad.")


def test_translate_explore_and_what_if(page_url, browser, tmp_path):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    box = page.get_by_label("Source sentence", exact=False)
    box.fill(_source_sentence(registry))
    page.get_by_role("button", name="Translate").click()
    expected = registry.get(None).translate(_source_sentence(registry)).translation
    _wait_for_text(page, "#translation", expected)
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 2  # overview and the step distribution
    assert page.get_by_text("Error", exact=True).count() == 0  # no output of the load or the click failed
    shots = _shots() or tmp_path
    page.screenshot(path=str(shots / "translate.png"), full_page=True)

    page.get_by_role("button", name="Re-decode with this token").click()
    # the alternative offered first at step 0 is the model's most likely other token
    translator = registry.get(None)
    plain = translator.translate(_source_sentence(registry))
    first, first_logprob = plain.steps[0], plain.hypotheses[0].logprob
    alternative = next(c.token_id for c in first.model_top if c.token_id != first.token_id)
    forced = translator.translate(_source_sentence(registry),
                                  translator.default_settings().replace(forced_prefix=(alternative,)))
    _wait_for_text(page, "#what-if", forced.translation)
    # the change it made, in numbers: old and new log-prob side by side, and the two outputs aligned
    _wait_for_text(page, "#what-if-summary", f"Forced at step 0: log-prob {first_logprob:.3f}")
    assert "(forced)" in page.inner_text("#what-if-table")
    page.screenshot(path=str(shots / "what-if.png"), full_page=True)
    # its link opens the forced translation, the forced word marked as such
    page.wait_for_function("() => document.querySelector('#what-if-share textarea, #what-if-share input')"
                           ".value.includes('forced=')", timeout=15_000)
    linked = browser.new_page(viewport={"width": 1280, "height": 1000})
    linked.goto(page.locator("#what-if-share textarea, #what-if-share input").first.input_value())
    _wait_for_text(linked, "#translation", forced.translation)
    assert _chip_colours(linked, "#translation")[0][1].startswith(_rgb(CONFIDENCE_COLORS[FORCED]))
    linked.close()

    page.get_by_role("tab", name="Attention").click()
    page.wait_for_timeout(500)
    assert page.locator(".js-plotly-plot").count() >= 1
    page.screenshot(path=str(shots / "attention.png"), full_page=True)
    page.get_by_role("tab", name="Tree").click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "beam-tree.png"), full_page=True)
    assert not dialogs


def _translated_page(browser, url, registry):
    """A desktop page that has translated the default model's sentence; (page, sentence)."""
    sentence = _source_sentence(registry)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("button", name="Translate").click()
    _wait_for_text(page, "#translation", registry.get(None).translate(sentence).translation)
    return page, sentence


def _wait_for_text(page, selector: str, expected: str) -> None:
    """Wait until the element's text, spaces removed, holds the expected words."""
    squashed = "".join(expected.split())[:40]
    page.wait_for_function(
        "([sel, want]) => { const el = document.querySelector(sel);"
        " return el && el.innerText.replace(/\\s+/g, '').includes(want); }",
        arg=[selector, squashed], timeout=30_000)


def test_compare_models_on_one_sentence(page_url, browser, tmp_path):
    url, registry = page_url
    # an English source, where there is one: en-de, its no-attention twin and en-fr read it
    english = [n for n in registry.names if registry.get(n).model.config.src_lang == "en"]
    model = english[0] if english else registry.default
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    if model != registry.default:
        page.get_by_label("Model").click()
        page.get_by_role("option", name=registry.label(model)).click()
    sentence = _source_sentence(registry, model)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare on this sentence").click()
    lp = registry.get(model).default_settings().length_penalty  # the slider's value for `model`
    settings = DecodeSettings(method="beam", beam_size=5, length_penalty=lp)
    for name in registry.same_source(model):
        _wait_for_text(page, "#comparison", registry.get(name).translate(sentence, settings).translation)
    assert page.locator("#comparison").inner_text().count(model) >= 1
    page.screenshot(path=str((_shots() or tmp_path) / "compare.png"), full_page=True)


def test_html_in_the_text_is_never_rendered(page_url, browser):
    url, _ = page_url
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(XSS)
    page.get_by_role("button", name="Translate").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="Attention").click()
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__pwned") is None
    assert not dialogs
    assert page.locator("img[src='x']").count() == 0


def test_empty_input_shows_an_error_and_page_keeps_working(page_url, browser):
    url, registry = page_url
    page = browser.new_page()
    page.goto(url)
    page.get_by_role("button", name="Translate").click()
    page.get_by_text("the text is empty", exact=False).first.wait_for(timeout=15_000)
    page.get_by_label("Source sentence", exact=False).fill(_source_sentence(registry))
    page.get_by_role("button", name="Translate").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)


def test_a_sentence_unlike_the_captions_gets_a_note_and_a_caption_does_not(page_url, browser, tmp_path):
    url, registry = page_url
    translator = registry.get(None)
    if translator.familiarity is None:
        pytest.skip("the default model's results.json has no familiarity thresholds")
    odd = "مرحبا كيف حالك"  # a script the Multi30k models cannot read
    assert translator.translate(odd).familiarity["unfamiliar"]
    page = browser.new_page()
    page.goto(url)
    box = page.get_by_label("Source sentence", exact=False)
    box.fill(odd)
    page.get_by_role("button", name="Translate").click()
    note = page.locator("#familiarity")
    note.get_by_text("unlike the photo captions the model learnt from", exact=False).wait_for(timeout=30_000)
    assert "cannot read" in note.inner_text()
    page.screenshot(path=str((_shots() or tmp_path) / "familiarity.png"), full_page=False)
    box.fill(_source_sentence(registry))
    page.get_by_role("button", name="Translate").click()
    _wait_for_text(page, "#translation", translator.translate(_source_sentence(registry)).translation)
    page.wait_for_function("() => { const el = document.querySelector('#familiarity');"
                           " return !el || el.offsetParent === null || !el.innerText.trim(); }", timeout=15_000)


def test_an_example_translates_and_a_new_model_clears_the_old_output(page_url, browser):
    url, registry = page_url
    if len(registry.names) < 2:
        pytest.skip("needs two models")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    example = page.locator("button.gallery-item, .gallery button").first
    sentence = example.inner_text().strip()
    example.click()
    translator = registry.get(None)
    full = next(w["text"] for w in translator.card["widget"] if w["text"].startswith(sentence.rstrip(".…")))
    _wait_for_text(page, "#translation", translator.translate(full).translation)
    other = registry.names[1]
    page.get_by_label("Model").click()
    page.get_by_role("option", name=registry.label(other)).click()
    page.wait_for_function("() => !document.querySelector('#translation').innerText.replace(/\\s+/g, '')"
                           ".includes('" + "".join(translator.translate(full).translation.split())[:20] + "')",
                           timeout=15_000)


def test_n_best_cannot_exceed_the_beam_size(page_url, browser):
    url, _ = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    beam_number = page.locator("input[type=number][aria-label='number input for Beam size']")
    beam_number.fill("3")
    beam_number.press("Enter")
    page.wait_for_function("() => document.querySelector(\"input[type=range][aria-label='range slider for n-best']\")"
                           ".getAttribute('max') === '3'", timeout=15_000)


def test_raw_trace_opens_as_text_without_drawing_every_node(page_url, browser):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(_source_sentence(registry))
    beam = page.locator("input[type=number][aria-label='number input for Beam size']")
    beam.fill("16")
    beam.press("Enter")
    page.get_by_role("button", name="Translate").click()
    # opened at once, while the beam-16 search may still run: the trace shows when it is there
    page.get_by_text("Raw trace (JSON)").click()
    page.get_by_text('"source_pieces"', exact=False).first.wait_for(timeout=30_000)
    # a JSON tree drew ~77k elements for a beam-16 trace; the code view draws the lines in sight
    assert page.evaluate("() => document.getElementsByTagName('*').length") < 10_000


def _rgb(hex_colour: str) -> str:
    """'#c4b5fd' -> 'rgba(196, 181, 253': how Gradio writes a category's colour (at half alpha)."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}"


def _chip_colours(page, selector: str) -> list[tuple[str, str]]:
    """(text, background colour) of each span of a HighlightedText's text (not its legend)."""
    return page.evaluate("(sel) => [...document.querySelectorAll(sel + ' .textfield .token')].map("
                         "e => [e.innerText.trim(), e.style.backgroundColor])", selector)


def test_phone_layout_reaches_every_tab_without_sideways_scrolling(page_url, browser, tmp_path):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    translate = page.locator("#translate")
    translate.wait_for()
    box = translate.bounding_box()
    assert box["y"] + box["height"] <= 844  # Translate is on the first screen
    page.get_by_label("Source sentence", exact=False).fill(_source_sentence(registry))
    translate.click()
    _wait_for_text(page, "#translation", registry.get(None).translate(_source_sentence(registry)).translation)
    for name in ("Steps", "Attention", "Tree", "LSTM", "Compare", "Score"):
        tab = page.get_by_role("tab", name=name, exact=True)
        assert tab.is_visible(), f"tab {name} is folded away at phone width"
        tab.click()
        if name == "Tree":
            # the tree keeps a readable width and scrolls in its own box, not the page
            page.locator("#beam-tree .js-plotly-plot").wait_for(timeout=30_000)
            width, visible = page.evaluate("() => { const e = document.querySelector('#beam-tree');"
                                           " return [e.scrollWidth, e.clientWidth]; }")
            assert width >= 700 and visible < 390, (width, visible)
            page.screenshot(path=str((_shots() or tmp_path) / "phone-tree.png"), full_page=False)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.get_by_role("tab", name="Steps", exact=True).click()
    page.wait_for_timeout(500)
    page.screenshot(path=str((_shots() or tmp_path) / "phone.png"), full_page=True)


def test_words_are_coloured_whole_and_flags_show_where_they_happen(page_url, browser):
    """The translation shows words (not sub-word pieces); a forced word has the forced colour;
    an output the length limit cut ends with a chip that says so; characters the model cannot
    read are marked in the source."""
    url, registry = page_url
    translator = registry.get(None)
    sentence = _source_sentence(registry)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("button", name="Translate").click()
    trace = translator.translate(sentence)
    _wait_for_text(page, "#translation", trace.translation)
    assert [text for text, _ in _chip_colours(page, "#translation")] == trace.translation.split()
    page.get_by_role("button", name="Re-decode with this token").click()
    page.locator("#what-if .textfield .token").first.wait_for(timeout=30_000)
    colours = [colour for _, colour in _chip_colours(page, "#what-if")]
    assert sum(colour.startswith(_rgb(CONFIDENCE_COLORS[FORCED])) for colour in colours) == 1  # the one forced

    limit = page.locator("input[type=number][aria-label='number input for Max length']")
    limit.fill("3")
    limit.press("Enter")
    page.get_by_role("button", name="Translate").click()
    page.wait_for_function("() => document.querySelector('#translation').innerText.includes('…')", timeout=30_000)
    assert "cut short by the length cap" in page.inner_text("body")

    limit.fill("100")
    limit.press("Enter")
    page.get_by_label("Source sentence", exact=False).fill("مرحبا " + sentence)
    page.get_by_role("button", name="Translate").click()
    page.locator("#unreadable").wait_for(state="visible", timeout=30_000)
    marked = [text for text, colour in _chip_colours(page, "#unreadable")
              if colour.startswith(_rgb(SOURCE_COLORS[UNREADABLE]))]
    assert "مرحبا" in marked


def test_score_your_own_translation_and_continue_from_the_first_difference(page_url, browser, tmp_path):
    url, registry = page_url
    translator = registry.get(None)
    sentence = _source_sentence(registry)
    own = translator.translate(sentence).translation
    mine = "Somebody " + own  # a translation the model would not start with
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("tab", name="Score").click()
    page.locator("#reference textarea").fill(mine)
    page.get_by_role("button", name="Score this translation").click()
    page.wait_for_function("() => document.querySelector('#score-summary').innerText.includes('Reference: log-prob')",
                           timeout=30_000)
    scored = translator.score_reference(sentence, mine, translator.default_settings())
    summary = page.inner_text("#score-summary")
    assert f"{scored['logprob']:.3f}" in summary and f"step {scored['first_difference']}" in summary
    assert [text for text, _ in _chip_colours(page, "#scored")] == mine.split()
    page.get_by_role("button", name="Force your translation up to the first difference; let the model go on").click()
    page.locator("#continued .textfield .token").first.wait_for(timeout=30_000)
    prefix = scored["token_ids"][: scored["first_difference"] + 1]
    continued = translator.translate(sentence, translator.default_settings().replace(forced_prefix=tuple(prefix)))
    _wait_for_text(page, "#continued", continued.translation)
    page.screenshot(path=str((_shots() or tmp_path) / "score.png"), full_page=True)


def test_a_shared_link_opens_the_same_translation(page_url, browser):
    from urllib.parse import urlencode

    url, registry = page_url
    translator, sentence = registry.get(None), _source_sentence(registry)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url + "?" + urlencode({"model": registry.default, "text": sentence, "method": "greedy"}))
    greedy = translator.translate(sentence, translator.default_settings().replace(method="greedy"))
    _wait_for_text(page, "#translation", greedy.translation)
    assert " · greedy · " in page.inner_text("body")
    page.wait_for_function("() => document.querySelector('#share textarea, #share input').value.includes('method=greedy')",
                           timeout=15_000)
    link = page.locator("#share textarea, #share input").first.input_value()
    other = browser.new_page(viewport={"width": 1280, "height": 1000})
    other.goto(link)
    _wait_for_text(other, "#translation", greedy.translation)


def test_inside_the_lstm_draws_gates_and_the_bridge(page_url, browser, tmp_path):
    url, registry = page_url
    page, _ = _translated_page(browser, url, registry)
    page.get_by_role("tab", name="LSTM").click()
    page.get_by_role("button", name="Show the LSTM's gates and cells").click()
    page.locator("#lstm-heatmap .js-plotly-plot").wait_for(timeout=30_000)
    page.locator("#bridge .js-plotly-plot").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#lstm-heatmap').innerText.includes('forget gate')",
                           timeout=15_000)
    page.get_by_label("Quantity").click()
    page.get_by_role("option", name="cell state").click()
    page.wait_for_function("() => document.querySelector('#lstm-heatmap').innerText.includes('cell state')",
                           timeout=15_000)
    assert "decoder initial h" in page.inner_text("#bridge")
    page.screenshot(path=str((_shots() or tmp_path) / "lstm.png"), full_page=True)
    # another translation empties the view (it was of the sentence before), and a new choice of
    # quantity draws nothing from the old recording
    other = "Zwei Hunde spielen im Schnee." if registry.get(None).model.config.src_lang == "de" else \
        "Two dogs play in the snow."
    page.get_by_label("Source sentence", exact=False).fill(other)
    page.get_by_role("button", name="Translate").click()
    _wait_for_text(page, "#translation", registry.get(None).translate(other).translation)
    page.wait_for_function("() => !document.querySelector('#lstm-heatmap .js-plotly-plot')"
                           " && !document.querySelector('#bridge .js-plotly-plot')", timeout=15_000)
    page.get_by_label("Quantity").click()
    page.get_by_role("option", name="forget gate").click()
    page.wait_for_timeout(1000)
    assert page.locator("#lstm-heatmap .js-plotly-plot").count() == 0


def test_attribution_is_drawn_beside_attention_on_request(page_url, browser, tmp_path):
    url, registry = page_url
    page, sentence = _translated_page(browser, url, registry)
    page.get_by_role("tab", name="Attention").click()
    page.get_by_role("button", name="Attribute the translation").click()
    page.wait_for_function("() => document.querySelector('#attribution-summary').innerText.includes('steps from')",
                           timeout=30_000)
    page.wait_for_function("() => document.querySelector('#attribution').innerText.includes('integrated gradients')",
                           timeout=15_000)
    assert "Computed in" in page.inner_text("#attribution-summary")
    page.get_by_label("input × gradient").check()
    page.wait_for_function("() => document.querySelector('#attribution').innerText.includes('input × gradient')",
                           timeout=15_000)
    page.screenshot(path=str((_shots() or tmp_path) / "attribution.png"), full_page=True)


def test_nearest_training_examples_and_the_trajectory(page_url, browser, tmp_path):
    url, registry = page_url
    translator = registry.get(None)
    if translator.neighbours is None:
        pytest.skip("the first model has no neighbour index")
    sentence = _source_sentence(registry)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("button", name="Translate").click()
    _wait_for_text(page, "#translation", translator.translate(sentence).translation)
    page.get_by_role("tab", name="Neighbours").click()
    page.get_by_role("button", name="Find the nearest training examples").click()
    nearest = translator.nearest_examples(sentence, k=5)
    _wait_for_text(page, "#neighbour-sentences", nearest["sentences"][0]["target"])
    page.locator("#trajectory .js-plotly-plot").wait_for(timeout=15_000)
    assert "this translation" in page.inner_text("#trajectory")
    # step 0's nearest training sentences, each with the token chosen from its state marked
    marked = [text.strip() for text, colour in _chip_colours(page, "#neighbour-states")
              if colour.startswith(_rgb(NEIGHBOUR_COLORS[NEIGHBOUR_TOKEN]))]
    assert marked == [e["pieces"][e["position"]].replace("▁", "") for e in nearest["steps"][0]]
    page.get_by_label("Step of the translation").click()
    page.get_by_role("option", name=f"1: {nearest['target_pieces'][1].replace('▁', '')}").click()
    second = nearest["steps"][1][0]
    _wait_for_text(page, "#neighbour-states", second["target"].split()[0])
    page.screenshot(path=str((_shots() or tmp_path) / "neighbours.png"), full_page=True)


def test_an_open_attention_tab_shows_each_new_translations_attention(page_url, browser):
    url, registry = page_url
    translator = registry.get(None)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_role("tab", name="Attention").click()
    box = page.get_by_label("Source sentence", exact=False)
    seen = []
    for sentence in (_source_sentence(registry), translator.card["widget"][0]["text"]):
        box.fill(sentence)
        page.get_by_role("button", name="Translate").click()
        trace = translator.translate(sentence)
        _wait_for_text(page, "#translation", trace.translation)
        # the plot drawn while its tab is open is this translation's: every target piece labelled
        labels = [f"{s.step}:{s.piece}" for s in trace.steps]
        page.wait_for_function("(ls) => ls.every(l => document.querySelector('#attention-plot').innerText.includes(l))",
                               arg=labels, timeout=15_000)
        seen.append(labels)
    assert seen[0] != seen[1]


def _sampling_page(browser, url, registry, viewport=(1280, 900)):
    """A page translating the default sentence by sampling (from a link), its live chart drawn,
    and a list that collects the requests it sends to the queue."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    joins = []
    page.on("request", lambda r: joins.append(r.url) if "/queue/join" in r.url else None)
    from urllib.parse import quote

    page.goto(f"{url}?method=sample&text={quote(_source_sentence(registry))}")
    page.wait_for_selector(".s2s-live table", timeout=30_000)
    page.wait_for_timeout(500)
    return page, joins


def test_a_dragged_slider_redraws_the_chart_without_a_request_and_its_release_redecodes(page_url, browser):
    url, registry = page_url
    page, joins = _sampling_page(browser, url, registry)
    # look at step 1, then drag the temperature slider with the real mouse
    page.locator("#step input").click()
    page.get_by_role("option").nth(1).click()
    page.wait_for_function("() => document.querySelector('.s2s-live-head').innerText.startsWith('Step 1')")
    page.wait_for_timeout(500)
    before_drag, chart = len(joins), page.inner_text(".s2s-live")
    slider = page.locator("#controls input[type=range]").first
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    x_at = lambda t: box["x"] + box["width"] * (t - 0.05) / (5.0 - 0.05)  # noqa: E731
    page.mouse.move(x_at(1.0), y)
    page.mouse.down()
    draws = page.evaluate("S2SLive.draws")
    for t in (1.5, 2.0, 2.5, 3.0):
        page.mouse.move(x_at(t), y)
        page.wait_for_timeout(80)
    assert page.evaluate("S2SLive.draws") >= draws + 3
    assert page.inner_text(".s2s-live") != chart  # the chart answered the hand
    assert len(joins) == before_drag  # and asked the server nothing
    status = page.inner_text("#status")
    page.mouse.up()
    page.wait_for_function("s => document.querySelector('#status').innerText !== s", arg=status, timeout=30_000)
    page.wait_for_timeout(800)
    assert len(joins) == before_drag + 1  # one release, one request
    assert page.inner_text(".s2s-live-head").startswith("Step 1")  # the step the visitor chose stays


def test_three_samples_differ_and_a_pinned_seed_repeats(page_url, browser):
    url, registry = page_url
    page, _ = _sampling_page(browser, url, registry)
    outputs, seeds = [], []
    for _ in range(3):
        status = page.inner_text("#status")
        page.click("#translate")
        page.wait_for_function("s => document.querySelector('#status').innerText !== s", arg=status,
                               timeout=30_000)
        outputs.append(page.inner_text("#status"))
        seeds.append(page.locator("#seed input").input_value())
    assert len(set(seeds)) == 3 and all(seeds)  # a fresh seed each time, shown in its box
    page.locator("#pin-seed input").check()
    translations = []
    for _ in range(2):
        page.click("#translate")
        page.wait_for_timeout(1500)
        translations.append(page.inner_text("#translation"))
    assert page.locator("#seed input").input_value() == seeds[-1]
    assert translations[0] == translations[1]


def test_beam_size_one_and_every_sampler_at_its_end_show_no_error(page_url, browser):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    from urllib.parse import quote

    text = quote(_source_sentence(registry))
    for query in ("method=beam&beam_size=1&n_best=1", "method=sample&temperature=0.05&top_k=1&top_p=0.01&min_p=1",
                  "method=sample&temperature=5&top_k=0&typical_p=0.01&epsilon_cutoff=0.02&eta_cutoff=0.02"
                  "&repetition_penalty=3", "method=sample&top_k=500&epsilon_cutoff=0.5"):
        page.goto(f"{url}?{query}&text={text}")
        page.wait_for_selector(".s2s-live table", timeout=30_000)
        page.wait_for_timeout(300)
        assert page.locator(".toast-body, [data-testid='toast-body']").count() == 0, query
        assert page.inner_text("#translation").strip(), query


def test_on_a_phone_the_controls_and_the_chart_are_in_view_together(page_url, browser, tmp_path):
    url, registry = page_url
    page, _ = _sampling_page(browser, url, registry, viewport=(390, 844))
    page.locator(".s2s-live table").scroll_into_view_if_needed()
    chart = page.locator(".s2s-live table").bounding_box()
    slider = page.locator("#controls input[type=range]").first
    controls = page.locator("#controls").bounding_box()
    assert chart["y"] < 844 and chart["y"] + 40 < controls["y"]  # the chart's top rows above the sheet
    assert controls["y"] + 40 < 844 and slider.is_visible()
    page.screenshot(path=str((_shots() or tmp_path) / "phone-live.png"))


def test_a_link_to_another_model_keeps_the_translation_it_opens(page_url, browser):
    """The link sets the model; the page's own model switch clears the output, but only when the
    visitor switches, not when a link does (it used to race with the link's translation)."""
    url, registry = page_url
    other = [name for name in registry.names if name != registry.default][0]
    from urllib.parse import quote

    text = _source_sentence(registry, other)
    expected = registry.get(other).translate(text).translation
    for _ in range(3):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}?model={other}&text={quote(text)}")
        _wait_for_text(page, "#translation", expected)
        page.wait_for_timeout(1500)  # a model switch's clearing would have come by now
        assert "".join(expected.split())[:20] in "".join(page.inner_text("#translation").split())
        page.close()


def test_a_joey_model_loaded_by_repo_id_runs_every_view(browser, tmp_path_factory, tmp_path):
    """An imported Joey NMT model, served by the loopback Hub, loaded on the page by its id."""
    from s2s_demo.joey import import_joey

    from .conftest import HUB_PORT
    from .hub_server import HubServer, commit_folder

    joey = ROOT / "tests" / "data" / "joey" / "lstm-bahdanau"
    root = tmp_path_factory.mktemp("joey-hub")
    folder = import_joey(joey / "model.ckpt", joey / "config.yaml", root / "converted")
    server = HubServer(root, HUB_PORT)
    commit_folder(server.repo_path("joey/lstm-bahdanau"), folder, "imported")
    server.start()
    shipped = ModelRegistry.discover(ROOT / "assets" / "models", extra="")
    demo = build_demo(shipped)
    demo.queue(default_concurrency_limit=2)
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=PAGE_CSS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.get_by_text("Load a model from the Hugging Face Hub").click()
        page.get_by_label("Hub repo id", exact=False).fill("joey/no-such-model")
        page.get_by_role("button", name="Load", exact=True).click()
        page.get_by_text("not found", exact=False).first.wait_for(timeout=30_000)
        page.get_by_label("Hub repo id", exact=False).fill("joey/lstm-bahdanau")
        page.get_by_role("button", name="Load", exact=True).click()
        page.wait_for_function("() => document.querySelector('#hub-status textarea')?.value.startsWith('Loaded')",
                               timeout=60_000)
        name = shipped.visitor_models[-1]
        assert shipped.names[:-1] == ModelRegistry.discover(ROOT / "assets" / "models", extra="").names
        sentence = "Ein Mann fährt Fahrrad."
        page.get_by_label("Source sentence", exact=False).fill(sentence)
        page.get_by_role("button", name="Translate").click()
        _wait_for_text(page, "#translation", shipped.get(name).translate(sentence).translation)
        page.get_by_role("tab", name="LSTM").click()
        page.get_by_role("button", name="Show the LSTM's gates and cells").click()
        page.locator("#lstm-heatmap .js-plotly-plot").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Attention").click()
        page.get_by_role("button", name="Attribute the translation").click()
        page.wait_for_function("() => document.querySelector('#attribution').innerText.includes('integrated gradients')",
                               timeout=30_000)
        page.screenshot(path=str((_shots() or tmp_path) / "joey.png"), full_page=True)
    finally:
        demo.close()
        server.stop()


def test_strategies_side_by_side_with_a_reference(page_url, browser, tmp_path):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_label("Source sentence", exact=False).fill(_source_sentence(registry))
    page.get_by_role("tab", name="Strategies").click()
    page.get_by_label("Reference translation (optional)").fill("A man in a red hat rides a bicycle <b>down</b> the street.")
    page.get_by_role("button", name="Run every strategy").click()
    page.wait_for_function("() => document.querySelector('#strategies').innerText.includes('mbr')", timeout=60_000)
    table = page.inner_text("#strategies")
    for strategy in ("greedy", "beam", "sample", "top_p", "epsilon", "mbr"):
        assert strategy in table
    assert page.locator("#strategies b").count() == 0
    if registry.get(None).model.config.tgt_lang == "en":  # the reference is English: scored
        assert "left out" not in page.input_value("#strategies-note textarea")
    page.screenshot(path=str((_shots() or tmp_path) / "strategies.png"), full_page=True)


def test_text_in_the_other_language_offers_the_model_that_reads_it(page_url, browser):
    url, registry = page_url
    default = registry.get(None).model.config
    other = registry.better_model(None, "Two dogs play in the snow." if default.src_lang == "de" else
                                  "Zwei Hunde spielen im Schnee.")
    if other is None:
        pytest.skip("no shipped model reads the default model's target language")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    from s2s_demo.ui.blocks import example_caption

    page.get_by_text(example_caption(registry), exact=False).first.wait_for(timeout=30_000)  # the intro's, for the default model
    text = "Two dogs play in the snow." if default.src_lang == "de" else "Zwei Hunde spielen im Schnee."
    page.get_by_label("Source sentence", exact=False).fill(text)
    page.get_by_role("button", name="Translate").click()
    switch = page.locator("#switch-model")
    switch.wait_for(state="visible", timeout=30_000)
    assert f"translate it with {other} instead" in switch.inner_text()
    switch.click()
    _wait_for_text(page, "#translation", registry.get(other).translate(text).translation)
    page.wait_for_function("() => !document.querySelector('#switch-model') || "
                           "document.querySelector('#switch-model').offsetParent === null", timeout=15_000)
    assert other in page.inner_text("#status")


def test_the_trace_exports_as_json_and_charts_offer_an_image_download(page_url, browser):
    import json
    import urllib.request

    url, registry = page_url
    page, sentence = _translated_page(browser, url, registry)
    page.get_by_text("Raw trace (JSON)").click()
    page.get_by_role("button", name="Export the trace as a JSON file").click()
    link = page.locator("#trace-file a").first
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href")
    with urllib.request.urlopen(href if href.startswith("http") else url.rstrip("/") + href) as response:
        exported = json.loads(response.read().decode("utf-8"))
    assert exported["source"] == sentence and exported["steps"] and "model_top" in exported["steps"][0]
    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    assert chart.locator(".modebar-btn[data-title*='png' i]").count() == 1
    with page.expect_download(timeout=30_000) as svg:
        chart.locator(".s2s-svg").click()
    assert svg.value.suggested_filename.endswith(".svg")


def test_the_guided_tour_walks_to_its_end_and_reopens(page_url, browser, tmp_path):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url.rstrip("/") + "/?tour=1")
    card = page.locator("#s2s-tour")
    card.wait_for(timeout=30_000)
    from s2s_demo.ui.blocks import example_caption

    # stop 1 translates the intro's example
    _wait_for_text(page, "#translation", registry.get(None).translate(example_caption(registry)).translation)
    assert page.locator(".s2s-tour-lit").count() == 1
    titles = [card.locator("h3").inner_text()]
    for _ in range(2):
        card.get_by_role("button", name="Next").click()
        titles.append(card.locator("h3").inner_text())
    assert card.get_attribute("data-stop") == "3"
    card.get_by_role("button", name="Next").click()  # stop 4 waits for the temperature slider to move
    titles.append(card.locator("h3").inner_text())
    page.get_by_label("sample", exact=True).check()
    page.wait_for_timeout(800)  # the sampling sliders appear
    box = page.locator("#controls input[type=range]").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#s2s-tour')?.dataset.stop === '5'", timeout=15_000)
    titles.append(card.locator("h3").inner_text())
    page.screenshot(path=str((_shots() or tmp_path) / "tour.png"))
    card.get_by_role("button", name="Next").click()
    titles.append(card.locator("h3").inner_text())
    card.get_by_role("button", name="Finish").click()
    assert card.count() == 0 and page.locator(".s2s-tour-lit").count() == 0
    assert [t.split(" · ")[0] for t in titles] == ["1", "2", "3", "4", "5", "6"]
    page.get_by_role("button", name="Take the tour").click()
    card.wait_for(timeout=10_000)
    card.get_by_role("button", name="Skip").click()
    assert card.count() == 0


def test_on_a_phone_the_translation_is_in_view_after_translate(page_url, browser, tmp_path):
    url, registry = page_url
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    sentence = _source_sentence(registry)
    page.get_by_label("Source sentence", exact=False).fill(sentence)
    page.get_by_role("button", name="Translate").click()
    _wait_for_text(page, "#translation", registry.get(None).translate(sentence).translation)
    page.wait_for_timeout(500)
    result = page.locator("#translation").bounding_box()
    sheet = page.locator("#controls").bounding_box()
    assert result["y"] >= -1 and result["y"] + result["height"] <= sheet["y"]  # in view, above the sheet
    page.screenshot(path=str((_shots() or tmp_path) / "phone-result.png"))
