#!/usr/bin/env bash
# The IPEX 2.8 static int8 peer of `ipex-embed bench`: a venv with torch 2.8.0 (a CUDA build
# from PyPI, about 7 GB; it runs on CPU), intel-extension-for-pytorch 2.8.0 and transformers 4.51.
# Usage: bash benchmarks/peers/setup_ipex.sh /path/to/venv   (bench: --peers-dir with venv "ipex")
set -euo pipefail
venv="${1:?usage: setup_ipex.sh VENV_DIR}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install "torch==2.8.0" "intel-extension-for-pytorch==2.8.0" \
    "transformers==4.51.3" numpy psutil
"$venv/bin/python" -c "import torch, intel_extension_for_pytorch as ipex; print('ipex', ipex.__version__, 'torch', torch.__version__)"
