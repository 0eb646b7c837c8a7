"""Scaling: randomly initialised BERTs with the shapes of BGE-base and BGE-large ("speed only").

Their outputs mean nothing; only their cost does, which depends on the shape alone. Each is
written with the demo model's WordPiece tokenizer (the same 30,522-token vocabulary as BGE),
then exported and quantized by the project's own pipeline, calibrated on SciFact texts, so the
int8 graph is the one a real model of that shape gets.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..log import report_logger

progress = report_logger(__name__)

__all__ = ["SHAPES", "Shape", "build_scaling_models"]

TOKENIZER_FILES = [
    "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
]


@dataclass(frozen=True)
class Shape:
    """A BERT encoder's size."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int

    @property
    def label(self) -> str:
        return f"{self.name} shape ({self.hidden} wide, {self.layers} layers), random: speed only"


SHAPES = {
    "base": Shape("BGE-base", 768, 12, 12, 3072),
    "large": Shape("BGE-large", 1024, 24, 16, 4096),
}


def _write_random_bert(folder: Path, shape: Shape, tokenizer_from: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copyfile(tokenizer_from / name, folder / name)
    vocab_size = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
        max_position_embeddings=512,
    )
    BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
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
        {"word_embedding_dimension": shape.hidden, "pooling_mode_cls_token": True}
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
        _write_random_bert(source_dir, shape, tokenizer_from)
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
