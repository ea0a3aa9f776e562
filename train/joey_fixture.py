"""Make tests/data/joey/: tiny Joey NMT recurrent models and Joey's own outputs, to test
``python -m s2s_demo import-joey`` against. Runs once, inside Joey NMT's environment:

    bash benchmarks/joey/setup.sh                        # .venv-joey with joeynmt 2.3.0
    .venv-joey/bin/python -m train.joey_fixture --data ../shared/data/multi30k

1. sentencepiece models (unigram, 500 pieces a side, Joey's special ids: unk 0, pad 1, bos 2,
   eos 3) on the first 4,000 Multi30k de-en training pairs, and Joey vocabulary files listing
   their pieces in id order;
2. ``lstm-bahdanau``: Joey NMT trains a BiLSTM encoder (64 per direction), an LSTM decoder
   (64) with Bahdanau attention, input feeding and Joey's bridge for --updates updates;
3. ``gru-luong``: a BiGRU encoder, an LSTM decoder with Luong attention and no input feeding
   (a second mapping), trained for half as many updates;
4. for each, Joey's greedy outputs (pieces and per-step log-probs) and beam-5 outputs
   (alpha 1.0) on the first 20 test_2016_flickr sentences, in ``outputs.json``.

Checkpoints keep Joey's ``model_state`` only (no optimiser state), so they stay small.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import sentencepiece as spm
import torch
import yaml

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "joey"
TRAIN_PAIRS, TEST_SENTENCES, VOCAB = 4000, 20, 500
SPECIALS = {"unk_token": "<unk>", "unk_id": 0, "pad_token": "<pad>", "pad_id": 1,
            "bos_token": "<s>", "bos_id": 2, "eos_token": "</s>", "eos_id": 3}
MAX_OUTPUT_LENGTH = 40


def read_lines(data: Path, split: str, lang: str, limit: int) -> list[str]:
    with gzip.open(data / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(limit), f)]


def sentencepiece(work: Path, lines: list[str], name: str) -> list[str]:
    """Train ``name``.model on ``lines``; return its pieces in id order."""
    text = work / f"{name}.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(work / name), vocab_size=VOCAB,
                                   model_type="unigram", character_coverage=1.0, unk_id=0, pad_id=1,
                                   bos_id=2, eos_id=3, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(work / f"{name}.model"))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def joey_config(work: Path, name: str, encoder_rnn: str, attention: str, feeding: bool, updates: int) -> dict:
    def side(lang: str, model: str, vocab: str) -> dict:
        return {"lang": lang, "level": "bpe", "tokenizer_type": "sentencepiece", "lowercase": False,
                "tokenizer_cfg": {"model_file": model}, "voc_file": vocab, "max_length": 60}

    def rnn(kind: str, hidden: int) -> dict:
        return {"type": "recurrent", "rnn_type": kind, "num_layers": 1, "hidden_size": hidden, "dropout": 0.1,
                "embeddings": {"embedding_dim": 32, "scale": False, "dropout": 0.1}}

    return {
        "name": name, "joeynmt_version": "2.3.0", "model_dir": str(work / name), "use_cuda": False,
        "fp16": False, "random_seed": 7,
        "data": {"train": str(work / "train"), "dev": str(work / "dev"), "test": str(work / "dev"),
                 "dataset_type": "plain", "special_symbols": SPECIALS,
                 "src": side("de", "source.model", "src_vocab.txt"),
                 "trg": side("en", "target.model", "trg_vocab.txt")},
        "testing": {"beam_size": 5, "beam_alpha": 1.0, "batch_size": 20, "batch_type": "sentence",
                    "max_output_length": MAX_OUTPUT_LENGTH, "eval_metrics": ["bleu"]},
        "training": {"optimizer": "adam", "learning_rate": 0.005, "scheduling": "warmupinversesquareroot",
                     "learning_rate_warmup": 100, "learning_rate_min": 1e-6, "batch_size": 2000, "batch_type": "token",
                     "normalization": "tokens", "epochs": 100, "updates": updates, "validation_freq": 10**6,
                     "logging_freq": 50, "label_smoothing": 0.1, "clip_grad_norm": 1.0,
                     "early_stopping_metric": "loss", "model_dir": str(work / name), "overwrite": True,
                     "shuffle": True, "use_cuda": False, "keep_best_ckpts": 1, "print_valid_sents": []},
        "model": {"initializer": "xavier_uniform", "embed_initializer": "normal", "embed_init_weight": 0.1,
                  "bias_initializer": "normal", "init_weight": 0.1,
                  "tied_embeddings": False, "tied_softmax": False,
                  "encoder": {**rnn(encoder_rnn, 64), "bidirectional": True},
                  "decoder": {**rnn("lstm", 64), "attention": attention, "hidden_dropout": 0.1,
                              "input_feeding": feeding, "init_hidden": "bridge"}},
    }


def train(work: Path, config: dict, updates: int) -> Path:
    """Train (or, with 0 updates, only build and initialise) with Joey; return the checkpoint."""
    model_dir = Path(config["model_dir"])
    path = work / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if updates:
        ckpt = model_dir / f"{updates}.ckpt"
        if not ckpt.exists():  # a finished run is reused
            subprocess.run([sys.executable, "-m", "joeynmt", "train", str(path), "--skip-test"], check=True, cwd=work)
    else:
        from joeynmt.config import parse_global_args
        from joeynmt.model import build_model
        from joeynmt.vocabulary import build_vocab

        torch.manual_seed(config["random_seed"])
        with contextlib.chdir(work):  # the config names its files relative to the work folder
            args = parse_global_args(json.loads(json.dumps(config)), rank=0, mode="train")  # it edits in place
            src_vocab, trg_vocab = build_vocab(args.data)
            model = build_model(config["model"], src_vocab=src_vocab, trg_vocab=trg_vocab)
        model_dir.mkdir(parents=True, exist_ok=True)
        ckpt = model_dir / "init.ckpt"
        torch.save({"model_state": model.state_dict()}, ckpt)
    return ckpt


def package(work: Path, config: dict, ckpt: Path) -> Path:
    """Copy the checkpoint (model_state only), a relative-path config and the vocabulary into OUT."""
    name = config["name"]
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({"model_state": state["model_state"]}, folder / "model.ckpt")
    for file in ("source.model", "target.model", "src_vocab.txt", "trg_vocab.txt"):
        shutil.copy(work / file, folder / file)
    config = json.loads(json.dumps(config))
    config["model_dir"] = "."
    config["training"]["model_dir"] = "."
    for split in ("train", "dev"):
        config["data"].pop(split)
    config["data"]["test"] = "test"  # Joey wants a data source named; translating reads none
    config["testing"]["load_model"] = "model.ckpt"
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def joey_outputs(folder: Path, sentences: list[str]) -> dict:
    """Joey's greedy pieces and per-step log-probs, and beam-5 outputs, for ``sentences``."""
    from joeynmt.hub_interface import TranslatorHubInterface, _from_pretrained

    model, dataset, args = _from_pretrained(folder, cfg_file="config.yaml")
    joey = TranslatorHubInterface(model, dataset, args)
    with torch.inference_mode():
        greedy = joey.score(sentences, beam_size=1)
        greedy_text = joey.translate(sentences, beam_size=1)
        beam = joey.score(sentences, beam_size=5, beam_alpha=1.0)
        beam_text = joey.translate(sentences, beam_size=5, beam_alpha=1.0)
    return {
        "sentences": sentences, "max_output_length": MAX_OUTPUT_LENGTH, "beam_size": 5, "beam_alpha": 1.0,
        "greedy": [{"text": text, "pieces": list(out.tokens[0]),
                    "log_probs": [float(p) for p in out.token_probs[0]]}
                   for text, out in zip(greedy_text, greedy)],
        "beam": [{"text": text, "pieces": list(out.tokens[0]), "score": float(out.sequence_probs[0])}
                 for text, out in zip(beam_text, beam)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Multi30k folder")
    parser.add_argument("--work", default="runs/joey-fixture")
    parser.add_argument("--updates", type=int, default=400)
    args = parser.parse_args()
    data, work = Path(args.data), Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    de, en = read_lines(data, "train", "de", TRAIN_PAIRS), read_lines(data, "train", "en", TRAIN_PAIRS)
    for split, (src, trg) in {"train": (de, en), "dev": (de[:100], en[:100])}.items():
        (work / f"{split}.de").write_text("\n".join(src) + "\n", encoding="utf-8")
        (work / f"{split}.en").write_text("\n".join(trg) + "\n", encoding="utf-8")
    for lang, name, vocab in (("de", "source", "src_vocab.txt"), ("en", "target", "trg_vocab.txt")):
        pieces = sentencepiece(work, de if lang == "de" else en, name)
        (work / vocab).write_text("\n".join(pieces) + "\n", encoding="utf-8")
    tests = read_lines(data, "test_2016_flickr", "de", TEST_SENTENCES)
    for name, encoder_rnn, attention, feeding, updates in (
            ("lstm-bahdanau", "lstm", "bahdanau", True, args.updates),
            ("gru-luong", "gru", "luong", False, args.updates // 2)):
        config = joey_config(work, name, encoder_rnn, attention, feeding, updates)
        folder = package(work, config, train(work, config, updates))
        outputs = joey_outputs(folder, tests)
        (folder / "outputs.json").write_text(json.dumps(outputs, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        print(f"{folder}: {sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.2f} MB; "
              f"greedy[0] {outputs['greedy'][0]['text']!r}")


if __name__ == "__main__":
    main()
