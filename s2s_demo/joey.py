"""Import a Joey NMT recurrent model into a model folder (``python -m s2s_demo import-joey``).

Joey NMT (joeynmt 2.3) trains the same family as ``train/``: a bidirectional RNN encoder, a
bridge, an LSTM decoder with attention. Its checkpoint is read with
``torch.load(weights_only=True)`` (no pickled code runs) and every tensor is mapped by name;
a tensor left over or missing, a shape that disagrees with the YAML, or a feature with no
counterpart here is an :class:`JoeyImportError` naming it, never a silent skip.

What maps, and to what (``s2s_demo.config.ModelConfig``):

- encoder: ``rnn_type`` lstm or gru, bidirectional -> ``encoder_rnn``;
- decoder: LSTM, ``attention`` bahdanau -> "additive" (its query layer has no bias: a zero
  bias here), luong -> "general"; ``input_feeding``; ``init_hidden`` "bridge" -> the
  "last_hidden" bridge (Joey starts every decoder layer's h and c from one projection of the
  last encoder layer's final h), "zero" -> the same bridge with zero weights;
- ``att_vector_layer`` (biased) -> ``combine`` with ``combine_bias``; ``output_layer`` (no
  bias) -> ``generator`` with a zero bias; ``tied_softmax`` -> ``tie_embeddings``;
  ``embeddings.scale`` is folded into the embedding weights (exact);
- vocabulary: Joey's vocabulary files must hold exactly the pieces of its sentencepiece models
  (in any order: rows are permuted into sentencepiece's id order).

Not mapped (each an error): Transformer models, GRU decoders, unidirectional encoders,
encoder and decoder layer counts that differ, ``init_hidden: last``, activations other than
tanh, lowercasing, and BPE (subword-nmt), character or word vocabularies.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import sentencepiece as spm
import torch
import yaml

from .config import ConfigError, ModelConfig
from .model import Seq2Seq
from .model_folder import save_folder
from .tokenizer import SOURCE_FILE, TARGET_FILE

ATTENTION = {"bahdanau": "additive", "luong": "general"}


class JoeyImportError(ValueError):
    """A Joey NMT checkpoint or config this importer cannot map; the message names what."""


def _get(mapping: dict, path: str, default=None):
    """``mapping["a"]["b"]`` for path "a.b", or ``default`` where a key is missing."""
    for key in path.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


def _file(path_text, config_dir: Path, what: str) -> Path:
    """A file the YAML names: as written, else beside the YAML (Joey's own rule for model dirs)."""
    if not path_text:
        raise JoeyImportError(f"the config names no {what}")
    path = Path(path_text)
    for candidate in (path, config_dir / path, config_dir / path.name):
        if candidate.is_file():
            return candidate
    raise JoeyImportError(f"{what} {path_text!r} not found (looked beside {config_dir})")


def check_architecture(model: dict, data: dict) -> None:
    """Raise JoeyImportError for the first feature with no counterpart here."""
    enc, dec = model.get("encoder", {}), model.get("decoder", {})
    if enc.get("type", "recurrent") != "recurrent" or dec.get("type", "recurrent") != "recurrent":
        raise JoeyImportError("this is a Transformer model; only recurrent (RNN) Joey NMT models import")
    if dec.get("rnn_type", "gru") != "lstm":
        raise JoeyImportError(f"decoder rnn_type {dec.get('rnn_type', 'gru')!r}: only LSTM decoders import")
    if not enc.get("bidirectional", True):
        raise JoeyImportError("the encoder is unidirectional; only bidirectional encoders import")
    if enc.get("num_layers", 1) != dec.get("num_layers", 1):
        raise JoeyImportError(f"encoder and decoder layer counts differ ({enc.get('num_layers', 1)} vs "
                              f"{dec.get('num_layers', 1)}); this model has one count for both")
    if dec.get("attention", "bahdanau") not in ATTENTION:
        raise JoeyImportError(f"attention {dec.get('attention')!r} is not bahdanau or luong")
    if dec.get("init_hidden", "bridge") not in ("bridge", "zero"):
        raise JoeyImportError(f"init_hidden {dec.get('init_hidden')!r}: only 'bridge' and 'zero' import")
    if dec.get("activation", "tanh") != "tanh":
        raise JoeyImportError(f"decoder activation {dec.get('activation')!r}: only tanh imports")
    if _get(enc, "embeddings.embedding_dim") != _get(dec, "embeddings.embedding_dim"):
        raise JoeyImportError("source and target embedding sizes differ; this model has one size for both")
    for side in ("src", "trg"):
        if data.get(side, {}).get("tokenizer_type") != "sentencepiece":
            raise JoeyImportError(f"data.{side}.tokenizer_type is {data.get(side, {}).get('tokenizer_type')!r}: "
                                  "only sentencepiece vocabularies import (not subword-nmt BPE, chars or words)")
        if data[side].get("lowercase", False):
            raise JoeyImportError(f"data.{side}.lowercase is on; this project does not lowercase its input")


def model_config(cfg: dict, src_sp, trg_sp) -> ModelConfig:
    """The ModelConfig of a (checked) Joey YAML with these sentencepiece models."""
    model, data = cfg["model"], cfg["data"]
    enc, dec = model["encoder"], model["decoder"]
    specials = {name: getattr(trg_sp, name)() for name in ("pad_id", "unk_id", "bos_id", "eos_id")}
    if -1 in specials.values() or specials != {n: getattr(src_sp, n)() for n in specials}:
        raise JoeyImportError(f"the sentencepiece models must both define pad, unk, bos and eos at the same ids; "
                              f"target has {specials}")
    try:
        return ModelConfig(
            src_vocab_size=src_sp.get_piece_size(), tgt_vocab_size=trg_sp.get_piece_size(),
            emb_size=_get(enc, "embeddings.embedding_dim"), enc_hidden_size=enc["hidden_size"],
            dec_hidden_size=dec["hidden_size"], num_layers=dec.get("num_layers", 1),
            dropout=float(dec.get("dropout", 0.0)), emb_dropout=float(_get(dec, "embeddings.dropout", 0.0)),
            attention=ATTENTION[dec.get("attention", "bahdanau")], input_feeding=bool(dec.get("input_feeding", True)),
            tie_embeddings=bool(model.get("tied_softmax", False)), encoder_rnn=enc.get("rnn_type", "gru"),
            bridge="last_hidden", combine_bias=True, src_lang=str(data["src"].get("lang", "src")),
            tgt_lang=str(data["trg"].get("lang", "tgt")), **specials,
            extra={"imported_from": "joeynmt", "joey_name": str(cfg.get("name", ""))})
    except (ConfigError, KeyError, TypeError) as err:
        raise JoeyImportError(f"the Joey config does not describe a model this project can build: {err}") from err


def row_order(vocab: list[str], sp, side: str) -> torch.Tensor:
    """For each sentencepiece id, the row of Joey's vocabulary holding that piece (V,)."""
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    index = {piece: i for i, piece in enumerate(vocab)}
    missing = [p for p in pieces if p not in index]
    extra = sorted(set(vocab) - set(pieces))
    if missing or extra or len(vocab) != len(pieces):
        raise JoeyImportError(f"{side} vocabulary size mismatch: Joey's vocabulary has {len(vocab)} tokens, its "
                              f"sentencepiece model {len(pieces)} pieces ({len(missing)} pieces missing from the "
                              f"vocabulary, e.g. {missing[:3]}; {len(extra)} tokens not pieces, e.g. {extra[:3]})")
    return torch.tensor([index[p] for p in pieces])


class _Tensors:
    """Joey's state dict, handed out by name once each; what is never asked for is an error."""

    def __init__(self, state: dict) -> None:
        self.state, self.used = state, set()

    def __call__(self, name: str) -> torch.Tensor:
        if name not in self.state:
            raise JoeyImportError(f"the checkpoint has no parameter {name!r}")
        self.used.add(name)
        return self.state[name].float()

    def check_all_used(self) -> None:
        left = sorted(set(self.state) - self.used)
        if left:
            raise JoeyImportError(f"the checkpoint has parameters this model has no place for: {', '.join(left[:5])}")


def map_weights(state: dict, config: ModelConfig, joey: dict, src_rows, trg_rows) -> dict:
    """Joey's parameter names -> this model's state dict (tensors in sentencepiece id order)."""
    take = _Tensors(state)
    dec = joey["model"]["decoder"]
    scale = math.sqrt(config.emb_size) if _get(joey["model"]["encoder"], "embeddings.scale") else 1.0
    trg_scale = math.sqrt(config.emb_size) if _get(dec, "embeddings.scale") else 1.0
    out = {"src_embed.weight": take("src_embed.lut.weight")[src_rows] * scale}
    trg_embed = take("trg_embed.lut.weight")[trg_rows]
    out["tgt_embed.weight"] = trg_embed * trg_scale
    for name in [k for k in state if k.startswith("encoder.rnn.")]:
        out["encoder." + name[len("encoder.rnn."):]] = take(name)
    for name in [k for k in state if k.startswith("decoder.rnn.")]:
        out["decoder." + name[len("decoder.rnn."):]] = take(name)
    if dec.get("init_hidden", "bridge") == "bridge":
        weight, bias = take("decoder.bridge_layer.weight"), take("decoder.bridge_layer.bias")
    else:  # zero: tanh(0 x + 0) = 0, Joey's zero initial state
        weight = torch.zeros(config.dec_hidden_size, 2 * config.enc_hidden_size)
        bias = torch.zeros(config.dec_hidden_size)
    for side in ("h", "c"):  # Joey sets h and c alike
        out[f"bridge_{side}.weight"], out[f"bridge_{side}.bias"] = weight, bias
    out["combine.weight"] = take("decoder.att_vector_layer.weight")
    out["combine.bias"] = take("decoder.att_vector_layer.bias")
    out["attention.key_proj.weight"] = take("decoder.attention.key_layer.weight")
    if config.attention == "additive":
        query = take("decoder.attention.query_layer.weight")
        out["attention.query_proj.weight"], out["attention.query_proj.bias"] = query, torch.zeros(query.size(0))
        out["attention.v.weight"] = take("decoder.attention.energy_layer.weight")
    if config.tie_embeddings:
        take("decoder.output_layer.weight")  # the same tensor as the target embedding
        out["generator.weight"] = out["tgt_embed.weight"]
    else:
        out["generator.weight"] = take("decoder.output_layer.weight")[trg_rows]
    out["generator.bias"] = torch.zeros(config.tgt_vocab_size)
    take.check_all_used()
    return out


def read_checkpoint(path: Path) -> dict:
    """A Joey checkpoint's ``model_state``, read without unpickling code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise JoeyImportError(f"checkpoint {path} not found") from err
    except Exception as err:  # truncated, not a torch file, or pickled code weights_only refuses
        raise JoeyImportError(f"{path} is not a readable Joey NMT checkpoint: {str(err).splitlines()[0]}") from err
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise JoeyImportError(f"{path} holds no Joey NMT model_state")
    return state


def read_yaml(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise JoeyImportError(f"cannot read the Joey config {path}: {err}") from err
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict) or not isinstance(cfg.get("data"), dict):
        raise JoeyImportError(f"{path} is not a Joey NMT config (no model and data sections)")
    return cfg


def import_joey(checkpoint: Path, config_path: Path, out: Path) -> Path:
    """Convert a Joey NMT checkpoint + its YAML into a model folder at ``out``; returns ``out``."""
    cfg = read_yaml(config_path)
    check_architecture(cfg["model"], cfg["data"])
    here = Path(config_path).parent
    sp_files = {side: _file(_get(cfg["data"], f"{side}.tokenizer_cfg.model_file"), here, f"{side} sentencepiece model")
                for side in ("src", "trg")}
    sps = {side: spm.SentencePieceProcessor(model_file=str(path)) for side, path in sp_files.items()}
    config = model_config(cfg, sps["src"], sps["trg"])
    rows = {}
    for side in ("src", "trg"):
        vocab_path = _file(cfg["data"][side].get("voc_file"), here, f"{side} vocabulary file")
        vocab = vocab_path.read_text(encoding="utf-8").splitlines()
        rows[side] = row_order(vocab, sps[side], side)
    weights = map_weights(read_checkpoint(Path(checkpoint)), config, cfg, rows["src"], rows["trg"])
    model = Seq2Seq(config)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise JoeyImportError(f"the checkpoint's shapes disagree with its config: {str(err).splitlines()[-1].strip()}") from err
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(sp_files["src"], out / SOURCE_FILE)
    shutil.copy(sp_files["trg"], out / TARGET_FILE)
    return save_folder(model.eval(), out, out, card=model_card(cfg, config, Path(checkpoint)))


def model_card(joey: dict, config: ModelConfig, checkpoint: Path) -> str:
    """A card that states what was imported and how it maps, from the configs themselves."""
    dec = joey["model"]["decoder"]
    name = str(joey.get("name") or checkpoint.stem)
    return f"""---
model_name: {name} (Joey NMT)
description: {config.src_lang}→{config.tgt_lang} Joey NMT recurrent model, imported
language: [{config.src_lang}, {config.tgt_lang}]
library_name: s2s-demo
tags: [translation, lstm, joeynmt]
---

# {name}

Imported from the Joey NMT checkpoint `{checkpoint.name}` with `python -m s2s_demo import-joey`.

- encoder: bidirectional {config.encoder_rnn.upper()}, {config.enc_hidden_size} per direction, {config.num_layers} layer(s)
- decoder: LSTM {config.dec_hidden_size}, {dec.get("attention", "bahdanau")} attention (here: {config.attention}),
  input feeding {"on" if config.input_feeding else "off"}, Joey's bridge (`init_hidden: {dec.get("init_hidden", "bridge")}`)
- embeddings {config.emb_size}, vocabularies {config.src_vocab_size} / {config.tgt_vocab_size} sentencepiece pieces
- calibration: none (the network's own softmax)

No evaluation figures travel with an imported model; `python -m train.evaluate --model DIR` measures them.
"""
