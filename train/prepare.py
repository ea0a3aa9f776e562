"""Read a parallel corpus, normalise it and train the sentencepiece models.

Corpora: Multi30k task 1 (from a local folder of the official ``*.gz`` files, or
downloaded from the official repository), a TSV file (source<TAB>target per line), or a
pair of plain-text files with one sentence per line.

    python -m train.prepare --config train/configs/de-en.yaml
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from s2s_demo.tokenizer import SOURCE_FILE, TARGET_FILE, train_sentencepiece
from s2s_demo.tokenizer import normalize_text as normalize

from .configuration import load_config

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz"
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr")


@dataclass
class ParallelText:
    source: list[str]
    target: list[str]

    def __post_init__(self) -> None:
        if len(self.source) != len(self.target):
            raise ValueError(f"source has {len(self.source)} lines but target has {len(self.target)}")

    def __len__(self) -> int:
        return len(self.source)


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [normalize(line) for line in f]


def download_multi30k(dest: Path, langs: tuple[str, ...], splits=MULTI30K_SPLITS) -> Path:
    """Fetch the official Multi30k task-1 raw files into ``dest`` (skips files present)."""
    dest.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for lang in langs:
            target = dest / f"{split}.{lang}.gz"
            if target.exists():
                continue
            url = MULTI30K_URL.format(split=split, lang=lang)
            tmp = target.with_suffix(".part")
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
            tmp.rename(target)
    return dest


def read_multi30k(folder: Path, split: str, src_lang: str, tgt_lang: str) -> ParallelText:
    files = [folder / f"{split}.{lang}.gz" for lang in (src_lang, tgt_lang)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"Multi30k files not found: {missing}")
    return ParallelText(_read_lines(files[0]), _read_lines(files[1]))


def read_tsv(path: Path) -> ParallelText:
    source, target = [], []
    for number, line in enumerate(_read_raw(path), 1):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected 2 tab-separated fields, got {len(parts)}")
        source.append(normalize(parts[0]))
        target.append(normalize(parts[1]))
    return ParallelText(source, target)


def _read_raw(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return list(f)


def read_split(data_cfg: dict, split: str) -> ParallelText:
    """One split of the configured corpus (the train split cut to ``train_limit`` pairs
    when that is set, for small experiments)."""
    text = _read_split(data_cfg, split)
    limit = data_cfg.get("train_limit") or 0
    if limit and split == data_cfg.get("train_split", "train"):
        text = ParallelText(text.source[:limit], text.target[:limit])
    return text


def _read_split(data_cfg: dict, split: str) -> ParallelText:
    corpus = data_cfg["corpus"]
    src, tgt = data_cfg["src_lang"], data_cfg["tgt_lang"]
    folder = Path(data_cfg["path"])
    if corpus == "multi30k":
        if data_cfg.get("download") and not (folder / f"{split}.{src}.gz").exists():
            download_multi30k(folder, (src, tgt))
        return read_multi30k(folder, split, src, tgt)
    if corpus == "tsv":
        return read_tsv(folder / f"{split}.tsv")
    if corpus == "parallel":
        return ParallelText(_read_lines(folder / f"{split}.{src}"), _read_lines(folder / f"{split}.{tgt}"))
    raise ValueError(f"unknown corpus kind {corpus!r} (multi30k, tsv, parallel)")


def prepare(config: dict, out_dir: Path) -> Path:
    """Train source/target sentencepiece models into ``out_dir/data``; returns that folder."""
    data_cfg = config["data"]
    data_dir = out_dir / "data"
    if (data_dir / SOURCE_FILE).exists() and (data_dir / TARGET_FILE).exists():
        return data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    train = read_split(data_cfg, data_cfg.get("train_split", "train"))
    vocab = data_cfg.get("vocab_size", 8000)
    model_type = data_cfg.get("sentencepiece_type", "unigram")
    steps = tqdm(total=2, desc="sentencepiece", disable=None)
    if data_cfg.get("joint_vocab", False):
        path = train_sentencepiece(train.source + train.target, data_dir / "joint", vocab, model_type)
        shutil.copy(path, data_dir / SOURCE_FILE)
        shutil.copy(path, data_dir / TARGET_FILE)
        steps.update(2)
    else:
        for text, name in ((train.source, SOURCE_FILE), (train.target, TARGET_FILE)):
            path = train_sentencepiece(text, data_dir / Path(name).stem, vocab, model_type)
            steps.update(1)
            assert path == data_dir / name
    steps.close()
    return data_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out-dir", help="defaults to the config's training.out_dir")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    out_dir = Path(args.out_dir or config["training"]["out_dir"])
    print(prepare(config, out_dir))


if __name__ == "__main__":
    main()
