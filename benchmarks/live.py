"""The page as an instrument: a slider dragged, a slider let go, Translate pressed again.

    python -m benchmarks.live [--model en-de] [--moves 20] [--releases 10]

Serves the page (the shipped models, a queue of 2) on loopback and drives Debian's Chromium with Playwright
at 1280x900, sampling mode, a caption sentence:

- drag: the temperature slider held and moved ``--moves`` times with the real mouse; each move,
  the milliseconds until the step chart has been redrawn and a frame drawn after it (median),
  and how many requests the page sent meanwhile (should be 0);
- release: the slider let go ``--releases`` times at new values; the milliseconds until the
  translation on the page is the reply to that value and a frame is drawn (median), and how many
  requests each release sent to the queue (should be 1);
- dice: the temperature back at 1 (the page's defaults), Translate pressed 3 times; how many
  distinct outputs;
- payload: what the live chart costs the server, in-process, 1 thread: the trace's JSON size and
  the median time of ``Translator.translate`` (search, recording, live payloads, trace) for beam 5
  and for sampling (whose payloads carry 16 temperatures), over 20 runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .common import machine_line  # noqa: E402
from .page import ARGS, CHROMIUM  # noqa: E402

SENTENCE = "A man in a red hat rides a bike down the street."

# runs in the page: resolves with the ms until the live chart has been drawn again and a frame after it
MOVE_AND_WAIT = """async (n) => {
  const start = performance.now();
  const drawn = await new Promise((resolve) => {
    const check = () => (window.S2SLive.draws > n ? resolve(true)
      : performance.now() - start > 3000 ? resolve(false) : requestAnimationFrame(check));
    check();
  });
  if (!drawn) return null;
  await new Promise(requestAnimationFrame);
  return performance.now() - start;
}"""


def _serve(model: str):
    from pathlib import Path

    from s2s_demo.ui.blocks import PAGE_CSS, build_demo
    from s2s_demo.ui.registry import ModelRegistry

    registry = ModelRegistry.discover(Path(__file__).parents[1] / "assets" / "models", extra="")
    demo = build_demo(registry)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, css=PAGE_CSS)
    return demo, f"{url}?model={model}&method=sample&text={SENTENCE.replace(' ', '+')}"


def payload_figures(model: str, runs: int = 20) -> str:
    """Trace JSON size and translate time for beam 5 and sampling (see the module docstring)."""
    import json

    import torch

    from s2s_demo.translator import load
    from s2s_demo.settings import DecodeSettings

    torch.set_num_threads(1)
    translator = load(f"assets/models/{model}")
    parts = []
    for method in ("beam", "sample"):
        settings = DecodeSettings(method=method, seed=1)
        times = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            trace = translator.translate(SENTENCE, settings)
            times.append(1000 * (time.perf_counter() - start))
        size = len(json.dumps(trace.to_dict()))
        parts.append(f"{method}: trace {size / 1000:.0f} KB, translate {statistics.median(times[1:]):.1f} ms")
    torch.set_num_threads(2)
    return f"payload ({len(trace.steps)} steps, 1 thread, median of {runs}): " + "; ".join(parts)


def _slider_x(box: dict, value: float, low: float, high: float) -> float:
    return box["x"] + box["width"] * (value - low) / (high - low)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="en-de")
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--releases", type=int, default=10)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(machine_line())
    print(payload_figures(args.model))
    demo, url = _serve(args.model)
    joins: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: joins.append(time.perf_counter()) if r.url.endswith("/queue/join") or
                "/queue/join?" in r.url else None)
        page.goto(url)
        page.wait_for_selector(".s2s-live table", timeout=60_000)
        page.wait_for_timeout(1000)
        slider = page.locator("#controls input[type=range]").first
        box = slider.bounding_box()
        y = box["y"] + box["height"] / 2
        # drag
        page.mouse.move(_slider_x(box, 1.0, 0.05, 5.0), y)
        page.mouse.down()
        before, times = len(joins), []
        for i in range(args.moves):
            n = page.evaluate("window.S2SLive.draws")
            page.mouse.move(_slider_x(box, 1.0 + 0.1 * (i + 1), 0.05, 5.0), y)
            times.append(page.evaluate(MOVE_AND_WAIT, n))
        drag_requests = len(joins) - before
        missed = times.count(None)
        times = [t for t in times if t is not None] or [float("nan")]
        page.mouse.up()
        page.wait_for_timeout(1500)
        print(f"drag -> chart redrawn: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over "
              f"{args.moves} moves ({missed} not redrawn within 3 s); requests sent while dragging: {drag_requests}")
        # release
        release_times, per_release = [], []
        for i in range(args.releases):
            status = page.locator("#status").inner_text()
            value = 0.6 + 0.1 * (i % 8)
            page.mouse.move(_slider_x(box, value, 0.05, 5.0), y)
            before = len(joins)
            start = time.perf_counter()
            page.mouse.down()
            page.mouse.up()
            page.wait_for_function("s => document.querySelector('#status').innerText !== s", arg=status,
                                   timeout=30_000)
            page.evaluate("() => new Promise(requestAnimationFrame)")
            release_times.append(1000 * (time.perf_counter() - start))
            page.wait_for_timeout(600)
            per_release.append(len(joins) - before)
        print(f"release -> every view redrawn: median {statistics.median(release_times):.0f} ms over "
              f"{args.releases} releases; requests per release: {per_release}")
        # dice
        outputs = []
        page.mouse.click(_slider_x(box, 1.0, 0.05, 5.0), y)  # back to the default temperature
        page.wait_for_timeout(1500)
        for _ in range(3):
            status = page.locator("#status").inner_text()
            page.click("#translate")
            page.wait_for_function("s => document.querySelector('#status').innerText !== s", arg=status,
                                   timeout=30_000)
            outputs.append(page.locator("#translation").inner_text())
        print(f"3 presses of Translate at default settings: {len(set(outputs))} distinct outputs")
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
