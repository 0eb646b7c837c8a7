"""Scaling: randomly initialised models with the shapes of BGE-base and BGE-large (BERT), and,
on request, ModernBERT-base and Qwen3-0.6B ("speed only").

Their outputs mean nothing; only their cost does, which depends on the shape alone. Each is
written with the demo model's WordPiece tokenizer (the same 30,522-token vocabulary as BGE; the
real ModernBERT and Qwen3 vocabularies are larger, which changes the embedding table's memory,
not the time per token), then exported and quantized by the project's own pipeline, calibrated
on SciFact texts, so the int8 graph is the one a real model of that shape gets: ModernBERT with
its eager attention and alternating sliding-window layers, Qwen3 as a decoder without its cache,
grouped-query attention and last-token pooling.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..log import report_logger

progress = report_logger(__name__)

__all__ = ["POOLING", "SHAPES", "Shape", "build_scaling_models"]

TOKENIZER_FILES = [
    "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
]


@dataclass(frozen=True)
class Shape:
    """A model's family and size."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    family: str = "bert"
    """`bert`, `modernbert` or `qwen3`: the transformers class and pooling (see `POOLING`)."""
    kv_heads: int | None = None
    """Qwen3's key/value heads (grouped-query attention); None: as many as `heads`."""
    head_dim: int | None = None
    """Qwen3's width per head; None: hidden / heads."""

    @property
    def label(self) -> str:
        return f"{self.name} shape ({self.hidden} wide, {self.layers} layers), random: speed only"


SHAPES = {
    "base": Shape("BGE-base", 768, 12, 12, 3072),
    "large": Shape("BGE-large", 1024, 24, 16, 4096),
    # answerdotai/ModernBERT-base: GeGLU MLP (hidden -> 2 x 1152), 128-token local attention in
    # two of every three layers.
    "modernbert-base": Shape("ModernBERT-base", 768, 22, 12, 1152, family="modernbert"),
    # Qwen/Qwen3-Embedding-0.6B: SwiGLU MLP, 16 query and 8 key/value heads of 128.
    "qwen3-0.6b": Shape("Qwen3-0.6B", 1024, 28, 16, 3072, family="qwen3", kv_heads=8,
                        head_dim=128),
}
POOLING = {"bert": "cls", "modernbert": "mean", "qwen3": "lasttoken"}
"""Each family's pooling, as its embedding models use it (BGE, ModernBERT embedders, Qwen3)."""


def _model_config(shape: Shape, vocab_size: int, ids: dict[str, int]) -> Any:
    """The transformers config of a random model of `shape` over the WordPiece vocabulary."""
    from transformers import BertConfig, ModernBertConfig, Qwen3Config

    size = {"vocab_size": vocab_size, "hidden_size": shape.hidden,
            "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
            "intermediate_size": shape.intermediate}
    if shape.family == "modernbert":
        return ModernBertConfig(
            **size, max_position_embeddings=8192, local_attention=128,
            global_attn_every_n_layers=3, pad_token_id=ids["[PAD]"], cls_token_id=ids["[CLS]"],
            sep_token_id=ids["[SEP]"], bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"],
        )
    if shape.family == "qwen3":
        return Qwen3Config(
            **size, num_key_value_heads=shape.kv_heads or shape.heads,
            head_dim=shape.head_dim or shape.hidden // shape.heads,
            max_position_embeddings=32768, tie_word_embeddings=True, use_cache=False,
            pad_token_id=None, eos_token_id=ids["[SEP]"],
        )
    if shape.family != "bert":
        raise ValueError(f"unknown family {shape.family!r}; use one of {sorted(POOLING)}.")
    return BertConfig(**size, max_position_embeddings=512)


def _write_random_model(folder: Path, shape: Shape, tokenizer_from: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copyfile(tokenizer_from / name, folder / name)
    vocab_size = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    vocabulary = Tokenizer.from_file(str(tokenizer_from / "tokenizer.json")).get_vocab()
    config = _model_config(shape, vocab_size, vocabulary)
    torch.manual_seed(0)
    AutoModel.from_config(config).eval().save_pretrained(folder, safe_serialization=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": shape.hidden, "pooling_mode": POOLING[shape.family]}
    ))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512}))
    (folder / "shape.json").write_text(json.dumps(asdict(shape)))


def _is_built(folder: Path, marker: dict) -> bool:
    path = folder / "bench_build.json"
    return path.is_file() and json.loads(path.read_text()) == marker


def build_scaling_models(
    work_dir: Path,
    shape: Shape,
    tokenizer_from: Path,
    precisions: tuple[str, ...] = ("fp32", "bf16", "int8"),
    samples: int = 64,
) -> tuple[Path, dict[str, Path]]:
    """Write the random source model and our folders for `precisions`; reuse them if present."""
    from ..calibration import load_calibration
    from ..quantize import QuantizeOptions, quantize_to_folder
    from ..source import inspect_source

    root = work_dir / f"scaling-{shape.name.lower()}"
    source_dir = root / "source"
    marker = {"shape": asdict(shape), "samples": samples}
    if not _is_built(source_dir, marker):
        shutil.rmtree(source_dir, ignore_errors=True)
        progress.info(f"  writing a random {shape.label}")
        _write_random_model(source_dir, shape, tokenizer_from)
        (source_dir / "bench_build.json").write_text(json.dumps(marker))
    folders = {}
    source = None
    for precision in precisions:
        folder = root / precision
        if not _is_built(folder, marker):
            progress.info(f"  building its {precision} folder with the quantize pipeline")
            source = source or inspect_source(str(source_dir))
            quantize_to_folder(
                source, load_calibration(None, samples), folder,
                QuantizeOptions(precision=precision), overwrite=True,
            )
            (folder / "bench_build.json").write_text(json.dumps(marker))
        folders[precision] = folder
    return source_dir, folders
