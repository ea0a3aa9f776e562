#!/usr/bin/env bash
# Joey NMT in its own virtual environment, beside the CPU torch this project pins.
#   bash benchmarks/joey/setup.sh            -> .venv-joey/ at the repository root
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${JOEY_VENV:-.venv-joey}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
# torch first and pinned, so joeynmt's "torch>=..." is already satisfied by the CPU wheel
"$VENV/bin/pip" install --quiet torch==2.13.0
# joeynmt 2.3.0 imports importlib_metadata without declaring it, and calls
# SentencePieceProcessor.SetVocabulary, which sentencepiece 0.2.1+ no longer has
"$VENV/bin/pip" install --quiet joeynmt==2.3.0 sacrebleu==2.6.0 sentencepiece==0.2.0 importlib-metadata==10.2.0
"$VENV/bin/python" -c "import joeynmt, torch; print('joeynmt', joeynmt.__version__, 'torch', torch.__version__)"
