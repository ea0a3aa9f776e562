"""Turn a training run into a published model folder with a measured model card.

    python -m train.publish --config train/configs/de-en.yaml --out assets/models/de-en
    python -m train.publish ... --push your-name/s2s-de-en     # needs HF_TOKEN

Tunes the beam-5 length penalty on the validation split, scores greedy and beam 5 on the
config's test splits (sacreBLEU + chrF), and writes README.md (Hub metadata + results),
curves.png and results.json beside the weights, with the calibration report (train.calibration)
in both.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import torch

from s2s_demo.hub import push_folder
from s2s_demo.config import ModelConfig
from s2s_demo.model import Seq2Seq
from s2s_demo.model_folder import CARD_FILE, CONFIG_FILE, read_front_matter, write_front_matter
from s2s_demo.translator import load
from s2s_demo.runtime import tune_allocator
from s2s_demo.settings import DecodeSettings

from . import calibration
from .configuration import load_config
from .evaluate import evaluate
from .prepare import read_split
from .train import device_name, read_log

# 2.0 so that a best alpha of 1.5 is a peak, not the grid's edge (en-de: 39.58 at 1.5, 38.00 at 2.0)
LENGTH_PENALTIES = (0.0, 0.6, 1.0, 1.5, 2.0)
LICENSE_NOTE = ("Multi30k is provided for non-commercial research and educational use "
                "(derived from Flickr30K).")
CITATION = ("Elliott, Frank, Sima'an, Specia (2016). Multi30K: Multilingual English-German Image "
            "Descriptions. Proceedings of the 5th Workshop on Vision and Language.\n"
            "Elliott, Frank, Barrault, Bougares, Specia (2017). Findings of the Second Shared Task on "
            "Multimodal Machine Translation and Multilingual Image Description (French data).")


def tune_length_penalty(translator, config: dict) -> tuple[float, dict]:
    """The GNMT alpha with the best beam-5 BLEU on the validation split."""
    valid = read_split(config["data"], config["data"]["valid_split"])
    scores = {}
    for alpha in LENGTH_PENALTIES:
        result = evaluate(translator, valid, DecodeSettings(method="beam", beam_size=5, length_penalty=alpha))
        scores[alpha] = result["bleu"]
        print(f"  valid beam5 alpha={alpha}: BLEU {result['bleu']:.2f}", flush=True)
    best = max(scores, key=lambda a: (scores[a], -a))
    return best, scores


def fit_temperature(translator, config: dict):
    """Fit the model's temperature on the validation split, store it in the folder's config.json
    and return the folder loaded again (so everything measured after sees the calibrated model)."""
    valid = read_split(config["data"], config["data"]["valid_split"])
    log_probs, tokens = calibration.reference_log_probs(translator, valid.source, valid.target)
    temperature = calibration.store_fitted_temperature(translator, log_probs, tokens)
    print(f"  fitted temperature on val: {temperature}", flush=True)
    return load(translator.folder)


def training_summary(run_dir: Path) -> dict:
    rows = read_log(run_dir / "metrics.jsonl")
    valid = [r for r in rows if "valid_bleu" in r]
    last = valid[-1] if valid else {}
    seconds, tokens = last.get("train_seconds", 0.0), last.get("train_tokens", 0)
    checkpoint = run_dir / "checkpoints" / "last.pt"  # the log has every 20th step only
    steps = (torch.load(checkpoint, weights_only=True)["progress"]["step"] if checkpoint.exists()
             else max((r["step"] for r in rows), default=0))
    return {"steps": steps, "train_seconds": round(seconds), "train_tokens": tokens,
            "tokens_per_s": round(tokens / seconds) if seconds else None,
            # runs logged before the hardware was recorded trained on this machine's CPU
            "hardware": last.get("hardware", device_name(torch.device("cpu"))),
            "torch": last.get("torch", torch.__version__),
            "validations": [(r["step"], round(r["valid_bleu"], 2)) for r in valid]}


def write_card(out: Path, config: dict, translator, results: dict, summary: dict, alpha: float,
               alpha_scores: dict, name: str, examples: list[str]) -> None:
    cfg = translator.model.config
    src, tgt = cfg.src_lang, cfg.tgt_lang
    kind = "no attention (plain encoder-decoder)" if cfg.attention == "none" else f"{cfg.attention} attention"
    description = f"BiLSTM encoder → LSTM decoder, {kind}, Multi30k {src}→{tgt}"
    metrics = []
    for split, by_method in results.items():
        for method, r in by_method.items():
            for metric in ("bleu", "chrf"):
                metrics.append({"type": metric, "value": r[metric], "name": f"{split} {method} {metric}"})
    meta = {
        "language": [src, tgt], "license": "cc-by-nc-4.0", "library_name": "s2s-demo",
        "tags": ["translation", "lstm", "seq2seq", "multi30k"], "datasets": ["bentrevett/multi30k"],
        "pipeline_tag": "translation", "model_name": name, "description": description,
        "decoding": {"length_penalty": alpha, "beam_size": 5},
        "widget": [{"text": t} for t in examples],
        "model-index": [{"name": name, "results": [{
            "task": {"type": "translation", "name": f"Translation {src}-{tgt}"},
            "dataset": {"type": "multi30k", "name": "Multi30k task 1"}, "metrics": metrics}]}],
    }
    table = ["| split | decoding | BLEU | chrF |", "|---|---|---|---|"]
    for split, by_method in results.items():
        for method, r in by_method.items():
            table.append(f"| {split} | {method} | {r['bleu']:.2f} | {r['chrf']:.2f} |")
    signature = next(iter(next(iter(results.values())).values()))["bleu_signature"]
    chrf_sig = next(iter(next(iter(results.values())).values()))["chrf_signature"]
    body = f"""# {name}: {src}→{tgt} LSTM translator (Multi30k)

{description}. Made with s2s-demo, a demo that shows every decoding step, the attention
and the beam search of this model.

## Results

Measured with `python -m train.evaluate --model <this folder> --split <split> --method <greedy|beam>`
(beam size 5, GNMT length penalty α = {alpha}, tuned on val). Cased, detokenized sacreBLEU.

{chr(10).join(table)}

BLEU signature: `{signature}`; chrF signature: `{chrf_sig}`.

Length penalty on val (beam 5, BLEU): {", ".join(f"α={a}: {b:.2f}" for a, b in alpha_scores.items())}.

{model_section(cfg, translator.model.num_parameters())}
{training_section(config, cfg, summary)}
![loss and BLEU curves](curves.png)

## Data

Multi30k task 1 (Elliott et al. 2016; 2017 for French): 29,000 training pairs of image captions;
tuned on val (1,014) only. {LICENSE_NOTE}

{CITATION}

## Limits

Trained on short image captions (about 12 words): it translates descriptions of scenes with
people, animals and everyday objects; it does poorly on anything else (news, dialogue, long
sentences, rare names). Small data: expect errors even in domain.
"""
    write_front_matter(out / CARD_FILE, meta, body)
    (out / "results.json").write_text(json.dumps({"results": results, "length_penalty": alpha,
                                                  "length_penalty_val_bleu": alpha_scores,
                                                  "training": summary}, indent=2))


OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam"}


def model_section(cfg, parameters: int) -> str:
    """The card's Model section, from the model's config.json (``cfg``)."""
    return f"""## Model

- Parameters: {parameters:,}
- Embeddings {cfg.emb_size}; encoder BiLSTM {cfg.num_layers} layer(s) × {cfg.enc_hidden_size} per direction;
  bridge from the concatenated final forward/backward states; decoder LSTM {cfg.num_layers} layer(s) × {cfg.dec_hidden_size};
  attention: {cfg.attention}; input feeding: {cfg.input_feeding}; tied target embeddings: {cfg.tie_embeddings}
- Vocabulary: sentencepiece unigram, source {cfg.src_vocab_size}, target {cfg.tgt_vocab_size} pieces
"""


def training_section(config: dict, cfg, summary: dict) -> str:
    """The card's Training section: the recipe read from the training config, the model's own
    config.json (``cfg``) and the run's log summary; facts only."""
    t = config["training"]
    return f"""## Training

Config: `train/configs/{Path(config['_path']).name}` (`python -m train.train --config ...`).
Teacher-forced cross-entropy with label smoothing {t['label_smoothing']}; {OPTIMIZERS[t['optimizer']]} lr {t['lr']},
{t['schedule']} schedule with {t['warmup_steps']} warm-up steps; dropout {cfg.dropout} (embeddings
{cfg.emb_dropout}); batches of ≤ {t['batch_tokens']} tokens; {summary['steps']} steps; the exported weights
average the last {t['average_checkpoints']} checkpoints.

Training time: {summary['train_seconds']} s of optimiser steps for {summary['train_tokens']:,} target tokens
({summary['tokens_per_s']} target tokens/s) on {summary['hardware']}, torch {summary['torch']}.
{_init_note(config)}
Validation BLEU (greedy, val) by step: {", ".join(f"{step}: {bleu}" for step, bleu in summary['validations'])}.
"""


def refresh_card(folder: Path, config: dict) -> None:
    """Rewrite an existing card's Model and Training sections from its config.json, its
    results.json and ``config`` (no evaluation)."""
    meta, body = read_front_matter(folder / CARD_FILE)
    cfg = ModelConfig.load(folder / CONFIG_FILE)
    model_start, model_end = body.index("## Model\n"), body.index("## Training\n")
    body = body[:model_start] + model_section(cfg, Seq2Seq(cfg).num_parameters()) + "\n" + body[model_end:]
    summary = json.loads((folder / "results.json").read_text())["training"]
    start, end = body.index("## Training\n"), body.index("![loss and BLEU curves]")
    if "hardware" not in summary:  # results.json files older than that field: the card's own words
        found = re.search(r"target tokens/s\) on (.+?), torch (\d[\w.+]*?)[:.,]?\s", body[start:end])
        summary = {**summary, "hardware": found.group(1), "torch": found.group(2)}
    write_front_matter(folder / CARD_FILE, meta, body[:start] + training_section(config, cfg, summary) + "\n"
                       + body[end:])


def _init_note(config: dict) -> str:
    """Where a fine-tuning stage started (``training.init_from``), for the card."""
    start = config["training"].get("init_from")
    if not start:
        return ""
    share = config["training"]["export_init_share"]
    blend = (f" The exported weights are {share:g} × those starting weights + {1 - share:g} × the "
             f"fine-tune's checkpoint average (`training.export_init_share`)." if share else "")
    return (f"This run fine-tunes earlier weights: training started from the weights and tokenizer of "
            f"`{start}` (fresh optimiser and schedule).{blend} {config['card'].get('first_stage', '')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="the model folder to write, e.g. assets/models/de-en")
    parser.add_argument("--name", help="model name in the card (default: the folder name)")
    parser.add_argument("--push", metavar="REPO_ID", help="upload to this Hub repo (HF_TOKEN)")
    parser.add_argument("--refresh-card", action="store_true",
                        help="only rewrite the card's Model and Training sections of --out (no evaluation)")
    args = parser.parse_args(argv)
    tune_allocator()
    config = load_config(args.config)
    config["_path"] = args.config
    if args.refresh_card:
        refresh_card(Path(args.out), config)
        print(f"rewrote the Model and Training sections of {Path(args.out) / CARD_FILE}")
        return
    run_dir = Path(config["training"]["out_dir"])
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run_dir / "model", out)
    if (run_dir / "curves.png").exists():
        shutil.copy(run_dir / "curves.png", out / "curves.png")
    translator = load(out)
    if config["training"]["fit_temperature"]:
        translator = fit_temperature(translator, config)
    alpha, alpha_scores = tune_length_penalty(translator, config)
    results = {}
    for split in config["data"]["test_splits"]:
        text = read_split(config["data"], split)
        results[split] = {}
        for method, settings in (("greedy", DecodeSettings(method="greedy")),
                                 ("beam5", DecodeSettings(method="beam", beam_size=5, length_penalty=alpha))):
            r = evaluate(translator, text, settings)
            r.pop("hypotheses")
            results[split][method] = r
            print(f"  {split} {method}: BLEU {r['bleu']:.2f} chrF {r['chrf']:.2f} ({r['seconds']} s)", flush=True)
    examples = read_split(config["data"], config["data"]["test_splits"][0]).source[:8]
    write_card(out, config, translator, results, training_summary(run_dir), alpha, alpha_scores,
               args.name or out.name, examples)
    figures, _ = calibration.report(translator, config["data"], config["data"]["valid_split"])
    valid = read_split(config["data"], config["data"]["valid_split"])
    calibration.record(out, figures, calibration.familiarity_thresholds(translator, valid.source))
    print(calibration.format_figures(str(out), figures))
    print(f"wrote {out}")
    if args.push:
        print(f"uploaded to {args.push} at commit {push_folder(out, args.push)}")


if __name__ == "__main__":
    main()
