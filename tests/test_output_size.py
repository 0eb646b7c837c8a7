"""Smaller vectors: truncate_dim (Matryoshka) and output precision, as sentence-transformers.

Every precision is compared with sentence-transformers' `quantize_embeddings` on the
same float vectors, byte for byte; the model is a tiny random BERT built at fp32 (no accuracy is
claimed here: `ipex-embed validate --truncate-dim/--output-precision` measures that).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_bert
from sentence_transformers.util.quantization import quantize_embeddings

from ipex_embeddings import Encoder, ModelConfig, ModelFolderError
from ipex_embeddings.output import OUTPUT_PRECISIONS, quantization_ranges, quantize, truncate

TEXTS = ["cell protein risk", "hello world", "the gene", "", "a b c d e f g", "risk of cancer"]
SAMPLE = [f"{a} {b}" for a in ("cell", "gene", "risk", "the", "protein") for b in TEXTS]
FULL, SOURCE_DIM = 32, 16  # the tiny BERT's width; the truncate_dim its source declares


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fp32 folder whose source's config_sentence_transformers.json sets truncate_dim."""
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    root = tmp_path_factory.mktemp("outsize")
    source_dir = make_tiny_bert(root / "source", pooling="mean")
    st_config = source_dir / "config_sentence_transformers.json"
    st_config.write_text(json.dumps({"prompts": {}, "truncate_dim": SOURCE_DIM}))
    out = root / "tiny-fp32"
    quantize_to_folder(inspect_source(str(source_dir)), load_calibration(samples=32), out,
                       QuantizeOptions(precision="fp32"))
    return out


@pytest.fixture(scope="module")
def encoder(folder: Path) -> Encoder:
    return Encoder.load(folder, compile_cache=False)


def _vectors(seed: int = 0, rows: int = 40, dim: int = 37) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- the functions, against sentence-transformers -------------------------------------------


@pytest.mark.parametrize("precision", OUTPUT_PRECISIONS)
def test_each_precision_equals_sentence_transformers(precision: str) -> None:
    vectors, calibration = _vectors(0), _vectors(1, rows=200)
    ranges = quantization_ranges(calibration)
    ours = quantize(vectors, precision, ranges if precision.endswith("int8") else None)
    theirs = quantize_embeddings(vectors, precision, calibration_embeddings=calibration)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    if precision.endswith("int8"):  # given ranges, as ST takes them
        np.testing.assert_array_equal(ours, quantize_embeddings(vectors, precision, ranges=ranges))


def test_truncate_renormalises_and_never_changes_its_input() -> None:
    vectors = _vectors()
    before = vectors.copy()
    short = truncate(vectors, 8, normalize=True)
    assert short.shape == (40, 8) and short.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(short * np.linalg.norm(vectors[:, :8], axis=1, keepdims=True),
                               vectors[:, :8], atol=1e-6)
    raw = truncate(vectors, 8, normalize=False)
    np.testing.assert_array_equal(raw, vectors[:, :8])
    np.testing.assert_array_equal(vectors, before)


# --- the Encoder ------------------------------------------------------------------------------


def test_the_sources_truncate_dim_is_recorded_and_honoured(folder: Path, encoder: Encoder) -> None:
    assert json.loads((folder / "ipex_embeddings.json").read_text())["truncate_dim"] == SOURCE_DIM
    assert (encoder.config.truncate_dim, encoder.dimension) == (SOURCE_DIM, SOURCE_DIM)
    full = encoder.encode(TEXTS, truncate_dim=FULL)
    short = encoder.encode(TEXTS)
    assert full.shape == (len(TEXTS), FULL) and short.shape == (len(TEXTS), SOURCE_DIM)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(short, truncate(full, SOURCE_DIM, normalize=True), atol=1e-6)


@pytest.mark.parametrize("precision", OUTPUT_PRECISIONS)
def test_encode_precision_equals_sentence_transformers(encoder: Encoder, precision: str) -> None:
    ranges = quantization_ranges(encoder.encode(SAMPLE, truncate_dim=8))
    before = ranges.copy()
    floats = encoder.encode(TEXTS, truncate_dim=8)
    out = encoder.encode(TEXTS, truncate_dim=8, precision=precision,
                         ranges=ranges if precision.endswith("int8") else None)
    expected = quantize_embeddings(floats, precision, ranges=ranges)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(ranges, before)
    streamed = encoder.encode_stream(TEXTS, chunk_size=4, truncate_dim=8, precision=precision,
                                     ranges=ranges if precision.endswith("int8") else None)
    np.testing.assert_array_equal(np.concatenate(list(streamed)), out)


def test_load_time_defaults(folder: Path, encoder: Encoder) -> None:
    packed = Encoder.load(folder, truncate_dim=24, output_precision="ubinary",
                          compile_cache=False)
    out = packed.encode(TEXTS)
    assert out.dtype == np.uint8 and out.shape == (len(TEXTS), 3)
    np.testing.assert_array_equal(
        out, quantize_embeddings(encoder.encode(TEXTS, truncate_dim=24), "ubinary")
    )
    assert packed.encode(TEXTS, precision="float32").shape == (len(TEXTS), 24)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"truncate_dim": 0}, "truncate_dim=0 is not valid.*from 1 to 32"),
        ({"truncate_dim": 33}, "truncate_dim=33 is not valid.*from 1 to 32"),
        ({"truncate_dim": "8"}, "truncate_dim='8' is not valid"),
        ({"precision": "int4"}, "precision='int4' is not supported; use one of"),
        ({"precision": "int8"}, "needs ranges.*quantization_ranges"),
        ({"precision": "uint8", "ranges": np.zeros((2, 32))}, r"shape \(2, 32\).*\(2, 16\)"),
    ],
)
def test_bad_encode_options_are_refused(encoder: Encoder, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encoder.encode(TEXTS, **options)


def test_bad_load_options_and_folders_are_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs calibration ranges.*per call"):
        Encoder.load(folder, output_precision="int8")
    with pytest.raises(ValueError, match="truncate_dim=64"):
        Encoder.load(folder, truncate_dim=64)
    config = ModelConfig.load(folder)
    with pytest.raises(ModelFolderError, match="output_precision='int8'.*folder default"):
        ModelConfig(**{**vars(config), "output_precision": "int8"})
    with pytest.raises(ModelFolderError, match="truncate_dim=40"):
        ModelConfig(**{**vars(config), "truncate_dim": 40})


def test_defaults_are_left_out_of_the_json(folder: Path, tmp_path: Path) -> None:
    config = ModelConfig(**{**vars(ModelConfig.load(folder)), "truncate_dim": None})
    written = json.loads(config.save(tmp_path).read_text())
    assert "truncate_dim" not in written and "output_precision" not in written


# --- the adapters -----------------------------------------------------------------------------


def test_adapters_give_truncated_float_lists(folder: Path) -> None:
    from ipex_embeddings.langchain import IPEXEmbeddings
    from ipex_embeddings.llama_index import IPEXEmbedding

    langchain = IPEXEmbeddings(model_name=str(folder), truncate_dim=8, compile_cache=False)
    llama = IPEXEmbedding(str(folder), truncate_dim=8, compile_cache=False)
    for vector in (langchain.embed_query("hello world"), llama.get_query_embedding("hello")):
        assert len(vector) == 8 and all(isinstance(x, float) for x in vector)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-5
    assert len(IPEXEmbeddings(model_name=str(folder)).embed_documents(["a"])[0]) == SOURCE_DIM


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_adapters_refuse_packed_bits(folder: Path, precision: str) -> None:
    from ipex_embeddings.langchain import IPEXEmbeddings
    from ipex_embeddings.llama_index import IPEXEmbedding, IPEXRerank

    with pytest.raises(ValueError, match=f"would give {precision} vectors.*float32"):
        IPEXEmbeddings(model_name=str(folder), output_precision=precision)
    with pytest.raises(ValueError, match="float lists"):
        IPEXEmbedding(str(folder), output_precision=precision)
    with pytest.raises(ValueError, match="float lists"):
        IPEXRerank(str(folder), output_precision=precision)


# --- validate: the retrieval cost of a smaller output size ------------------------------------


def test_validate_scores_the_smaller_size_next_to_full_size(folder: Path, tmp_path: Path) -> None:
    from ipex_embeddings_builder.validate import run_validation

    report = run_validation(
        folder, tasks=["SciFact"], split="train", subset=5, cache_dir=tmp_path / "cache",
        reference=str(folder.parent / "source"), write=False, min_cosine=None,
        truncate_dim=8, output_precision="binary",
    )
    row = report.rows[0]
    assert report.output_size == "8-d binary" and row.smaller is not None
    assert row.smaller_loss == pytest.approx(100 * (row.quantized - row.smaller) / row.quantized)
    assert "8-d binary" in report.to_markdown() and "Change vs full size" in report.to_markdown()
    assert "--truncate-dim 8 --output-precision binary" in report.command
    assert json.loads(report.to_json())["rows"][0]["smaller"] == row.smaller


@pytest.mark.parametrize("precision", ["binary", "ubinary", "int8"])
def test_the_mteb_model_scores_what_encode_gives(encoder: Encoder, precision: str) -> None:
    from ipex_embeddings_builder.mteb_model import EncoderModel, OutputSizeModel

    smaller = OutputSizeModel(EncoderModel(encoder), 8, precision)
    vectors = smaller.embed(TEXTS, "document", 32)
    given = encoder.encode(TEXTS, truncate_dim=8, precision=precision, ranges=smaller.ranges)
    if precision.endswith("binary"):  # +1/-1 per bit: cosine ranks as Hamming distance does
        bits = np.unpackbits(given.view(np.uint8) ^ (np.uint8(128) if precision == "binary"
                                                    else np.uint8(0)), axis=1)
        np.testing.assert_array_equal(vectors, bits.astype(np.float32) * 2 - 1)
    else:
        assert smaller.ranges is not None and smaller.ranges.shape == (2, 8)
        np.testing.assert_array_equal(vectors, given.astype(np.float32))


def test_validate_refuses_a_size_the_model_cannot_give(folder: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ipex_embeddings_builder.cli import main

    result = CliRunner().invoke(main, [
        "validate", str(folder), "--task", "SciFact", "--subset", "2", "--truncate-dim", "64",
        "--reference", str(folder.parent / "source"), "--cache-dir", str(tmp_path),
    ])
    assert result.exit_code != 0 and "truncate_dim=64 is not valid" in result.output
    bad = CliRunner().invoke(main, ["validate", str(folder), "--output-precision", "int4"])
    assert bad.exit_code == 2 and "int4" in bad.output
