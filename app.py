"""s2s-demo: an interactive LSTM seq2seq translator (Hugging Face Space entry point).

Serves every model folder under assets/models/ plus those in S2S_MODELS (comma-separated
local folders or Hub repo ids, optionally ``@revision``), or, where S2S_MODELS is unset, those
in models.txt (one ``repo@revision`` a line: the Space that ``python -m s2s_demo deploy``
writes). S2S_ARITHMETIC picks what decoding multiplies in: auto (default), float32,
bfloat16, float16, int8 or int8-blocks (see s2s_demo/inference.py).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue summarises its last 10,000 events with pandas after every event (for its
# monitoring page): 10-40 ms of the 2 cores a visitor's click shares. Every 100th event is enough.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from s2s_demo.inference import ARITHMETIC_CHOICES# noqa: E402
from s2s_demo.runtime import tune_allocator  # noqa: E402
from s2s_demo.ui.blocks import PAGE_CSS, build_demo  # noqa: E402
from s2s_demo.ui.registry import ModelRegistry  # noqa: E402

tune_allocator()  # decoding's ~1 MB blocks from the heap, not a fresh mmap each (see s2s_demo/runtime.py)
# Batch-1 decoding is memory-bound: one thread per request, as many requests as cores.
torch.set_num_threads(int(os.environ.get("S2S_TORCH_THREADS", "1")))
CONCURRENCY = int(os.environ.get("S2S_CONCURRENCY", str(os.cpu_count() or 2)))

# auto: float16 weights with float32 activations (half the bytes a step reads; see s2s_demo/inference.py)
# S2S_INFERENCE_DTYPE: the old name, still read (deprecated)
ARITHMETIC = os.environ.get("S2S_ARITHMETIC") or os.environ.get("S2S_INFERENCE_DTYPE", "auto")
if ARITHMETIC not in ARITHMETIC_CHOICES:
    raise SystemExit(f"S2S_ARITHMETIC={ARITHMETIC!r} is not one of {', '.join(ARITHMETIC_CHOICES)}.")

HERE = Path(__file__).parent
MODELS_FILE = HERE / "models.txt"
extra = os.environ.get("S2S_MODELS")
if extra is None and MODELS_FILE.is_file():
    extra = ",".join(MODELS_FILE.read_text(encoding="utf-8").split())
# configs, cards and tokenizers now; the weights once the page is served (or at a model's first use)
registry = ModelRegistry.discover(HERE / "assets" / "models", extra=extra, arithmetic=ARITHMETIC, lazy=True)
if not registry.names:
    reasons = "; ".join(f"{ref}: {why}" for ref, why in registry.errors.items()) or "assets/models is empty"
    raise SystemExit(f"No model could be loaded ({reasons}). Set S2S_MODELS to a model folder or Hub repo id.")
demo = build_demo(registry)
demo.queue(default_concurrency_limit=CONCURRENCY, max_size=int(os.environ.get("S2S_MAX_QUEUE", "64")))

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), css=PAGE_CSS, prevent_thread_lock=True)
    registry.start_warming()
    demo.block_thread()
