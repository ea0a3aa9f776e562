"""The LSTM's recorded internals against the model's own nn.LSTM and decoding."""

import pytest
import torch

from s2s_demo.settings import DecodeSettings

from .conftest import make_model


@pytest.fixture(scope="module")
def recorded(toy_tokenizer, toy_sentences):
    from s2s_demo.translator import Translator

    model = make_model(toy_tokenizer, seed=3, num_layers=2).eval()
    translator = Translator(model, toy_tokenizer)
    settings = DecodeSettings(method="beam", beam_size=3)
    plain = translator.translate(toy_sentences[1], settings)
    traced = translator.translate(toy_sentences[1], settings, internals=True)
    return model, translator.source_ids(toy_sentences[1]), plain, traced


def test_recording_the_internals_changes_no_translation(recorded):
    _, _, plain, traced = recorded
    assert plain.internals is None and traced.internals is not None
    assert traced.translation == plain.translation
    assert traced.hypotheses[0].token_ids == plain.hypotheses[0].token_ids
    assert traced.timings_ms["internals_ms"] > 0


def test_textbook_equations_match_the_models_own_lstms(recorded):
    """Encoder outputs, the bridge's decoder state and every decoder layer's final (h, c)
    recomputed by nn.LSTM from the same weights equal the recorded ones (float32, 1e-5)."""
    model, source, _, traced = recorded
    rec, tokens = traced.internals, traced.hypotheses[0].token_ids
    close = dict(atol=1e-5, rtol=0)
    with torch.no_grad():
        memory, _ = model.encoder(model.src_embed(torch.tensor([source])))  # (1, S, 2He)
        top = rec["encoder"][-1]
        torch.testing.assert_close(torch.tensor([f + b for f, b in zip(top["forward"], top["backward"])]),
                                   memory[0], **close)
        state = model.encode(torch.tensor([source]), torch.tensor([len(source)]))
        for layer, bridge in enumerate(rec["bridge"]):
            torch.testing.assert_close(torch.tensor(bridge["decoder_h0"]), state.h[layer, 0], **close)
            torch.testing.assert_close(torch.tensor(bridge["decoder_c0"]), state.c[layer, 0], **close)
            assert bridge["concatenated"] == bridge["forward_final"] + bridge["backward_final"]
        inputs = model.tgt_embed(torch.tensor([[model.config.bos_id] + tokens[:-1]]))
        out, (h, c) = model.decoder(inputs, (state.h, state.c))
    decoder = rec["decoder"]
    assert len(decoder) == 2 and len(decoder[0]["hidden"]) == len(tokens)
    torch.testing.assert_close(torch.tensor(decoder[-1]["hidden"]), out[0], **close)
    for layer in range(2):
        torch.testing.assert_close(torch.tensor(decoder[layer]["hidden"][-1]), h[layer, 0], **close)
        torch.testing.assert_close(torch.tensor(decoder[layer]["cell"][-1]), c[layer, 0], **close)
        for gate in ("input_gate", "forget_gate", "output_gate"):
            values = torch.tensor(decoder[layer][gate])
            assert values.shape == (len(tokens), model.config.dec_hidden_size)
            assert bool(((values > 0) & (values < 1)).all())  # sigmoids
