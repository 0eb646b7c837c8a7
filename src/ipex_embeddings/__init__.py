"""ipex-embeddings: int8 text embeddings on Intel Xeon CPUs with OpenVINO, for RAG pipelines.

The core is `Encoder` (bi-encoders: texts to vectors) and `CrossEncoder` (rerankers: a query and
texts to relevance scores); the LangChain and LlamaIndex adapters live in
`ipex_embeddings.langchain` and `ipex_embeddings.llama_index` and are imported on demand.
"""

from __future__ import annotations

from .config import CONFIG_NAME, ModelConfig
from .cpu import Int8SpeedWarning
from .cross_encoder import CrossEncoder
from .encoder import Encoder, TruncationWarning
from .errors import InvalidTextError, ModelFolderError, TruncationError, UnsafeModelError

__all__ = [
    "CONFIG_NAME",
    "CrossEncoder",
    "Encoder",
    "Int8SpeedWarning",
    "InvalidTextError",
    "ModelConfig",
    "ModelFolderError",
    "TruncationError",
    "TruncationWarning",
    "UnsafeModelError",
]
__version__ = "0.1.0"
