#!/usr/bin/env bash
# The fastembed peer of `ipex-embed bench` (ONNX fp32 and ONNX dynamic int8). torch and
# transformers are here only to export the source model to ONNX once (fastembed ships no
# all-MiniLM-L6-v2 that loads offline); torch 2.13.0 goes first, as a CPU wheel.
# Usage: bash benchmarks/peers/setup_fastembed.sh /path/to/venv   (bench: --peers-dir, venv "fastembed")
set -euo pipefail
venv="${1:?usage: setup_fastembed.sh VENV_DIR}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "torch==2.13.0"
"$venv/bin/pip" install "fastembed==0.9.1" onnx transformers numpy
"$venv/bin/pip" uninstall -y torchvision 2>/dev/null || true
"$venv/bin/python" -c "import fastembed, onnxruntime, torch; print('fastembed', fastembed.__version__, 'onnxruntime', onnxruntime.__version__)"
