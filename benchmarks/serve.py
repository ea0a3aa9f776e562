"""The served demo: cold start, end-to-end request latency, and a concurrent load.

    python -m benchmarks.serve --clients 32 --requests 10

Starts ``python app.py`` on loopback (all shipped models), measures the time from process
start until the page answers, then the median/p95 of sequential beam-5 ``/translate``
requests through gradio_client, then N clients x M requests at once (errors and p95).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gradio_client import Client

from train.configuration import multi30k_dir
from train.prepare import read_split

from .common import machine_line, percentile

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while time.perf_counter() - start < 120:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, time.perf_counter() - start
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the app did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="de-en")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    sentences = read_split({"corpus": "multi30k", "path": multi30k_dir(),
                            "src_lang": "de", "tgt_lang": "en"}, "val").source
    port = free_port()
    proc, cold = start_app(port)
    try:
        print(machine_line())
        print(f"cold start (process start -> page served): {cold:.1f} s")
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False)
        client.predict(sentences[0], model=args.model, api_name="/translate")
        times = []
        for text in sentences[: args.sequential]:
            start = time.perf_counter()
            client.predict(text, model=args.model, method="beam", beam_size=5, api_name="/translate")
            times.append((time.perf_counter() - start) * 1000)
        print(f"sequential beam-5 /translate via gradio_client ({len(times)} requests): "
              f"median {statistics.median(times):.0f} ms, p95 {percentile(times, 95):.0f} ms")

        def one_client(i: int) -> tuple[list[float], int]:
            c = Client(url, verbose=False)
            lat, errors = [], 0
            for j in range(args.requests):
                start = time.perf_counter()
                try:
                    c.predict(sentences[(i * args.requests + j) % len(sentences)], model=args.model,
                              api_name="/translate")
                    lat.append((time.perf_counter() - start) * 1000)
                except Exception:  # noqa: BLE001 - counted and reported
                    errors += 1
            return lat, errors

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one_client, range(args.clients)))
        wall = time.perf_counter() - start
        lat = [x for r in results for x in r[0]]
        errors = sum(r[1] for r in results)
        print(f"{args.clients} clients x {args.requests} requests at once: {errors} errors, "
              f"p50 {statistics.median(lat):.0f} ms, p95 {percentile(lat, 95):.0f} ms, "
              f"{len(lat) / wall:.1f} requests/s")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
