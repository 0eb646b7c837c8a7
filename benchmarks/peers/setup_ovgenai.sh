#!/usr/bin/env bash
# The openvino-genai peer of `ipex-embed bench` (TextEmbeddingPipeline); openvino-tokenizers
# converts the tokenizer to the IRs the pipeline needs.
# Usage: bash benchmarks/peers/setup_ovgenai.sh /path/to/venv   (bench: --peers-dir with venv "ovgenai")
set -euo pipefail
venv="${1:?usage: setup_ovgenai.sh VENV_DIR}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "openvino==2026.4.1" "openvino-tokenizers[transformers]==2026.4.1.0" \
    "openvino-genai==2026.4.1.0" numpy
"$venv/bin/python" -c "import openvino_genai, openvino_tokenizers; print('openvino-genai', openvino_genai.__version__)"
