import pytest
import torch

from s2s_demo.config import ConfigError, ModelConfig
from s2s_demo.model import sequence_log_prob

from .conftest import make_model

KINDS = [("none", False), ("general", False), ("additive", False), ("general", True), ("additive", True)]


def _batch(tokenizer, texts):
    ids = [tokenizer.encode_source(t) for t in texts]
    src = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
    for i, row in enumerate(ids):
        src[i, : len(row)] = torch.tensor(row)
    return src, torch.tensor([len(r) for r in ids])


@pytest.mark.parametrize("attention,feeding", KINDS)
def test_forward_shapes_and_padding_invariance(toy_tokenizer, toy_sentences, attention, feeding):
    extra = {}
    model = make_model(toy_tokenizer, attention=attention, input_feeding=feeding, num_layers=2, **extra)
    short, long = toy_sentences[0], toy_sentences[1] + " " + toy_sentences[2]
    tgt_in = torch.tensor([[2, 10, 11, 12]])
    alone_src, alone_len = _batch(toy_tokenizer, [short])
    both_src, both_len = _batch(toy_tokenizer, [short, long])
    alone = model(alone_src, alone_len, tgt_in)
    both = model(both_src, both_len, tgt_in.repeat(2, 1))
    assert alone.shape == (1, 4, toy_tokenizer.tgt_vocab_size)
    # padding the short sentence to the long one's length changes nothing
    torch.testing.assert_close(alone[0], both[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention,feeding", KINDS)
def test_step_by_step_equals_teacher_forcing(toy_tokenizer, toy_sentences, attention, feeding, layers):
    extra = {}
    model = make_model(toy_tokenizer, attention=attention, input_feeding=feeding, num_layers=layers, **extra)
    src, lengths = _batch(toy_tokenizer, toy_sentences[:2])
    tgt_in = torch.tensor([[2, 7, 8, 9], [2, 9, 8, 7]])
    tgt_out = torch.tensor([[7, 8, 9, 3], [9, 8, 7, 3]])
    expected = sequence_log_prob(model, src, lengths, tgt_in, tgt_out)
    state = model.encode(src, lengths)
    got = []
    for t in range(4):
        with torch.no_grad():
            log_probs, attn, state = model.step(tgt_in[:, t], state)
        got.append(log_probs.gather(1, tgt_out[:, t : t + 1]).squeeze(1))
        if attention == "none":
            assert attn is None
        else:
            assert attn.shape == src.shape
            torch.testing.assert_close(attn.sum(-1), torch.ones(2))
            assert float(attn[lengths == lengths.min()][:, lengths.min():].abs().sum()) == 0.0
    torch.testing.assert_close(torch.stack(got, 1), expected, atol=1e-5, rtol=1e-5)


def test_bridge_uses_both_directions(toy_tokenizer, toy_sentences):
    model = make_model(toy_tokenizer)
    assert model.bridge_h.in_features == 2 * model.config.enc_hidden_size
    src, lengths = _batch(toy_tokenizer, toy_sentences[:1])
    state = model.encode(src, lengths)
    assert state.h.shape == (1, 1, model.config.dec_hidden_size)
    assert state.memory.shape == (1, src.size(1), 2 * model.config.enc_hidden_size)


def test_tied_embeddings_share_storage(toy_tokenizer):
    model = make_model(toy_tokenizer, tie_embeddings=True)
    assert model.generator.weight.data_ptr() == model.tgt_embed.weight.data_ptr()
    untied = make_model(toy_tokenizer, tie_embeddings=False)
    assert untied.generator.weight.data_ptr() != untied.tgt_embed.weight.data_ptr()


@pytest.mark.parametrize("bad,match", [
    ({"attention": "luong"}, "attention"),
    ({"emb_size": 0}, "emb_size"),
    ({"dropout": 1.5}, "dropout"),
    ({"attention": "dot"}, "attention"),
    ({"encoder_rnn": "gru"}, "bridge"),
    ({"bridge": "joey"}, "bridge"),
    ({"attention": "none", "input_feeding": True}, "input_feeding"),
    ({"pad_id": 1}, "special ids"),
])
def test_bad_config_names_the_problem(bad, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(src_vocab_size=100, tgt_vocab_size=100, **bad)


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = ModelConfig(src_vocab_size=100, tgt_vocab_size=90, attention="additive")
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg
    with pytest.raises(ConfigError, match="unknown config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "hidden": 3})
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({"tgt_vocab_size": 5})


def _decode_log_probs(model, src, lengths, tgt_in):
    """Log-probs (B, T, V) of ``model.step`` (a model or an engine) over tgt_in, and the encoder memory."""
    with torch.no_grad():
        state = model.encode(src, lengths)
        memory = state.memory
        steps = []
        for t in range(tgt_in.size(1)):
            log_probs, _, state = model.step(tgt_in[:, t], state)
            steps.append(log_probs)
    return torch.stack(steps, 1), memory


def test_unpadded_and_padded_batches_decode_alike(toy_tokenizer, toy_sentences):
    """A sentence alone (no mask needed) and padded in a batch give the same step log-probs."""
    model = make_model(toy_tokenizer)
    short, long = toy_sentences[0], toy_sentences[1] + " " + toy_sentences[2]
    alone_src, alone_len = _batch(toy_tokenizer, [short])
    both_src, both_len = _batch(toy_tokenizer, [short, long])
    with torch.no_grad():
        assert not model.encode(alone_src, alone_len).padded and model.encode(both_src, both_len).padded
    tgt_in = torch.tensor([[2, 10, 11]])
    alone, _ = _decode_log_probs(model, alone_src, alone_len, tgt_in)
    both, _ = _decode_log_probs(model, both_src, both_len, tgt_in.repeat(2, 1))
    torch.testing.assert_close(alone[0], both[0], atol=1e-5, rtol=1e-5)
