"""What the visitor waits for in the browser: the first translation, each later one, and
opening the raw trace of a large translation.

    python -m benchmarks.page [--model de-en] [--beam-size 16] [--n-best 16] [--clicks 10] [--pause-ms 1000]

Serves the page as ``app.py`` builds it (its arithmetic, threads and queue) on loopback and drives Debian's Chromium with
Playwright (``/usr/bin/chromium``) at 1280x1000:

- first Translate: the page loaded, one click on Translate (beam 5), until the translation is on
  the page and the browser has drawn the next frame after it (the plots come in the same update);
- click to result: the same for ``--clicks`` more clicks, alternating two example sentences so
  that every click changes the page (median after one warm-up, and p90); each click comes
  ``--pause-ms`` after the sentence is typed, as a visitor's comes after reading the last
  result (with 0, a click also waits for what the last one left running: its raw-trace event
  and Plotly's resize redraw 100 ms after each plot);
- raw trace: a long sentence at ``--beam-size`` / ``--n-best``, then a click on "Raw trace
  (JSON)", the seconds until the browser's next frame (the tab is frozen until then) and how
  many elements the page holds afterwards;
- the explainer views (beam 5, the default model's first two examples): from the click on their button
  until their plot is drawn, beside the milliseconds the server reports computing them (the
  rest is the queue, the transfer and the drawing): LSTM internals, attribution, nearest examples.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .common import machine_line  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SENTENCE = ("Ein Mann mit einem roten Hut fährt mit seinem Fahrrad die lange Straße entlang, "
            "während zwei Hunde im Park spielen.")


def set_number(page, label: str, value: int) -> None:
    box = page.locator(f"input[type=number][aria-label='number input for {label}']")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)


# runs in the page: click the button ``sel[0]``, resolve with the milliseconds until the element
# ``sel[1]`` holds the text ``sel[2]`` and a frame has been drawn after that
CLICK_UNTIL = """async (sel) => {
  const [button, target, text] = sel;
  const norm = s => s.replace(/\\s+/g, ' ').trim();
  const start = performance.now();
  document.querySelector(button).click();
  await new Promise((resolve, reject) => {
    const done = () => { const e = document.querySelector(target); return e && norm(e.innerText).includes(norm(text)); };
    if (done()) return resolve();
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
    setTimeout(() => { observer.disconnect(); reject(new Error(`no "${text}" in ${target} after 60 s`)); }, 60000);
  });
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - start;
}"""


def click_to_result_ms(page, expected: str) -> float:
    """Click Translate; milliseconds until ``expected`` is in the translation and drawn."""
    return page.evaluate(CLICK_UNTIL, ["#translate button, button#translate", "#translation", expected])


# (tab, button, plot, text in the drawn plot, the server's own figure: a regex over the page text)
VIEWS = (("LSTM", "#lstm-button", "#lstm-heatmap", "forget gate", None),
         ("Attention", "#attribute", "#attribution", "integrated gradients", r"Computed in (\d+) ms"),
         ("Neighbours", "#find-neighbours", "#trajectory", "this translation", r"Found in (\d+) ms"))


def time_views(page, registry) -> None:
    """Each explainer view, opened 3 times after a warm-up, on the default model's first two examples."""
    import re

    translator = registry.get(registry.default)
    texts = [w["text"] for w in translator.card["widget"][:2]]
    expected = [translator.translate(text).translation for text in texts]
    box = page.get_by_label("Source sentence", exact=False)
    for tab, button, plot, marker, computed in VIEWS:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_selector(button)
        times = []
        for i in range(4):  # the first is a warm-up; each Translate (of another sentence) empties the view
            box.fill(texts[i % 2])
            click_to_result_ms(page, expected[i % 2])
            page.wait_for_function(f"() => !document.querySelector('{plot} .js-plotly-plot')", timeout=30_000)
            # the view was emptied by the Translate: wait for its new plot
            times.append(page.evaluate(CLICK_UNTIL, [f"{button} button, button{button}", f"{plot} .js-plotly-plot",
                                                     marker]))
        times = times[1:]
        found = re.search(computed, page.inner_text("body")) if computed else None
        server = f", of which the server reports {found.group(1)} ms computing" if found else ""
        print(f"{tab} view: click to plot drawn {statistics.median(times):.0f} ms (median of 3){server}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="de-en")
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--n-best", type=int, default=16)
    parser.add_argument("--text", default=SENTENCE)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--pause-ms", type=int, default=1000)
    args = parser.parse_args()
    import app  # the page exactly as the Space serves it: its threads, arithmetic, queue and allocator

    registry, demo = app.registry, app.demo
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=app.PAGE_CSS)
    print(machine_line())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            time_translations(page, registry, args.clicks, args.pause_ms)
            time_views(page, registry)
            page.get_by_role("tab", name="Steps").click()
            if args.model != registry.default:
                page.get_by_label("Model").click()
                page.get_by_role("option", name=registry.label(args.model)).click()
            page.get_by_label("Source sentence", exact=False).fill(args.text)
            set_number(page, "Beam size", args.beam_size)
            set_number(page, "n-best", args.n_best)
            page.get_by_role("button", name="Translate").click()
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the plots finish drawing
            start = time.perf_counter()
            page.get_by_text("Raw trace (JSON)").click()
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
            seconds = time.perf_counter() - start
            elements = page.evaluate("() => document.getElementsByTagName('*').length")
            print(f"raw trace of {args.model}, beam {args.beam_size}, n-best {args.n_best}: opened in "
                  f"{seconds:.2f} s (click to the next frame), {elements:,} elements in the page")
            browser.close()
    finally:
        demo.close()


def time_translations(page, registry, clicks: int, pause_ms: int = 1000) -> None:
    """First Translate after load, then ``clicks`` more (beam 5, the default model's examples),
    each ``pause_ms`` after the sentence is typed."""
    translator = registry.get(registry.default)
    examples = [w["text"] for w in translator.card.get("widget", [])[:2]]
    expected = [translator.translate(text).translation for text in examples]
    box = page.get_by_label("Source sentence", exact=False)
    page.wait_for_selector("#translate")
    box.fill(examples[0])
    first = click_to_result_ms(page, expected[0])
    times = []
    for i in range(clicks + 1):  # the first of these is the warm-up
        box.fill(examples[(i + 1) % 2])
        page.wait_for_timeout(pause_ms)
        times.append(click_to_result_ms(page, expected[(i + 1) % 2]))
    times = sorted(times[1:])
    print(f"first Translate after load: {first:.0f} ms; click to translation and plots drawn "
          f"(beam 5, {registry.default}, {clicks} clicks after a warm-up, each {pause_ms} ms after typing): median "
          f"{statistics.median(times):.0f} ms, p90 {times[int(0.9 * (len(times) - 1))]:.0f} ms")


if __name__ == "__main__":
    main()
