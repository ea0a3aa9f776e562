"""What the visitor waits for in the browser: opening the raw trace of a large translation.

    python -m benchmarks.page [--model de-en] [--beam-size 16] [--n-best 16]

Serves the page (``build_demo`` over assets/models) on loopback, drives Debian's Chromium with
Playwright (``/usr/bin/chromium``), translates a long sentence at the given beam size and n-best,
then clicks "Raw trace (JSON)" and prints the seconds until the browser's next frame (the tab is
frozen until then) and how many elements the page holds afterwards.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from s2s_demo.ui.blocks import build_demo  # noqa: E402
from s2s_demo.ui.registry import ModelRegistry  # noqa: E402

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


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="de-en")
    parser.add_argument("--beam-size", type=int, default=16)
    parser.add_argument("--n-best", type=int, default=16)
    parser.add_argument("--text", default=SENTENCE)
    args = parser.parse_args()
    registry = ModelRegistry.discover("assets/models", extra="")
    demo = build_demo(registry)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    print(machine_line())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
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


if __name__ == "__main__":
    main()
