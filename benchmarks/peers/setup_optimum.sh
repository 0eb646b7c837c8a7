#!/usr/bin/env bash
# The optimum-intel peer of `ipex-embed bench`: OVQuantizer static int8, run through LlamaIndex's
# OpenVINOEmbedding (llama-index-embeddings-openvino). torch 2.13.0 (a CPU wheel) goes first and
# stays a constraint with huggingface-hub 1.21.0: without them pip pulls a newer torch with GBs of
# CUDA wheels (via torchvision) and a hub that optimum-intel 2.2 refuses.
# Usage: bash benchmarks/peers/setup_optimum.sh /path/to/venv   (bench: --peers-dir, venv "optimum")
set -euo pipefail
venv="${1:?usage: setup_optimum.sh VENV_DIR}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "torch==2.13.0"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.13.0\nhuggingface-hub==1.21.0\n' > "$constraints"
"$venv/bin/pip" install -c "$constraints" "optimum-intel[openvino]==2.2.0" "openvino==2026.4.1" \
    "openvino-tokenizers==2026.4.1.0" nncf llama-index-embeddings-openvino onnx datasets
"$venv/bin/pip" uninstall -y torchvision 2>/dev/null || true
"$venv/bin/python" -c "import optimum.intel, llama_index.embeddings.huggingface_openvino; print('optimum-intel ok')"
