"""The served demo: cold start, end-to-end request latency, and a concurrent load.

    python -m benchmarks.serve --clients 32 --requests 10

Starts ``python app.py`` on loopback (all shipped models), measures the time from process
start until the page answers, then the median/p95 of sequential beam-5 ``/translate``
requests, then N clients x M requests at once (errors and p95).

Requests go over HTTP as curl and the page send them: POST ``/gradio_api/call/translate``, then
read its event stream until ``complete``. ``--gradio-client`` adds the same sequential run through
gradio_client, which polls its message queue every 50 ms and so adds up to that much per request.
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
import json
import urllib.request
import uuid
from pathlib import Path

import httpx
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


class HttpClient:
    """The app's REST API as curl uses it: one POST to start a call, one event stream to its end.

    Every call carries the client's own ``session_hash``, as the page's calls carry the page's:
    Gradio sets up a session on its first call (~11 ms for this page's 206 blocks) and reuses it."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip("/") + "/gradio_api/call/"
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex
        # each endpoint's parameters in order, with their defaults: the call takes a positional list
        info = self.http.get(url.rstrip("/") + "/gradio_api/info").raise_for_status().json()
        self.parameters = {name: [(p["parameter_name"], p.get("parameter_default")) for p in spec["parameters"]]
                           for name, spec in info["named_endpoints"].items()}

    def predict(self, api_name: str, **params) -> list:
        """``params`` as the endpoint's named parameters -> the endpoint's outputs; raises
        TypeError for a parameter the endpoint does not have (it would be dropped unsent) and
        RuntimeError on an error event."""
        name = api_name.strip("/")
        unknown = set(params) - {param for param, _ in self.parameters[api_name]}
        if unknown:
            raise TypeError(f"{api_name} has no parameter {', '.join(sorted(unknown))}")
        data = [params.get(param, default) for param, default in self.parameters[api_name]]
        body = {"data": data, "session_hash": self.session}
        event = self.http.post(self.base + name, json=body).raise_for_status().json()["event_id"]
        kind = None
        with self.http.stream("GET", f"{self.base}{name}/{event}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("complete", "error"):
                    if kind == "error":
                        raise RuntimeError(f"{api_name}: {line[6:]}")
                    return json.loads(line[6:])
        raise RuntimeError(f"{api_name}: the event stream ended without a result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="de-en")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--gradio-client", action="store_true",
                        help="also time the sequential requests through gradio_client")
    args = parser.parse_args()
    sentences = read_split({"corpus": "multi30k", "path": multi30k_dir(),
                            "src_lang": "de", "tgt_lang": "en"}, "val").source
    port = free_port()
    proc, cold = start_app(port)
    try:
        print(machine_line())
        print(f"cold start (process start -> page served): {cold:.1f} s")
        url = f"http://127.0.0.1:{port}/"
        clients = {"HTTP": HttpClient(url).predict}
        if args.gradio_client:
            gradio = Client(url, verbose=False)
            clients["gradio_client"] = lambda api_name, **params: gradio.predict(**params, api_name=api_name)
        for how, predict in clients.items():
            predict("/translate", text=sentences[0], model=args.model)
            times = []
            for text in sentences[: args.sequential]:
                start = time.perf_counter()
                predict("/translate", text=text, model=args.model, method="beam", beam_size=5)
                times.append((time.perf_counter() - start) * 1000)
            print(f"sequential beam-5 /translate via {how} ({len(times)} requests): "
                  f"median {statistics.median(times):.0f} ms, p95 {percentile(times, 95):.0f} ms")

        def one_client(i: int) -> tuple[list[float], int]:
            c = HttpClient(url)
            lat, errors = [], 0
            for j in range(args.requests):
                start = time.perf_counter()
                try:
                    c.predict("/translate", text=sentences[(i * args.requests + j) % len(sentences)],
                              model=args.model)
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
        print(f"{args.clients} clients x {args.requests} requests at once (HTTP): {errors} errors, "
              f"p50 {statistics.median(lat):.0f} ms, p95 {percentile(lat, 95):.0f} ms, "
              f"{len(lat) / wall:.1f} requests/s")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
