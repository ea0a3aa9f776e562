import json
import subprocess
import sys

import pytest

from s2s_demo.translator import load
from s2s_demo.model_folder import save_folder
from s2s_demo.settings import DecodeSettings

from .conftest import ROOT, make_model


def test_translate_command_reads_lines_and_writes_one_per_line(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                               toy_sentences):
    folder = save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, tmp_path / "toy")
    lines = [toy_sentences[0], "", toy_sentences[1]]
    result = subprocess.run([sys.executable, "-m", "s2s_demo", "translate", "--model", str(folder),
                             "--method", "greedy"], input="\n".join(lines) + "\n", capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("\n")[:-1]
    expected = load(folder).translate_batch(lines, load(folder).default_settings().replace(method="greedy"))
    assert out == expected and out[1] == "" and out[0]


def test_translate_command_names_the_lines_it_could_not_translate(tmp_path, toy_tokenizer, toy_tokenizer_dir,
                                                                   toy_sentences):
    """Both commands refuse what ``Translator.translate`` refuses, line by line: the other
    lines are translated; the exit status is 1 only under --strict."""
    from s2s_demo.translator import MAX_CHARS

    folder = save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, tmp_path / "toy")
    lines = [toy_sentences[0], "x" * (MAX_CHARS + 1), toy_sentences[1]]
    command = [sys.executable, "-m", "s2s_demo", "translate", "--model", str(folder), "--method", "greedy"]
    for strict, status in (([], 0), (["--strict"], 1)):
        result = subprocess.run(command + strict, input="\n".join(lines) + "\n", capture_output=True,
                                text=True, cwd=ROOT, timeout=300)
        assert result.returncode == status, result.stderr
        out = result.stdout.split("\n")[:-1]
        assert len(out) == 3 and out[0] and out[1] == "" and out[2]
        assert "line 2 not translated" in result.stderr and "characters" in result.stderr
        assert "line 1" not in result.stderr and "line 3" not in result.stderr


def test_batch_and_single_translation_share_one_input_policy(random_translator, toy_sentences):
    """A text ``translate`` refuses is refused by ``translate_batch`` with the same reason,
    never truncated; a forced prefix is resolved and applied in both."""
    from s2s_demo.translator import MAX_SOURCE_TOKENS, InputError

    long_text = " ".join([toy_sentences[0]] * (MAX_SOURCE_TOKENS // 2))
    with pytest.raises(InputError) as refused:
        random_translator.translate(long_text)
    reason = str(refused.value)
    settings = DecodeSettings(method="greedy")
    outputs = random_translator.translate_batch([long_text, toy_sentences[1]], settings)
    assert outputs[0] == "" and outputs.errors == {0: reason}
    assert outputs[1] == random_translator.translate(toy_sentences[1], settings).translation
    piece = random_translator.translate(toy_sentences[1], settings).steps[1].piece
    forced = settings.replace(forced_prefix=(piece,))
    assert random_translator.translate_batch([toy_sentences[1]], forced)[0] == \
        random_translator.translate(toy_sentences[1], forced).translation


def test_translate_command_bad_model_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "s2s_demo", "translate", "--model", str(tmp_path / "none")],
                            input="", capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_evaluate_command_passes_its_decoding_options_on(tmp_path, toy_tokenizer, toy_tokenizer_dir, toy_corpus):
    folder = save_folder(make_model(toy_tokenizer), toy_tokenizer_dir, tmp_path / "toy")
    output = tmp_path / "hyps.txt"
    result = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", str(folder), "--corpus", "parallel",
                             "--data", str(toy_corpus), "--split", "val", "--length-penalty", "0.8",
                             "--length-penalty-type", "average", "--no-repeat-ngram-size", "2", "--json",
                             "--output", str(output)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert (scores["length_penalty"], scores["length_penalty_type"], scores["no_repeat_ngram_size"]) == \
        (0.8, "average", 2)
    translator = load(folder)
    settings = DecodeSettings(method="beam", beam_size=5, length_penalty=0.8, length_penalty_type="average",
                              no_repeat_ngram_size=2)
    sources = (toy_corpus / "val.de").read_text(encoding="utf-8").splitlines()
    assert output.read_text(encoding="utf-8").splitlines() == translator.translate_batch(sources, settings)


def test_the_cli_starts_without_importing_gradio():
    import subprocess
    import sys

    code = "import sys, s2s_demo.__main__; print('gradio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
