"""Side by side with Joey NMT on Multi30k de->en, on this machine: training tokens/s,
test BLEU after the same wall-clock training budget, and decoding speed.

    bash benchmarks/joey/setup.sh                       # once: .venv-joey with joeynmt
    python -m benchmarks.joey.compare --budget-minutes 30

Both systems get the same sentencepiece models (trained by our train/prepare.py, vocab
8000 per side, handed to Joey as its tokenizer and vocabulary), the same token-budget
batches (4000 padded tokens), Adam(0.9, 0.98) with the same warm-up + inverse-sqrt
learning rate, label smoothing 0.1, clipping 1.0, and the same recurrent model:
BiLSTM encoder 256 per direction, embeddings 256, one-layer LSTM decoder 512 with
bilinear ("general" / Luong) attention, no input feeding, bridge-initialised decoder,
dropout 0.3. What Joey cannot match is printed with the table (see MISMATCHES).

1. Throughput: --rounds x (ours, Joey) runs of --steps steps each, interleaved so
   drift of the machine hits both; each system's own trainer logs target tokens/s over
   windows of 20 steps (validation excluded); the first window (start-up) is dropped.
2. Budget: both trainers run at the same time, one thread each, for --budget-minutes
   wall-clock minutes (no validation inside the budget), then each last checkpoint
   translates test_2016_flickr with beam 5 (alpha 1.0) and sacreBLEU scores it.
3. Decoding: batch-1 latency (greedy, beam 5) over the first 200 val sentences and
   batched test_2016 translation, each through its Python API, with --threads threads.
   Ours decodes in float32 like Joey; on a CPU with native bfloat16 the table adds rows
   for ours in bfloat16 (the demo's default there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sacrebleu
import sentencepiece as spm
import yaml

from train.configuration import load_config, multi30k_dir
from train.prepare import prepare, read_split

ROOT = Path(__file__).resolve().parents[2]
OUR_CONFIG = ROOT / "train/configs/de-en.yaml"
MISMATCHES = [
    "Joey's output layer cannot be tied to 256-d embeddings behind a 512-d decoder "
    "(tied_softmax needs equal sizes): Joey has an untied 512->V output layer, ours a "
    "tied 256->V one behind a 1024->256 combine layer, so parameter counts differ.",
    "Joey's bridge initialises the LSTM cell state from the same projection as the "
    "hidden state; ours projects both separately.",
    "Joey applies sentencepiece to the raw text; ours NFKC-normalises first.",
]


# ------------------------------------------------------------------ data
def prepare_shared(work: Path, data_path: str) -> dict:
    """Our sentencepiece models + plain text files + Joey vocab files under ``work``."""
    config = load_config(OUR_CONFIG, {"data.path": data_path})
    spm_dir = prepare(config, work / "spm")
    text = work / "text"
    text.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test_2016_flickr"):
        pair = read_split(config["data"], split)
        for lang, lines in (("de", pair.source), ("en", pair.target)):
            (text / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for lang, name in (("de", "source.model"), ("en", "target.model")):
        sp = spm.SentencePieceProcessor(model_file=str(spm_dir / name))
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        (text / f"vocab.{lang}.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return {"spm": spm_dir, "text": text}


def our_overrides(out_dir: Path, data_path: str, spm_dir: Path, **training) -> list[str]:
    """--set arguments for train.train; the shared sentencepiece models go where it looks."""
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    for name in ("source.model", "target.model"):
        shutil.copy(spm_dir / name, out_dir / "data" / name)
    values = {"data.path": data_path, "training.out_dir": str(out_dir), "training.schedule": "inverse_sqrt",
              "training.optimizer": "adam", "training.init_from": None, "training.valid_every": 10**9,
              "training.average_checkpoints": 1, "training.patience": 10**9, **training}
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def joey_config(work: Path, shared: dict, model_dir: Path, updates: int, base: dict) -> Path:
    """A Joey NMT 2.3 config matching train/configs/de-en.yaml as far as Joey allows."""
    text, spm_dir = shared["text"], shared["spm"]
    model_cfg, train_cfg = base["model"], base["training"]

    def side(lang: str, model: str) -> dict:
        return {"lang": lang, "level": "bpe", "tokenizer_type": "sentencepiece",
                "tokenizer_cfg": {"model_file": str(spm_dir / model)},
                "voc_file": str(text / f"vocab.{lang}.txt"), "max_length": base["data"]["max_len"]}

    rnn = {"type": "recurrent", "rnn_type": "lstm", "num_layers": model_cfg["num_layers"],
           "dropout": model_cfg["dropout"],
           "embeddings": {"embedding_dim": model_cfg["emb_size"], "scale": False,
                          "dropout": model_cfg["emb_dropout"]}}
    config = {
        "name": "multi30k-de-en-lstm", "joeynmt_version": "2.3.0", "model_dir": str(model_dir),
        "use_cuda": False, "fp16": False, "random_seed": train_cfg["seed"],
        "data": {"train": str(text / "train"), "dev": str(text / "val"), "test": str(text / "test_2016_flickr"),
                 "dataset_type": "plain", "src": side("de", "source.model"), "trg": side("en", "target.model"),
                 "special_symbols": {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
                                     "bos_token": "<s>", "bos_id": 2, "eos_token": "</s>", "eos_id": 3}},
        "testing": {"beam_size": 5, "beam_alpha": 1.0, "batch_size": 64, "batch_type": "sentence",
                    "eval_metrics": ["bleu"], "max_output_length": 100},
        "training": {"optimizer": "adam", "adam_betas": train_cfg["betas"], "learning_rate": train_cfg["lr"],
                     "learning_rate_min": 1e-8, "scheduling": "warmupinversesquareroot",
                     "learning_rate_warmup": train_cfg["warmup_steps"], "label_smoothing": train_cfg["label_smoothing"],
                     "clip_grad_norm": train_cfg["clip_norm"], "batch_size": train_cfg["batch_tokens"],
                     "batch_type": "token", "normalization": "tokens", "epochs": 1000, "updates": updates,
                     "validation_freq": 10**9, "logging_freq": 20, "early_stopping_metric": "bleu",
                     "model_dir": str(model_dir), "overwrite": True, "shuffle": True, "use_cuda": False,
                     "keep_best_ckpts": 1, "print_valid_sents": []},
        "model": {"initializer": "xavier_uniform", "embed_initializer": "xavier_uniform",
                  "tied_embeddings": False, "tied_softmax": False,
                  "encoder": {**rnn, "hidden_size": model_cfg["enc_hidden_size"], "bidirectional": True},
                  "decoder": {**rnn, "hidden_size": model_cfg["dec_hidden_size"], "attention": "luong",
                              "hidden_dropout": model_cfg["dropout"], "input_feeding": model_cfg["input_feeding"],
                              "init_hidden": "bridge"}},
    }
    path = work / f"joey-{model_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ running both
def thread_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}


def start_ours(config_args: list[str], threads: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "train.train", "--config", str(OUR_CONFIG),
           "--set", f"training.threads={threads}", *config_args]
    return subprocess.Popen(cmd, cwd=ROOT, env=thread_env(threads), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def start_joey(joey_python: str, config: Path, threads: int, log: Path) -> subprocess.Popen:
    cmd = [joey_python, "-m", "joeynmt", "train", str(config), "--skip-test"]
    return subprocess.Popen(cmd, cwd=ROOT, env=thread_env(threads), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def our_rates(out_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]


def joey_rates(model_dir: Path) -> list[float]:
    text = (model_dir / "train.log").read_text(encoding="utf-8")
    return [float(m) for m in re.findall(r"Tokens per Sec:\s+([\d.]+)", text)]


def measure_throughput(args, work: Path, shared: dict, base: dict) -> dict:
    rates = {"ours": [], "joey": []}
    for round_no in range(args.rounds):
        out_dir = work / f"speed-ours-{round_no}"
        proc = start_ours(our_overrides(out_dir, args.data, shared["spm"], **{"training.max_steps": args.steps}),
                          args.threads, work / f"speed-ours-{round_no}.log")
        _wait(proc, "ours")
        rates["ours"] += our_rates(out_dir)[1:]
        model_dir = work / f"speed-joey-{round_no}"
        config = joey_config(work, shared, model_dir, args.steps, base)
        _wait(start_joey(args.joey_python, config, args.threads, work / f"speed-joey-{round_no}.log"), "joey")
        rates["joey"] += joey_rates(model_dir)[1:]
        print(f"throughput round {round_no + 1}/{args.rounds}: ours {statistics.mean(rates['ours']):.0f}, "
              f"joey {statistics.mean(rates['joey']):.0f} target tok/s so far", flush=True)
    return {name: statistics.mean(values) for name, values in rates.items()}


def _wait(proc: subprocess.Popen, name: str) -> None:
    if proc.wait() != 0:
        raise SystemExit(f"{name} exited with {proc.returncode}; see its log under the work folder")


def train_budget(args, work: Path, shared: dict, base: dict) -> dict:
    """Both trainers at once, one thread each, for the same wall-clock minutes."""
    ours_dir, joey_dir = work / "budget-ours", work / "budget-joey"
    minutes = args.budget_minutes
    ours = start_ours(our_overrides(ours_dir, args.data, shared["spm"],
                                    **{"training.max_minutes": minutes, "training.max_steps": 10**9}),
                      1, work / "budget-ours.log")
    joey = start_joey(args.joey_python, joey_config(work, shared, joey_dir, 10**9, base), 1, work / "budget-joey.log")
    start = time.monotonic()
    # Joey has no time limit: interrupt it when the budget is spent (it saves its weights
    # on KeyboardInterrupt); ours stops itself at the same point.
    while time.monotonic() - start < minutes * 60 and joey.poll() is None:
        time.sleep(5)
    joey.send_signal(signal.SIGINT)
    _wait_saved(joey)
    _wait(ours, "ours")
    joey_log = (joey_dir / "train.log").read_text(encoding="utf-8")
    steps_joey = int((re.findall(r"Interrupt at epoch \d+, step (\d+)", joey_log) or ["0"])[-1])
    steps_ours = max(int(p.stem.split("-")[1]) for p in (ours_dir / "checkpoints").glob("step-*.pt"))
    return {"ours_model": ours_dir / "model", "joey_dir": joey_dir, "joey_ckpt": _latest_ckpt(joey_dir),
            "steps": {"ours": steps_ours, "joey": steps_joey}}


def _wait_saved(proc: subprocess.Popen, timeout: float = 300) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def _latest_ckpt(model_dir: Path) -> Path:
    ckpts = sorted(model_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not ckpts:
        raise SystemExit(f"Joey saved no checkpoint in {model_dir}; see its train.log")
    return ckpts[-1].resolve()


# ------------------------------------------------------------------ decoding
def decode_ours(model: Path, shared: dict, threads: int, out: Path, dtype: str = "float32") -> dict:
    cmd = [sys.executable, "-m", "benchmarks.joey.ours_decode", str(model), str(shared["text"] / "val.de"),
           str(shared["text"] / "test_2016_flickr.de"), str(out), "--threads", str(threads), "--dtype", dtype]
    return _result_line(subprocess.run(cmd, cwd=ROOT, env=thread_env(threads), capture_output=True, text=True))


def decode_joey(args, budget: dict, shared: dict, out: Path) -> dict:
    cmd = [args.joey_python, str(ROOT / "benchmarks/joey/joey_decode.py"), str(budget["joey_dir"]),
           str(budget["joey_ckpt"]), str(shared["text"] / "val.de"), str(shared["text"] / "test_2016_flickr.de"),
           str(out), "--threads", str(args.threads)]
    return _result_line(subprocess.run(cmd, cwd=ROOT, env=thread_env(args.threads), capture_output=True, text=True))


def _result_line(done: subprocess.CompletedProcess) -> dict:
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{done.args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def bleu(hypotheses: Path, references: Path) -> float:
    hyps = hypotheses.read_text(encoding="utf-8").splitlines()
    refs = references.read_text(encoding="utf-8").splitlines()
    return sacrebleu.corpus_bleu(hyps, [refs]).score


def mean_words(path: Path) -> float:
    """Whitespace-separated words per line of a translation file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(len(line.split()) for line in lines) / max(len(lines), 1)


# ------------------------------------------------------------------ report
def table(rows: list[tuple[str, float, float, bool]]) -> str:
    """rows: (figure, ours, joey, higher_is_better) -> markdown with ours/theirs ratios."""
    lines = ["| figure | ours | Joey NMT | ours / Joey |", "|---|---:|---:|---:|"]
    for name, ours, joey, _ in rows:
        lines.append(f"| {name} | {ours:,.1f} | {joey:,.1f} | {ours / joey:.2f} |")
    return "\n".join(lines)


def versions(joey_python: str) -> str:
    import torch

    theirs = subprocess.run([joey_python, "-c", "import joeynmt, torch; print(joeynmt.__version__, torch.__version__)"],
                            capture_output=True, text=True).stdout.split()
    return f"ours: torch {torch.__version__}; Joey NMT {theirs[0]} with torch {theirs[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joey-python", default=str(ROOT / ".venv-joey/bin/python"))
    parser.add_argument("--data", default=multi30k_dir())
    parser.add_argument("--work", default="runs/joey-bench")
    parser.add_argument("--steps", type=int, default=80, help="steps per throughput run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=30)
    parser.add_argument("--threads", type=int, default=2, help="threads for throughput and decoding")
    parser.add_argument("--out", default="benchmarks/joey/latest.md")
    args = parser.parse_args()
    if not Path(args.joey_python).exists():
        raise SystemExit(f"{args.joey_python} not found: run `bash benchmarks/joey/setup.sh` first")
    from benchmarks.common import machine_line
    from s2s_demo.inference import resolve_arithmetic

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = load_config(OUR_CONFIG, {"data.path": args.data})
    shared = prepare_shared(work, args.data)
    speed = measure_throughput(args, work, shared, base)
    budget = train_budget(args, work, shared, base)
    refs = shared["text"] / "test_2016_flickr.en"
    ours = decode_ours(budget["ours_model"], shared, args.threads, work / "ours.test.en")
    joey = decode_joey(args, budget, shared, work / "joey.test.en")
    rows = [
        ("training target tokens/s", speed["ours"], speed["joey"], True),
        (f"test_2016 BLEU after {args.budget_minutes:g} min (beam 5)", bleu(work / "ours.test.en", refs),
         bleu(work / "joey.test.en", refs), True),
        (f"steps in {args.budget_minutes:g} min (1 thread each, side by side)", budget["steps"]["ours"],
         budget["steps"]["joey"], True),
        ("greedy latency, batch 1, median ms", ours["latency_greedy_median_ms"], joey["latency_greedy_median_ms"], False),
        ("beam-5 latency, batch 1, median ms", ours["latency_beam5_median_ms"], joey["latency_beam5_median_ms"], False),
        ("beam-5 latency, batch 1, p90 ms", ours["latency_beam5_p90_ms"], joey["latency_beam5_p90_ms"], False),
        ("batched greedy, 1000 test sentences, s", ours["batched_greedy_s"], joey["batched_greedy_s"], False),
        ("batched beam 5, 1000 test sentences, s", ours["batched_beam5_s"], joey["batched_beam5_s"], False),
        # decoding time grows with output length: a weaker model may write longer outputs
        ("words per test translation (beam 5)", mean_words(work / "ours.test.en"),
         mean_words(work / "joey.test.en"), False),
    ]
    if resolve_arithmetic("auto") == "bfloat16":
        # what the demo runs on this CPU; Joey NMT has no bfloat16 CPU decoding to match it
        fast = decode_ours(budget["ours_model"], shared, args.threads, work / "ours-bf16.test.en", "bfloat16")
        rows += [
            ("ours in bfloat16: greedy latency, batch 1, median ms", fast["latency_greedy_median_ms"],
             joey["latency_greedy_median_ms"], False),
            ("ours in bfloat16: beam-5 latency, batch 1, median ms", fast["latency_beam5_median_ms"],
             joey["latency_beam5_median_ms"], False),
            ("ours in bfloat16: batched beam 5, 1000 test sentences, s", fast["batched_beam5_s"],
             joey["batched_beam5_s"], False),
            ("ours in bfloat16: test_2016 BLEU (beam 5)", bleu(work / "ours-bf16.test.en", refs),
             bleu(work / "joey.test.en", refs), True),
        ]
    report = "\n".join([
        f"`python -m benchmarks.joey.compare --budget-minutes {args.budget_minutes:g} --steps {args.steps} "
        f"--rounds {args.rounds} --threads {args.threads}`", "",
        machine_line().replace(f"{__import__('torch').get_num_threads()} threads",
                               f"{args.threads} threads for throughput and decoding"),
        versions(args.joey_python), "", table(rows), "",
        "For latency and batched time lower is better (a ratio below 1 favours ours).",
        "Not matched: " + " ".join(MISMATCHES),
        f"Configs: ours `{OUR_CONFIG.relative_to(ROOT)}` with the overrides in this script; Joey's: "
        f"`{work / 'joey-budget-joey.yaml'}` (written by this script).",
    ])
    print(report)
    Path(args.out).write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
