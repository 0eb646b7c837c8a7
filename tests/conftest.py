"""Shared fixtures: the real demo model built once per session, and tiny random BERTs."""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the Hub cannot be reached here; fail fast if asked
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INTEGRATION_FIXTURES = frozenset({
    "demo_int8_dir", "demo_fp32_dir", "demo_source_dir", "tiny_bert", "tiny_qwen3",
    "scheme_folders",
})
"""Fixtures that build or load a real model: a test using one (directly or through another
fixture) belongs to the integration tier."""
INTEGRATION_MODULES = frozenset({
    "test_bench_rerank", "test_build", "test_cross_encoder", "test_examples", "test_families",
    "test_onnxruntime_engine", "test_ray", "test_spark", "test_stores", "test_tuning",
})
"""Modules whose tests all run models, mteb, stores, Ray or Spark (some build them inline)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two tiers, both run by the README's test command: `-m "not integration"` is the fast
    offline unit tier (config, batching, errors, ranking, CLI parsing, card rendering)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in INTEGRATION_MODULES or fixtures & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)


WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "it",
    "be",
    "are",
    "or",
    "an",
    "not",
    "cell",
    "cells",
    "protein",
    "gene",
    "genes",
    "cancer",
    "risk",
    "patients",
    "study",
    "results",
    "increased",
    "reduced",
    "query",
    "passage",
    "document",
    "hello",
    "world",
    "embedding",
    "vector",
    "model",
    "test",
    "short",
    "long",
    "text",
]


def build_demo(output: Path, precision: str) -> Path:
    """Build the demo model (shipped all-MiniLM-L6-v2, SciFact calibration) as the CLI does."""
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.demo import DEMO_MODEL
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    quantize_to_folder(
        inspect_source(DEMO_MODEL), load_calibration(), output, QuantizeOptions(precision=precision)
    )
    return output


@pytest.fixture(scope="session")
def demo_int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The int8 demo model folder, exactly as README command 1 builds it."""
    return build_demo(tmp_path_factory.mktemp("demo") / "int8", "int8")


@pytest.fixture(scope="session")
def demo_fp32_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model exported without quantization (fp32 IR)."""
    return build_demo(tmp_path_factory.mktemp("demo") / "fp32", "fp32")


@pytest.fixture(scope="session")
def demo_source_dir() -> Path:
    """The shipped all-MiniLM-L6-v2 (sentence-transformers layout, safetensors)."""
    from ipex_embeddings_builder.demo import demo_model_path

    return demo_model_path()


def make_tiny_bert(
    folder: Path,
    *,
    pooling: str | None = "cls",
    prompts: dict[str, str] | None = None,
    max_seq_length: int = 24,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised 2-layer BERT with a WordPiece tokenizer into `folder`.

    pooling=None leaves out the sentence-transformers files, as a plain transformers model.
    Never evidence of accuracy: it only exercises loading, pooling, prompts and batching.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab_list = specials + sorted(set(WORDS)) + letters + [f"##{c}" for c in letters]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    if pooling is not None:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {
                    "word_embedding_dimension": 32,
                    "pooling_mode_cls_token": pooling == "cls",
                    "pooling_mode_mean_tokens": pooling == "mean",
                }
            )
        )
        (folder / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_seq_length})
        )
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps({"prompts": prompts or {}})
        )
    return folder


@pytest.fixture
def tiny_bert(tmp_path: Path) -> Callable[..., Path]:
    """A factory: tiny_bert(name, pooling=..., prompts=..., max_seq_length=...) -> folder."""

    def make(name: str = "tiny", **kwargs: object) -> Path:
        return make_tiny_bert(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make
