"""ipex-embeddings: int8 text embeddings on Intel Xeon CPUs with OpenVINO, for RAG pipelines.

The core is `Encoder`; the LangChain and LlamaIndex adapters live in
`ipex_embeddings.langchain` and `ipex_embeddings.llama_index` and are imported on demand.
"""

from __future__ import annotations

from .config import CONFIG_NAME, ModelConfig
from .encoder import Encoder, TruncationWarning
from .errors import InvalidTextError, ModelFolderError, TruncationError, UnsafeModelError

__all__ = [
    "CONFIG_NAME",
    "Encoder",
    "InvalidTextError",
    "ModelConfig",
    "ModelFolderError",
    "TruncationError",
    "TruncationWarning",
    "UnsafeModelError",
]
__version__ = "0.1.0"
