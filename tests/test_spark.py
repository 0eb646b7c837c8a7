"""Spark: `ipex_embeddings.spark` in a real local[2] session on SciFact."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pyspark = pytest.importorskip("pyspark")

from ipex_embeddings import Encoder  # noqa: E402
from ipex_embeddings.spark import embed_column, require_pyspark  # noqa: E402

SCIFACT = Path(__file__).parents[1] / "builder/ipex_embeddings_builder/data/scifact/corpus.jsonl"
DOCS = 120


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]").appName("ipex-embeddings-test")
        .config("spark.driver.memory", "1g").config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2").getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    with SCIFACT.open() as handle:
        records = [json.loads(line) for _, line in zip(range(DOCS), handle)]
    return [{"id": r["_id"], "text": f"{r['title']} {r['text'][:300]}"} for r in records]


def test_spark_vectors_equal_encoder(spark, demo_int8_dir, corpus):
    df = spark.createDataFrame(corpus).repartition(4)
    rows = embed_column(df, str(demo_int8_dir), threads=1, rows_per_batch=32).collect()
    ids = [row["id"] for row in rows]
    assert sorted(ids) == sorted(r["id"] for r in corpus), "every id exactly once"
    vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
    assert vectors.shape == (DOCS, 384)
    by_id = {r["id"]: r["text"] for r in corpus}
    reference = Encoder.load(demo_int8_dir).encode([by_id[i] for i in ids])
    cosines = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1)
    assert cosines.min() >= 0.99999


def test_spark_null_text_is_named(spark, demo_int8_dir):
    df = spark.createDataFrame([("a", "fine"), ("b", None)], "id string, text string")
    with pytest.raises(Exception, match="not valid text; filter nulls"):
        embed_column(df, str(demo_int8_dir), threads=1).collect()


def test_missing_pyspark_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ImportError, match=r'pip install "ipex-embeddings\[spark\]"'):
        require_pyspark()
