"""LangChain adapters on the real int8 demo model: standard suites, async, reranking, errors."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from heartbeat import with_heartbeat
from langchain_core.documents import Document
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from ipex_embeddings import Encoder, ModelFolderError, TruncationError
from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of fractures.",
    "The stock market fell sharply on Monday.",
    "",
    "Aspirin reduces the risk of heart attack in some patients.",
    "A short one.",
]


class DemoModelParams:
    """Points the standard suites at the int8 demo model built for this session."""

    model_dir: Path

    @pytest.fixture(autouse=True)
    def _demo_model(self, demo_int8_dir: Path) -> None:
        self.model_dir = demo_int8_dir

    @property
    def embeddings_class(self) -> type[IPEXEmbeddings]:
        return IPEXEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": str(self.model_dir)}


class TestIPEXEmbeddingsStandardUnit(DemoModelParams, EmbeddingsUnitTests):
    """langchain-tests' unit suite."""


class TestIPEXEmbeddingsStandardIntegration(DemoModelParams, EmbeddingsIntegrationTests):
    """langchain-tests' integration suite."""


@pytest.fixture(scope="module")
def embeddings(demo_int8_dir: Path) -> IPEXEmbeddings:
    return IPEXEmbeddings(model_name=str(demo_int8_dir))


@pytest.fixture(scope="module")
def encoder(demo_int8_dir: Path) -> Encoder:
    return Encoder.load(demo_int8_dir)


def test_vectors_are_the_core_encoders(embeddings: IPEXEmbeddings, encoder: Encoder) -> None:
    docs = np.array(embeddings.embed_documents(TEXTS))
    query = np.array(embeddings.embed_query(TEXTS[0]))
    np.testing.assert_allclose(docs, encoder.encode(TEXTS, "document"), atol=1e-6)
    np.testing.assert_allclose(query, encoder.encode([TEXTS[0]], "query")[0], atol=1e-6)
    assert docs.shape == (len(TEXTS), encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)


def test_batch_size_does_not_change_vectors(
    embeddings: IPEXEmbeddings, demo_int8_dir: Path
) -> None:
    small_batches = IPEXEmbeddings(model_name=str(demo_int8_dir), batch_size=2)
    np.testing.assert_allclose(
        small_batches.embed_documents(TEXTS), embeddings.embed_documents(TEXTS), atol=1e-5
    )


def test_options_are_passed_to_the_core(demo_int8_dir: Path, encoder: Encoder) -> None:
    raw = IPEXEmbeddings(model_name=str(demo_int8_dir), normalize=False)
    norms = np.linalg.norm(raw.embed_documents(TEXTS[:2]), axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)

    prompted = IPEXEmbeddings(model_name=str(demo_int8_dir), query_prompt="query: ")
    np.testing.assert_allclose(
        prompted.embed_query("fractures"),
        encoder.encode(["query: fractures"], "document")[0],
        atol=1e-6,
    )
    assert prompted.encoder.config.document_prompt == ""

    strict = IPEXEmbeddings(model_name=str(demo_int8_dir), truncation="error")
    with pytest.raises(TruncationError, match="max_seq_length=256"):
        strict.embed_documents(["word " * 400])


async def test_concurrent_awaits_run_off_the_loop(embeddings: IPEXEmbeddings) -> None:
    # Few, long queries: the encoding, not the framework's per-call work, dominates the time.
    queries = [" ".join(TEXTS * 3) + f" Variant {i}." for i in range(16)]

    def start_work() -> Awaitable[list[Any]]:
        return asyncio.gather(
            *(embeddings.aembed_query(q) for q in queries),
            embeddings.aembed_documents(TEXTS * 4),
        )

    results, longest_gap, elapsed, beats = await with_heartbeat(start_work)
    # Encoding on the loop would freeze the heartbeat for the whole gather.
    assert beats >= 10 and longest_gap < elapsed / 2, (beats, longest_gap, elapsed)
    sync_queries = [embeddings.embed_query(q) for q in queries]
    np.testing.assert_allclose(results[:-1], sync_queries, atol=1e-6)
    np.testing.assert_allclose(results[-1], embeddings.embed_documents(TEXTS * 4), atol=1e-6)


def test_reranker_sorts_by_cosine_and_keeps_top_n(embeddings: IPEXEmbeddings) -> None:
    query = "Does vitamin D prevent bone fractures?"
    docs = [
        Document(page_content=t, metadata={"source": i}, id=str(i)) for i, t in enumerate(TEXTS)
    ]
    reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=3)
    kept = reranker.compress_documents(docs, query)

    cosines = np.array(embeddings.embed_documents(TEXTS)) @ np.array(embeddings.embed_query(query))
    expected = np.argsort(-cosines, kind="stable")[:3]
    assert [d.metadata["source"] for d in kept] == expected.tolist()
    assert kept[0].page_content == TEXTS[0]
    assert [d.id for d in kept] == [str(i) for i in expected]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in kept], cosines[expected], atol=1e-5
    )
    assert "relevance_score" not in docs[0].metadata  # the inputs are left as they were


def test_reranker_puts_the_query_prompt_on_the_query_only(demo_int8_dir: Path) -> None:
    prompted = IPEXEmbeddings(model_name=str(demo_int8_dir), query_prompt="query: ")
    kept = IPEXRerankCompressor(embeddings=prompted, top_n=5).compress_documents(
        [Document(page_content=t) for t in TEXTS], "vitamin D"
    )
    documents = np.array(prompted.embed_documents(TEXTS))
    cosines = documents @ np.array(prompted.embed_query("vitamin D"))
    scores = [d.metadata["relevance_score"] for d in kept]
    np.testing.assert_allclose(scores, np.sort(cosines)[::-1], atol=1e-5)
    unprompted = documents @ np.array(prompted.embed_documents(["vitamin D"])[0])
    assert not np.allclose(scores, np.sort(unprompted)[::-1], atol=1e-3)


# Graded by hand for RERANK_QUERY, most relevant first; the RRF tests check the model agrees.
RERANK_QUERY = "Does vitamin D prevent bone fractures?"
GRADED = [
    "Vitamin D supplements prevent bone fractures in older adults.",
    "Vitamin D deficiency is linked to weak bones.",
    "Calcium intake and bone health in children.",
    "The stock market fell sharply on Monday.",
]


def _graded_cosines(embeddings: IPEXEmbeddings) -> np.ndarray:
    cosines = np.array(embeddings.embed_documents(GRADED)) @ np.array(
        embeddings.embed_query(RERANK_QUERY)
    )
    assert np.argsort(-cosines).tolist() == [0, 1, 2, 3], cosines  # the premise of the hand sums
    return cosines


def test_rrf_takes_the_first_stage_ranking_from_the_input_order(
    embeddings: IPEXEmbeddings,
) -> None:
    cosines = _graded_cosines(embeddings)
    # As ContextualCompressionRetriever passes them: retriever order, here g1, g2, g3, g0.
    docs = [Document(page_content=GRADED[i], id=f"g{i}") for i in (1, 2, 3, 0)]
    reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=3, fusion="rrf")
    kept = reranker.compress_documents(docs, RERANK_QUERY)
    # By hand, k=60: g0 1/61 + 1/64, g1 1/62 + 1/61, g2 1/63 + 1/62, g3 1/64 + 1/63.
    assert [d.id for d in kept] == ["g1", "g0", "g2"]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in kept],
        [1 / 62 + 1 / 61, 1 / 61 + 1 / 64, 1 / 63 + 1 / 62],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        [d.metadata["cosine_score"] for d in kept], cosines[[1, 0, 2]], atol=1e-5
    )


def test_rrf_reads_first_stage_scores_from_metadata(embeddings: IPEXEmbeddings) -> None:
    _graded_cosines(embeddings)
    bm25 = [None, 2.0, None, 1.0]
    docs = [
        Document(page_content=t, id=f"g{i}", metadata={} if s is None else {"bm25": s})
        for i, (t, s) in enumerate(zip(GRADED, bm25))
    ]
    reranker = IPEXRerankCompressor(
        embeddings=embeddings, top_n=4, fusion="rrf", first_stage_score_key="bm25"
    )
    kept = reranker.compress_documents(docs, RERANK_QUERY)
    # First stage: g1, g3 (scored), then g0, g2 (no score, in input order). By hand:
    # g0 1/61 + 1/63, g1 1/62 + 1/61, g2 1/63 + 1/64, g3 1/64 + 1/62.
    assert [d.id for d in kept] == ["g1", "g0", "g3", "g2"]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in kept],
        [1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 64 + 1 / 62, 1 / 63 + 1 / 64],
        rtol=1e-12,
    )
    assert [d.metadata.get("bm25") for d in kept] == [2.0, None, 1.0, None]

    docs[0].metadata["bm25"] = "high"
    with pytest.raises(TypeError, match=r"documents\[0\].metadata\['bm25'\] is str, not a number"):
        reranker.compress_documents(docs, RERANK_QUERY)


def test_no_fusion_is_the_default_and_ranks_by_cosine_only(embeddings: IPEXEmbeddings) -> None:
    cosines = _graded_cosines(embeddings)
    assert IPEXRerankCompressor.model_fields["fusion"].default == "none"
    docs = [
        Document(page_content=t, id=f"g{i}", metadata={"bm25": float(i)})
        for i, t in enumerate(GRADED)
    ]
    reranker = IPEXRerankCompressor(
        embeddings=embeddings, top_n=4, fusion="none", first_stage_score_key="bm25"
    )
    kept = reranker.compress_documents(docs[::-1], RERANK_QUERY)
    assert [d.id for d in kept] == ["g0", "g1", "g2", "g3"]
    np.testing.assert_allclose([d.metadata["relevance_score"] for d in kept], cosines, atol=1e-5)
    # The cosine is always kept (README), here equal to the sorting score.
    assert [d.metadata["cosine_score"] for d in kept] == [
        d.metadata["relevance_score"] for d in kept
    ]
    with pytest.raises(ValidationError, match="fusion"):
        IPEXRerankCompressor(embeddings=embeddings, fusion="weighted")


async def test_reranker_edge_cases(embeddings: IPEXEmbeddings) -> None:
    reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=10)
    assert reranker.compress_documents([], "anything") == []
    few = [Document(page_content=""), Document(page_content="Vitamin D and bones.")]
    kept = reranker.compress_documents(few, "vitamin D")
    assert [d.page_content for d in kept] == ["Vitamin D and bones.", ""]
    assert await reranker.acompress_documents(few, "vitamin D") == kept
    with pytest.raises(TypeError, match="takes one string, got int"):
        reranker.compress_documents(few, 3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="top_n"):
        IPEXRerankCompressor(embeddings=embeddings, top_n=0)


def test_construction_errors_name_the_fix(tmp_path: Path, demo_int8_dir: Path) -> None:
    with pytest.raises(ModelFolderError, match="ipex-embed quantize"):
        IPEXEmbeddings(model_name=str(tmp_path / "no-such-model"))

    incomplete = shutil.copytree(demo_int8_dir, tmp_path / "incomplete")
    (incomplete / "tokenizer.json").unlink()
    with pytest.raises(ModelFolderError, match=r"missing \['tokenizer.json'\]"):
        IPEXEmbeddings(model_name=str(incomplete))

    with pytest.raises(ValidationError, match="batch_sise"):
        IPEXEmbeddings(model_name=str(demo_int8_dir), batch_sise=8)
    with pytest.raises(ValidationError, match="truncation"):
        IPEXEmbeddings(model_name=str(demo_int8_dir), truncation="silent")


def test_non_string_input_is_refused(embeddings: IPEXEmbeddings) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] is int, not str"):
        embeddings.embed_documents(["ok", 7])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="embed_query takes one string, got list"):
        embeddings.embed_query(["a list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        embeddings.embed_documents("one string")  # type: ignore[arg-type]


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_import_does_not_pull_in_the_frameworks() -> None:
    result = _run_python(
        "import sys, ipex_embeddings\n"
        "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'llama_index'))))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_langchain_names_the_install_line() -> None:
    result = _run_python(
        "import sys\nsys.modules['langchain_core'] = None\nimport ipex_embeddings.langchain"
    )
    assert result.returncode != 0
    assert 'pip install "ipex-embeddings[langchain]"' in result.stderr
