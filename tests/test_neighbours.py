"""The nearest-training-example index: built from pairs, saved and loaded, queried."""

from __future__ import annotations

import torch

from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo.neighbours import INDEX_FILE, NeighbourIndex
from train.neighbours import build, encode_pairs

from .conftest import corpus_pairs, make_model


def test_a_training_pair_finds_itself_in_both_indexes(tmp_path, toy_tokenizer, toy_tokenizer_dir, toy_corpus):
    save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, tmp_path / "m")
    translator = load(tmp_path / "m")
    sources, targets = corpus_pairs(toy_corpus, "train")
    index = build(translator, sources, targets, 10, 8, 8, corpus_pairs(toy_corpus, "val")[0])
    index.save(tmp_path / "m")
    loaded = NeighbourIndex.load(tmp_path / "m")
    # the built index holds the states the folder stores (float16 values): its floor is the served one
    assert torch.equal(loaded.state_points, index.state_points) and loaded.sources == sources
    assert 0 < loaded.similarity_floor <= 1 and 0 < loaded.state_floor <= 1
    tok = translator.tokenizer
    encodings, states = encode_pairs(translator.model, [(tok.encode_source(s), tok.encode_target(t))
                                                        for s, t in zip(sources[:10], targets[:10])])
    for i in range(10):
        rows, sims = loaded.nearest_sentences(encodings[i], 1)
        assert rows == [i] and abs(sims[0] - 1) < 1e-2
        state_rows, _ = loaded.nearest_states(states[i], 1)
        # each decoder state's nearest training state is its own (the index holds the first 10 pairs)
        assert loaded.state_sentence[state_rows[:, 0]].tolist() == [i] * len(states[i])
        assert loaded.state_position[state_rows[:, 0]].tolist() == list(range(len(states[i])))


def test_the_translator_reads_its_index_and_a_broken_one_is_none(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                                 toy_corpus):
    save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, tmp_path / "m")
    translator = load(tmp_path / "m")
    assert translator.neighbours is None  # no index: the page says so
    sources, targets = corpus_pairs(toy_corpus, "train")
    build(translator, sources, targets, 5, 4, 4, corpus_pairs(toy_corpus, "val")[0]).save(tmp_path / "m")
    nearest = load(tmp_path / "m").nearest_examples(sources[0], k=2)
    assert nearest["sentences"][0]["source"] == sources[0] and len(nearest["trajectory"]["background"]) > 0
    (tmp_path / "m" / INDEX_FILE).write_bytes(b"not a safetensors file")
    assert load(tmp_path / "m").neighbours is None  # logged, and the model still loads


def test_the_engine_gives_the_models_own_states(toy_tokenizer):
    from s2s_demo.inference import InferenceEngine
    from s2s_demo.neighbours import encode_states

    model = make_model(toy_tokenizer, seed=6, num_layers=2)
    src, lengths = torch.tensor([[5, 17, 9, 11], [8, 21, 0, 0]]), torch.tensor([4, 2])
    tgt_in = torch.tensor([[2, 8, 21, 33], [2, 14, 15, 0]])
    reference = encode_states(model, src, lengths, tgt_in)
    engine = encode_states(InferenceEngine(model, "float32"), src, lengths, tgt_in)
    for ours, theirs in zip(reference, engine):
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_state_similarities_are_the_cosines_of_the_stored_states(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                                toy_corpus):
    save_folder(make_model(toy_tokenizer, seed=2), toy_tokenizer_dir, tmp_path / "m")
    translator = load(tmp_path / "m")
    sources, targets = corpus_pairs(toy_corpus, "train")
    index = build(translator, sources, targets, 10, 8, 8, corpus_pairs(toy_corpus, "val")[0])
    queries = torch.randn(7, translator.model.config.dec_hidden_size)
    projected = index.state_projection(queries)
    unit = lambda rows: rows / rows.norm(dim=-1, keepdim=True)  # noqa: E731
    expected = unit(projected) @ unit(index.state_points).T  # (7, M) in float32
    torch.testing.assert_close(index.state_cosines(projected), expected, atol=1e-6, rtol=0)
    rows, values = index.nearest_states(queries, 3)
    torch.testing.assert_close(values, expected.topk(3, dim=1).values, atol=1e-6, rtol=0)
    verdict = index.similarities(torch.randn(2 * translator.model.config.enc_hidden_size), queries)
    assert verdict["states"] == round(float(expected.amax(1).mean()), 4)
