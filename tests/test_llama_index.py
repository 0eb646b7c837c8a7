"""LlamaIndex adapters on the real int8 demo model: embeddings, reranking, events, errors."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from heartbeat import with_heartbeat
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError

from ipex_embeddings import Encoder, ModelFolderError
from ipex_embeddings.llama_index import IPEXEmbedding, IPEXRerank

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of fractures.",
    "The stock market fell sharply on Monday.",
    "",
    "Aspirin reduces the risk of heart attack in some patients.",
    "A short one.",
    "Protein folding is studied with cryo-electron microscopy.",
    "Smoking increases the risk of lung cancer.",
]
QUERY = "Does vitamin D prevent bone fractures?"


@pytest.fixture(scope="module")
def encoder(demo_int8_dir: Path) -> Encoder:
    return Encoder.load(demo_int8_dir)


@pytest.fixture(scope="module")
def embed_model(demo_int8_dir: Path) -> IPEXEmbedding:
    return IPEXEmbedding(model_name=str(demo_int8_dir), embed_batch_size=3)


@pytest.fixture(scope="module")
def reranker(demo_int8_dir: Path) -> IPEXRerank:
    return IPEXRerank(model=str(demo_int8_dir), top_n=3)


class EventRecorder(BaseEventHandler):
    """Keeps every instrumentation event it is sent."""

    events: list[BaseEvent] = []

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[EventRecorder]:
    root = get_dispatcher()
    handler = EventRecorder(events=[])
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


def _nodes(texts: list[str]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=10.0 - i)
        for i, t in enumerate(texts)
    ]


def test_vectors_are_the_core_encoders(embed_model: IPEXEmbedding, encoder: Encoder) -> None:
    assert IPEXEmbedding.class_name() == "IPEXEmbedding"
    np.testing.assert_allclose(
        embed_model.get_text_embedding_batch(TEXTS), encoder.encode(TEXTS, "document"), atol=1e-5
    )
    np.testing.assert_allclose(
        embed_model.get_query_embedding(QUERY), encoder.encode([QUERY], "query")[0], atol=1e-6
    )
    np.testing.assert_allclose(
        embed_model.get_text_embedding(TEXTS[0]), encoder.encode(TEXTS[:1])[0], atol=1e-6
    )


def test_one_core_call_and_one_callback_event_per_batch(
    demo_int8_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debug = LlamaDebugHandler()
    model = IPEXEmbedding(
        model_name=str(demo_int8_dir),
        embed_batch_size=3,
        callback_manager=CallbackManager([debug]),
    )
    batch_sizes: list[int] = []
    core_encode = model.encoder.encode

    def counting_encode(texts: list[str], *args: Any, **kwargs: Any) -> np.ndarray:
        batch_sizes.append(len(texts))
        return core_encode(texts, *args, **kwargs)

    monkeypatch.setattr(model.encoder, "encode", counting_encode)  # the model is shared
    vectors = model.get_text_embedding_batch(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert batch_sizes == [3, 3, 1]
    assert len(debug.get_event_pairs(CBEventType.EMBEDDING)) == 3


def test_options_are_passed_to_the_core(demo_int8_dir: Path, encoder: Encoder) -> None:
    model = IPEXEmbedding(
        model_name=str(demo_int8_dir), query_instruction="query: ", normalize=False
    )
    vector = np.array(model.get_query_embedding("fractures"))
    np.testing.assert_allclose(
        vector, encoder.encode(["query: fractures"], "document", normalize=False)[0], atol=1e-5
    )
    assert not np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3)
    assert model.encoder.config.document_prompt == ""


async def test_concurrent_awaits_run_off_the_loop(embed_model: IPEXEmbedding) -> None:
    # Few, long queries: the encoding, not the framework's per-call work, dominates the time.
    queries = [" ".join(TEXTS * 3) + f" Variant {i}." for i in range(16)]

    def start_work() -> Awaitable[list[Any]]:
        return asyncio.gather(
            *(embed_model.aget_query_embedding(q) for q in queries),
            embed_model.aget_text_embedding_batch(TEXTS * 3),
            embed_model.aget_text_embedding(TEXTS[0]),
        )

    results, longest_gap, elapsed, beats = await with_heartbeat(start_work)
    # Encoding on the loop would freeze the heartbeat for the whole gather.
    assert beats >= 10 and longest_gap < elapsed / 2, (beats, longest_gap, elapsed)
    sync_queries = [embed_model.get_query_embedding(q) for q in queries]
    np.testing.assert_allclose(results[: len(queries)], sync_queries, atol=1e-6)
    np.testing.assert_allclose(
        results[-2], embed_model.get_text_embedding_batch(TEXTS * 3), atol=1e-6
    )
    np.testing.assert_allclose(results[-1], embed_model.get_text_embedding(TEXTS[0]), atol=1e-6)


def test_rerank_sorts_by_cosine_and_keeps_top_n(
    reranker: IPEXRerank, encoder: Encoder, recorder: EventRecorder
) -> None:
    debug = LlamaDebugHandler()
    reranker.callback_manager = CallbackManager([debug])
    nodes = _nodes(TEXTS)
    kept = reranker.postprocess_nodes(nodes, query_str=QUERY)

    cosines = encoder.encode(TEXTS) @ encoder.encode([QUERY], "query")[0]
    expected = np.argsort(-cosines)[:3]
    assert [n.node.node_id for n in kept] == [f"n{i}" for i in expected]
    assert kept[0].node.get_content() == TEXTS[0]
    np.testing.assert_allclose([n.score for n in kept], cosines[expected], atol=1e-5)
    assert all("retrieval_score" not in n.node.metadata for n in kept)

    assert len(debug.get_event_pairs(CBEventType.RERANKING)) == 1
    kinds = [type(e) for e in recorder.events if isinstance(e, ReRankStartEvent | ReRankEndEvent)]
    assert kinds == [ReRankStartEvent, ReRankEndEvent]
    start, end = (e for e in recorder.events if isinstance(e, ReRankStartEvent | ReRankEndEvent))
    assert start.top_n == 3 and start.model_name == reranker.model and len(start.nodes) == 7
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in kept]


async def test_rerank_keeps_retrieval_score_and_handles_edges(demo_int8_dir: Path) -> None:
    reranker = IPEXRerank(model=str(demo_int8_dir), top_n=5, keep_retrieval_score=True)
    assert IPEXRerank.class_name() == "IPEXRerank"
    few = _nodes(["", "Vitamin D and bones."])
    kept = reranker.postprocess_nodes(few, QueryBundle(QUERY))
    assert [n.node.node_id for n in kept] == ["n1", "n0"]  # fewer than top_n, empty text ranked
    assert [n.node.metadata["retrieval_score"] for n in kept] == [9.0, 10.0]
    assert all(isinstance(n.score, float) for n in kept)
    rescored = reranker.postprocess_nodes(
        [NodeWithScore(node=n.node, score=0.5) for n in kept], query_str=QUERY
    )
    assert [(n.node.node_id, n.score) for n in rescored] == [
        (n.node.node_id, n.score) for n in kept
    ]
    assert [n.node.metadata["retrieval_score"] for n in rescored] == [0.5, 0.5]

    assert reranker.postprocess_nodes([], query_str=QUERY) == []
    again = await reranker.apostprocess_nodes(_nodes(["", "Vitamin D and bones."]), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in again] == [(n.node.node_id, n.score) for n in kept]
    with pytest.raises(ValueError, match="needs the query"):
        reranker.postprocess_nodes(few)


def test_rerank_with_a_query_prompt(demo_int8_dir: Path, encoder: Encoder) -> None:
    # As for a model built with --query-prompt: the query gets it, the documents do not.
    reranker = IPEXRerank(model=str(demo_int8_dir), top_n=7, query_instruction="query: ")
    assert reranker.encoder is not encoder and reranker.encoder.config.query_prompt == "query: "
    kept = reranker.postprocess_nodes(_nodes(TEXTS), query_str=QUERY)
    cosines = encoder.encode(TEXTS) @ encoder.encode([f"query: {QUERY}"])[0]
    np.testing.assert_allclose([n.score for n in kept], np.sort(cosines)[::-1], atol=1e-5)


# Graded by hand for QUERY, most relevant first; the RRF tests check the model agrees.
GRADED = [
    "Vitamin D supplements prevent bone fractures in older adults.",
    "Vitamin D deficiency is linked to weak bones.",
    "Calcium intake and bone health in children.",
    "The stock market fell sharply on Monday.",
]


def _graded_nodes(first_stage_scores: list[float | None]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"g{i}"), score=s)
        for i, (t, s) in enumerate(zip(GRADED, first_stage_scores))
    ]


def _check_graded_cosine_order(encoder: Encoder) -> np.ndarray:
    cosines = encoder.encode(GRADED) @ encoder.encode([QUERY], "query")[0]
    assert np.argsort(-cosines).tolist() == [0, 1, 2, 3], cosines  # the premise of the hand sums
    return cosines


def test_rrf_fuses_the_cosine_and_first_stage_rankings(
    demo_int8_dir: Path, encoder: Encoder
) -> None:
    cosines = _check_graded_cosine_order(encoder)
    reranker = IPEXRerank(
        model=str(demo_int8_dir), top_n=3, fusion="rrf", keep_retrieval_score=True
    )
    # The first stage ranks g1, g2, g3, g0; the bi-encoder g0, g1, g2, g3. By hand, with k=60:
    # g0 1/61 + 1/64, g1 1/62 + 1/61, g2 1/63 + 1/62, g3 1/64 + 1/63, so g1, g0, g2 are kept.
    kept = reranker.postprocess_nodes(_graded_nodes([0.5, 9.0, 7.5, 3.0]), query_str=QUERY)
    assert [n.node.node_id for n in kept] == ["g1", "g0", "g2"]
    np.testing.assert_allclose(
        [n.score for n in kept], [1 / 62 + 1 / 61, 1 / 61 + 1 / 64, 1 / 63 + 1 / 62], rtol=1e-12
    )
    np.testing.assert_allclose(
        [n.node.metadata["cosine_score"] for n in kept], cosines[[1, 0, 2]], atol=1e-5
    )
    assert [n.node.metadata["retrieval_score"] for n in kept] == [9.0, 0.5, 7.5]
    # The scores put in metadata stay out of the embedded text: a second pass scores the same.
    assert "cosine_score" not in kept[0].node.get_content(metadata_mode=MetadataMode.EMBED)


def test_rrf_ranks_nodes_without_a_first_stage_score_last(
    demo_int8_dir: Path, encoder: Encoder
) -> None:
    _check_graded_cosine_order(encoder)
    reranker = IPEXRerank(model=str(demo_int8_dir), top_n=4, fusion="rrf")
    # First stage: g1, g3 (scored), then g0, g2 (None, in input order). By hand:
    # g0 1/61 + 1/63, g1 1/62 + 1/61, g2 1/63 + 1/64, g3 1/64 + 1/62.
    kept = reranker.postprocess_nodes(_graded_nodes([None, 2.0, None, 1.0]), query_str=QUERY)
    assert [n.node.node_id for n in kept] == ["g1", "g0", "g3", "g2"]
    np.testing.assert_allclose(
        [n.score for n in kept],
        [1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 64 + 1 / 62, 1 / 63 + 1 / 64],
        rtol=1e-12,
    )
    # With no first-stage score at all, the input order is the first stage's ranking.
    reversed_input = _graded_nodes([None] * 4)[::-1]  # g3, g2, g1, g0
    kept = reranker.postprocess_nodes(reversed_input, query_str=QUERY)
    # g0 1/61 + 1/64, g1 1/62 + 1/63, g2 1/63 + 1/62, g3 1/64 + 1/61: a tie g1 = g2 (and
    # g0 = g3) is kept in input order.
    assert [n.node.node_id for n in kept] == ["g3", "g0", "g2", "g1"]


def test_no_fusion_is_the_default_and_ranks_by_cosine_only(
    demo_int8_dir: Path, encoder: Encoder
) -> None:
    cosines = _check_graded_cosine_order(encoder)
    assert IPEXRerank.model_fields["fusion"].default == "none"
    reranker = IPEXRerank(model=str(demo_int8_dir), top_n=4, fusion="none")
    kept = reranker.postprocess_nodes(_graded_nodes([1.0, 2.0, 3.0, 4.0]), query_str=QUERY)
    assert [n.node.node_id for n in kept] == ["g0", "g1", "g2", "g3"]
    np.testing.assert_allclose([n.score for n in kept], cosines, atol=1e-5)
    # The cosine is always kept (README), here equal to the score.
    assert [n.node.metadata["cosine_score"] for n in kept] == [n.score for n in kept]
    with pytest.raises(ValidationError, match="fusion"):
        IPEXRerank(model=str(demo_int8_dir), fusion="weighted")


def test_construction_errors_name_the_fix(tmp_path: Path, demo_int8_dir: Path) -> None:
    with pytest.raises(ModelFolderError, match="ipex-embed quantize"):
        IPEXEmbedding(model_name=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelFolderError, match="ipex-embed quantize"):
        IPEXRerank(model=str(tmp_path / "no-such-model"))

    incomplete = shutil.copytree(demo_int8_dir, tmp_path / "incomplete")
    (incomplete / "openvino" / "openvino_model.bin").unlink()
    with pytest.raises(ModelFolderError, match="openvino_model.bin"):
        IPEXEmbedding(model_name=str(incomplete))

    with pytest.raises(ValidationError, match="embed_batchsize"):
        IPEXEmbedding(model_name=str(demo_int8_dir), embed_batchsize=8)
    with pytest.raises(ValidationError, match="top_n"):
        IPEXRerank(model=str(demo_int8_dir), top_n=0)


def test_non_string_input_is_refused(embed_model: IPEXEmbedding) -> None:
    with pytest.raises(TypeError, match="get_query_embedding takes one string, got int"):
        embed_model.get_query_embedding(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, not str"):
        embed_model.get_text_embedding_batch(["ok", None])  # type: ignore[list-item]


def test_missing_llama_index_names_the_install_line() -> None:
    code = "import sys\nsys.modules['llama_index'] = None\nimport ipex_embeddings.llama_index"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert 'pip install "ipex-embeddings[llama-index]"' in result.stderr


def test_adapters_on_one_model_share_it(demo_int8_dir: Path, embed_model: IPEXEmbedding) -> None:
    """An embedder and a reranker on the same folder and options hold one loaded model; other
    options load their own; a model no adapter holds is freed."""
    import gc
    import weakref

    reranker = IPEXRerank(model=str(demo_int8_dir.resolve()), top_n=2)
    assert reranker.encoder is embed_model.encoder
    shorter = IPEXRerank(model=str(demo_int8_dir), top_n=2, truncate_dim=64)
    assert shorter.encoder is not embed_model.encoder and shorter.encoder.dimension == 64
    gone = weakref.ref(shorter.encoder)
    del shorter
    gc.collect()
    assert gone() is None


def test_rerank_with_the_retrievers_own_model_warns(embed_model: IPEXEmbedding,
                                                     demo_int8_dir: Path) -> None:
    """A VectorStoreIndex on a model, reranked by the same bi-encoder: the order cannot change,
    and the reranker says so; with other first-stage scores it stays quiet."""
    from llama_index.core import Document, VectorStoreIndex

    from ipex_embeddings.ranking import SameModelWarning

    index = VectorStoreIndex.from_documents(
        [Document(text=t) for t in TEXTS], embed_model=embed_model
    )
    retrieved = index.as_retriever(similarity_top_k=5).retrieve(QUERY)
    reranker = IPEXRerank(model=str(demo_int8_dir), top_n=5)
    with pytest.warns(SameModelWarning, match="same bi-encoder"):
        kept = reranker.postprocess_nodes(retrieved, query_str=QUERY)
    assert [n.node.node_id for n in kept] == [n.node.node_id for n in retrieved]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SameModelWarning)
        reranker.postprocess_nodes(_nodes(TEXTS), query_str=QUERY)  # BM25-like scores
