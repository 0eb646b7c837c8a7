"""Cross-encoders: the folder's kind, the runtime `CrossEncoder`, the export, and the rerankers.

Tiny random BERT, XLM-R and ModernBERT sequence classifiers are made here (hidden 64, 2 layers,
initializer_range=0.2 so scores spread); they only show that export, tokenization, padding,
activation and ranking match sentence-transformers, never accuracy.
"""

from __future__ import annotations

import copy
import json
import string
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import WORDS

from ipex_embeddings import (
    CrossEncoder,
    Encoder,
    InvalidTextError,
    ModelConfig,
    ModelFolderError,
    TruncationError,
    TruncationWarning,
)
from ipex_embeddings.cross_encoder import folder_config

FAMILIES = ("bert", "xlm-roberta", "modernbert")
# Per family: the special tokens (cls, sep, pad, unk, mask) and the pair template.
SPECIALS = {
    "bert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "xlm-roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "modernbert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
}
QUERY = "cancer risk of the gene"
TEXTS = [
    "the gene is a cancer risk",
    "hello world",
    "patients with increased risk of cancer in the study",
    "",
    "protein of the cell",
    "a short text",
    "the model is a test of this vector",
]


def _tokenizer(family: str, folder: Path, max_length: int) -> None:
    """A WordPiece tokenizer with the family's special tokens and pair template, saved with
    transformers (tokenizer.json + tokenizer_config.json) so sentence-transformers loads it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    cls, sep, pad, unk, mask = SPECIALS[family]
    specials = [cls, pad, sep, unk, mask] if family == "xlm-roberta" else [pad, unk, cls, sep, mask]
    letters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab_list = specials + sorted(set(WORDS)) + letters + [f"##{c}" for c in letters]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pair = {
        "bert": f"{cls} $A {sep} $B:1 {sep}:1",
        "xlm-roberta": f"{cls} $A {sep} {sep} $B {sep}",
        "modernbert": f"{cls} $A {sep} $B {sep}",
    }[family]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair,
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    tokenizer.enable_padding(pad_id=vocab[pad], pad_token=pad)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk,
        mask_token=mask, model_max_length=max_length,
        # BERT's tokenizer returns the segment ids; the others' models take none
        model_input_names=["input_ids", "attention_mask"]
        + (["token_type_ids"] if family == "bert" else []),
    ).save_pretrained(folder)


def _model_config(family: str, vocab: dict[str, int], num_labels: int) -> Any:
    import transformers

    cls, sep, pad, _, _ = SPECIALS[family]
    common = {
        "vocab_size": len(vocab), "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "initializer_range": 0.2,
        "num_labels": num_labels, "pad_token_id": vocab[pad], "max_position_embeddings": 128,
    }
    if family == "bert":
        return transformers.BertConfig(**common)
    if family == "xlm-roberta":
        return transformers.XLMRobertaConfig(
            **common, bos_token_id=vocab[cls], eos_token_id=vocab[sep], type_vocab_size=1
        )
    return transformers.ModernBertConfig(
        **common, cls_token_id=vocab[cls], sep_token_id=vocab[sep], bos_token_id=vocab[cls],
        eos_token_id=vocab[sep], global_attn_every_n_layers=2, local_attention=16,
    )


def make_cross_encoder(
    folder: Path, family: str, num_labels: int = 1, seed: int = 0, max_length: int = 120
) -> Path:
    """A randomly initialised 2-layer `<Family>ForSequenceClassification` saved in `folder`,
    taking pairs of up to `max_length` tokens."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer(family, folder, max_length=max_length)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(seed)
    classes = {
        "bert": transformers.BertForSequenceClassification,
        "xlm-roberta": transformers.XLMRobertaForSequenceClassification,
        "modernbert": transformers.ModernBertForSequenceClassification,
    }
    config = _model_config(family, vocab, num_labels)
    config.max_position_embeddings = max(config.max_position_embeddings, max_length + 8)
    model = classes[family](config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def st_cross_encoder(source: Path) -> Any:
    from sentence_transformers import CrossEncoder as STCrossEncoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return STCrossEncoder(str(source), device="cpu")


def build(source: Path, output: Path, precision: str = "fp32", **kwargs: Any) -> Path:
    from ipex_embeddings_builder.cross_encoder import quantize_cross_encoder

    quantize_cross_encoder(source, output, precision, **kwargs)
    return output


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per family: the transformers folder and the sentence-transformers `CrossEncoder.save`
    folder of the same weights."""
    made = {}
    for family in FAMILIES:
        base = tmp_path_factory.mktemp(family)
        hf = make_cross_encoder(base / "hf", family)
        st_dir = base / "st"
        st_cross_encoder(hf).save(str(st_dir))
        made[family] = (hf, st_dir)
    return made


@pytest.fixture(scope="module")
def fp32_dirs(
    sources: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Per family: the fp32 folder exported from the sentence-transformers save."""
    base = tmp_path_factory.mktemp("fp32")
    return {family: build(st_dir, base / family) for family, (_, st_dir) in sources.items()}


@pytest.fixture(scope="module")
def bert_fp32(fp32_dirs: dict[str, Path]) -> CrossEncoder:
    return CrossEncoder.load(fp32_dirs["bert"], compile_cache=False)


# --- fp32 IR against sentence-transformers ---------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", ["transformers", "sentence-transformers"])
def test_fp32_scores_match_sentence_transformers(
    family: str, layout: str, sources: dict[str, tuple[Path, Path]],
    fp32_dirs: dict[str, Path], tmp_path: Path,
) -> None:
    hf, st_dir = sources[family]
    folder = fp32_dirs[family] if layout == "sentence-transformers" else build(hf, tmp_path / "x")
    ours = CrossEncoder.load(folder, compile_cache=False)
    assert ours.activation == "sigmoid" and ours.num_labels == 1
    expected = st_cross_encoder(st_dir).predict([(QUERY, t) for t in TEXTS], batch_size=3)
    scores = ours.score(QUERY, TEXTS, batch_size=3)
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS),)
    print(f"{family} ({layout}): max |ours - sentence-transformers| =",
          float(np.max(np.abs(scores - expected))))
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    assert [r.index for r in ours.rank(QUERY, TEXTS)] == list(np.argsort(-expected, kind="stable"))
    assert np.array_equal(ours.predict([(QUERY, t) for t in TEXTS]), scores)


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_two_labels_give_the_positive_class_softmax(family: str, tmp_path: Path) -> None:
    import torch

    hf = make_cross_encoder(tmp_path / "hf", family, num_labels=2, seed=1)
    ours = CrossEncoder.load(build(hf, tmp_path / "fp32"), compile_cache=False)
    assert ours.activation == "softmax" and ours.num_labels == 2
    logits = st_cross_encoder(hf).predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity(), convert_to_numpy=True
    )
    positive = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(ours.score(QUERY, TEXTS), positive, atol=1e-4, rtol=0)
    raw = ours.score(QUERY, TEXTS, activation="none")
    np.testing.assert_allclose(raw, logits[:, 1] - logits[:, 0], atol=1e-4, rtol=0)


def test_activation_none_returns_the_logit(
    fp32_dirs: dict[str, Path], sources: dict[str, tuple[Path, Path]]
) -> None:
    import torch

    ours = CrossEncoder.load(fp32_dirs["xlm-roberta"], activation="none", compile_cache=False)
    logits = st_cross_encoder(sources["xlm-roberta"][1]).predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity()
    )
    np.testing.assert_allclose(ours.score(QUERY, TEXTS), logits, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="softmax"):
        CrossEncoder.load(fp32_dirs["bert"], activation="softmax", compile_cache=False)


# --- the folder's kind -------------------------------------------------------------------------


def test_the_folder_says_its_kind(fp32_dirs: dict[str, Path], tmp_path: Path) -> None:
    config = folder_config(fp32_dirs["bert"])
    assert (config.kind, config.activation, config.pooling) == ("cross-encoder", "sigmoid", "none")
    assert config.format_version == 2 and config.dimension == 1
    with pytest.raises(ModelFolderError, match=r"cross-encoder.*ipex_embeddings\.CrossEncoder"):
        Encoder.load(fp32_dirs["bert"], compile_cache=False)
    # a folder of format 1 (no kind) is a bi-encoder, and CrossEncoder names Encoder
    old = tmp_path / "old"
    old.mkdir()
    raw = {"pooling": "cls", "dimension": 64, "max_seq_length": 32, "format_version": 1}
    (old / "ipex_embeddings.json").write_text(json.dumps(raw))
    assert ModelConfig.load(old).kind == "bi-encoder"
    for name in ("openvino/openvino_model.xml", "openvino/openvino_model.bin", "tokenizer.json"):
        (old / name).parent.mkdir(exist_ok=True)
        (old / name).write_text("")
    with pytest.raises(ModelFolderError, match=r"bi-encoder.*ipex_embeddings\.Encoder\.load"):
        CrossEncoder.load(old)
    with pytest.raises(ModelFolderError, match="activation"):
        ModelConfig(pooling="none", dimension=1, max_seq_length=8, kind="cross-encoder")
    with pytest.raises(ModelFolderError, match="kind"):
        ModelConfig(pooling="cls", dimension=1, max_seq_length=8, kind="poly-encoder")


def test_export_refuses_what_is_not_a_cross_encoder(tmp_path: Path, tiny_bert: Any) -> None:
    from ipex_embeddings_builder.cross_encoder import inspect_cross_encoder

    with pytest.raises(ValueError, match="ForSequenceClassification"):
        inspect_cross_encoder(tiny_bert("bi", pooling="cls"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        inspect_cross_encoder(tmp_path)
    hf = make_cross_encoder(tmp_path / "three", "bert", num_labels=3)
    with pytest.raises(ValueError, match="3 labels"):
        inspect_cross_encoder(hf)
    with pytest.raises(ValueError, match="precision"):
        build(hf, tmp_path / "out", "bf16")
    assert not (tmp_path / "out").exists()


# --- inputs: empty, non-strings, invalid text, over-long pairs, threads --------------------


def test_empty_inputs_and_edge_texts(bert_fp32: CrossEncoder) -> None:
    empty = bert_fp32.score(QUERY, [])
    assert empty.dtype == np.float32 and empty.shape == (0,)
    assert bert_fp32.predict([]).shape == (0,)
    assert bert_fp32.rank(QUERY, []) == []
    scores = bert_fp32.score("", ["", " "])
    assert np.isfinite(scores).all()
    ranked = bert_fp32.rank(QUERY, TEXTS, top_n=3)
    assert [r.text for r in ranked] == [TEXTS[r.index] for r in ranked]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert len(bert_fp32.rank(QUERY, TEXTS, top_n=100)) == len(TEXTS)
    with pytest.raises(ValueError, match="top_n"):
        bert_fp32.rank(QUERY, TEXTS, top_n=0)


def test_non_strings_and_invalid_text_are_named(bert_fp32: CrossEncoder) -> None:
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        bert_fp32.score(QUERY, ["a", "b", 3])
    with pytest.raises(TypeError, match=r"single string; wrap it: score\(\[text\]\)"):
        bert_fp32.score(QUERY, "a text")
    with pytest.raises(TypeError, match=r"wrap it: rank\(\[text\]\)"):
        bert_fp32.rank(QUERY, "a text")
    with pytest.raises(TypeError, match="score"):
        bert_fp32.score(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[1\]\[0\] is NoneType"):
        bert_fp32.predict([("q", "a"), (None, "b")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"pairs\[0\] is str"):
        bert_fp32.predict(["q a"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single pair"):
        bert_fp32.predict(("q", "a"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTextError, match=r"texts\[1\]"):
        bert_fp32.score(QUERY, ["fine", "broken \ud800 text"])
    with pytest.raises(InvalidTextError, match=r"pairs\[1\]\[1\]"):
        bert_fp32.predict([("q", "a"), ("q", "bad \udfff")])


def test_over_long_pairs_warn_or_fail_and_keep_the_query(
    sources: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    short = CrossEncoder.load(
        build(sources["bert"][0], tmp_path / "short", max_seq_length=16), compile_cache=False
    )
    long_text = " ".join(WORDS)
    texts = ["a short text", long_text, "hello", long_text + " world"]
    with pytest.warns(TruncationWarning, match=r"2 of 4 .*\[1, 3\]"):
        scores = short.score(QUERY, texts)
    # only the text's end is cut: what follows the cut changes nothing
    assert scores[1] == scores[3]
    with pytest.raises(TruncationError, match=r"indices: 1, 3"):
        short.score(QUERY, texts, truncation="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short.score(QUERY, ["a short text"], truncation="error")  # nothing to warn about
    with pytest.raises(ValueError, match="query alone fills max_seq_length=16"):
        short.score(long_text, ["a"])
    with pytest.raises(ValueError, match=r"pairs\[1\]\[0\] alone fills"):
        short.predict([("q", "a"), (long_text, "b")])


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_do_not_depend_on_padding_batching_or_threads(
    family: str, fp32_dirs: dict[str, Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = CrossEncoder.load(fp32_dirs[family], compile_cache=False)
    many = TEXTS * 5 + [" ".join(WORDS[:20])]  # the long one pads the others' batch
    alone = np.array([model.score(QUERY, [t])[0] for t in many])
    np.testing.assert_array_equal(model.score(QUERY, many, batch_size=4), alone)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: model.score(QUERY, [t] * 9, batch_size=2), many))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, alone[i])


def test_default_calibration_pairs_mix_judged_and_bm25_hard_negatives() -> None:
    from ipex_embeddings_builder.bm25 import bm25_candidates
    from ipex_embeddings_builder.cross_encoder import default_calibration_pairs
    from ipex_embeddings_builder.data import document_text, load_beir

    pairs = default_calibration_pairs(300)
    assert len(pairs) == 300 and len(set(pairs)) > 250
    data = load_beir(split="train")
    judged = {(data.queries[q], document_text(data.corpus[d])) for q in data.qrels
              for d in data.qrels[q]}
    hardest = {  # each claim's best BM25 candidate that is not judged
        (data.queries[q], document_text(data.corpus[next(d for d, _ in found
                                                         if d not in data.qrels[q])]))
        for q, found in bm25_candidates(data, 10).items()
    }
    negatives = [p for p in pairs if p not in judged]
    assert 100 < len(negatives) < 200  # about half
    assert all(p in hardest for p in negatives)
    assert all(isinstance(q, str) and q and isinstance(t, str) and t for q, t in pairs)
    assert default_calibration_pairs(300) == pairs  # reproducible


# --- int8 --------------------------------------------------------------------------------------


def _calibration_pairs(count: int = 48) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    return [
        (" ".join(rng.choice(WORDS, 4)), " ".join(rng.choice(WORDS, int(rng.integers(3, 20)))))
        for _ in range(count)
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_int8_builds_and_ranks_close_to_fp32(
    family: str, sources: dict[str, tuple[Path, Path]], fp32_dirs: dict[str, Path],
    tmp_path: Path,
) -> None:
    folder = build(sources[family][1], tmp_path / "int8", "int8",
                   calibration_pairs=_calibration_pairs())
    config = folder_config(folder)
    assert (config.precision, config.kind, config.quantization["samples"]) == (
        "int8", "cross-encoder", 48
    )
    assert config.calibration_digest
    int8 = CrossEncoder.load(folder, compile_cache=False)
    fp32 = CrossEncoder.load(fp32_dirs[family], compile_cache=False)
    texts = [" ".join(p) for p in _calibration_pairs(30)]
    quantized, reference = int8.score(QUERY, texts), fp32.score(QUERY, texts)
    assert quantized.dtype == np.float32 and np.isfinite(quantized).all()
    # Random weights (initializer_range=0.2, so wide activations): no accuracy claim, only that
    # int8 tracks the fp32 ranking. Measured here (AVX2): Spearman 0.91 BERT, 0.76 XLM-R,
    # 0.93 ModernBERT; a broken quantization (e.g. a lost padding mask) lands near 0.
    ranks = [np.argsort(np.argsort(s)) for s in (quantized, reference)]
    spearman = float(np.corrcoef(*ranks)[0, 1])
    logits = [m.score(QUERY, texts, activation="none") for m in (int8, fp32)]
    pearson = float(np.corrcoef(*logits)[0, 1])
    print(f"{family} int8: max |int8 - fp32| = {np.max(np.abs(quantized - reference)):.4f}, "
          f"Spearman = {spearman:.3f}, logit Pearson = {pearson:.3f}, "
          f"fp32 score spread = {np.ptp(reference):.4f}")
    assert spearman > 0.6
    assert len(int8.rank(QUERY, texts, top_n=5)) == 5


# --- the rerankers over a cross-encoder folder ---------------------------------------------------

CANDIDATES = [t for t in TEXTS if t]  # a LlamaIndex node holds some text


def _nodes() -> list[Any]:
    from llama_index.core.schema import NodeWithScore, TextNode

    return [
        NodeWithScore(
            node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc{i}"},
                          excluded_embed_metadata_keys=["source"]),
            score=1.0 - i / 10,
        )
        for i, t in enumerate(CANDIDATES)
    ]


def test_llama_index_query_engine_reranks_with_the_cross_encoder(
    fp32_dirs: dict[str, Path], bert_fp32: CrossEncoder
) -> None:
    from llama_index.core import MockEmbedding, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import MetadataMode

    from ipex_embeddings.llama_index import IPEXRerank

    rerank = IPEXRerank(str(fp32_dirs["bert"]), top_n=3, compile_cache=False)
    assert isinstance(rerank.encoder, CrossEncoder)
    index = VectorStoreIndex([n.node for n in _nodes()], embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=len(CANDIDATES), node_postprocessors=[rerank]
    )
    kept = engine.query(QUERY).source_nodes
    expected = bert_fp32.rank(QUERY, CANDIDATES, top_n=3)
    assert [n.node.node_id for n in kept] == [f"n{r.index}" for r in expected]
    np.testing.assert_allclose([n.score for n in kept], [r.score for r in expected], atol=1e-6)
    for node, result in zip(kept, expected):
        assert node.node.metadata["relevance_score"] == node.score
        assert node.node.metadata["source"] == f"doc{result.index}"  # the node's own metadata
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert "relevance_score" not in node.node.get_content(metadata_mode=mode)


def test_llama_index_cross_encoder_rerank_never_mutates_its_inputs(
    fp32_dirs: dict[str, Path], bert_fp32: CrossEncoder
) -> None:
    from llama_index.core.schema import QueryBundle

    from ipex_embeddings.llama_index import IPEXRerank

    rerank = IPEXRerank(str(fp32_dirs["bert"]), top_n=4, fusion="rrf",
                        keep_retrieval_score=True, compile_cache=False)
    nodes = _nodes()
    before = copy.deepcopy(nodes)
    first = rerank.postprocess_nodes(nodes, query_str=QUERY)
    second = rerank.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert [(n.node.node_id, n.score) for n in first] == [(n.node.node_id, n.score) for n in second]
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]
    scores = bert_fp32.score(QUERY, CANDIDATES)
    for kept in first:
        i = int(kept.node.node_id[1:])
        assert kept.node.metadata["relevance_score"] == pytest.approx(float(scores[i]), abs=1e-6)
        assert kept.node.metadata["retrieval_score"] == before[i].score
    with pytest.raises(ValueError, match="cross-encoder.*no prompts"):
        IPEXRerank(str(fp32_dirs["bert"]), query_instruction="q: ", compile_cache=False)
    with pytest.raises(ValueError, match=r"gives scores, not vectors.*\['truncate_dim'\]"):
        IPEXRerank(str(fp32_dirs["bert"]), truncate_dim=8, compile_cache=False)


def test_langchain_contextual_compression_with_the_cross_encoder(
    fp32_dirs: dict[str, Path], bert_fp32: CrossEncoder
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    from ipex_embeddings.langchain import IPEXRerankCompressor

    documents = [
        Document(page_content=t, metadata={"source": f"doc{i}"}, id=f"d{i}")
        for i, t in enumerate(CANDIDATES)
    ]
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_documents(documents)
    compressor = IPEXRerankCompressor(
        model_name=str(fp32_dirs["bert"]), top_n=3, compile_cache=False
    )
    assert isinstance(compressor.model, CrossEncoder)
    retriever = ContextualCompressionRetriever(
        base_compressor=compressor,
        base_retriever=store.as_retriever(search_kwargs={"k": len(documents)}),
    )
    kept = retriever.invoke(QUERY)
    expected = bert_fp32.rank(QUERY, CANDIDATES, top_n=3)
    assert [d.id for d in kept] == [f"d{r.index}" for r in expected]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in kept], [r.score for r in expected], atol=1e-6
    )
    assert [d.metadata["source"] for d in kept] == [f"doc{r.index}" for r in expected]
    before = copy.deepcopy(documents)
    assert compressor.compress_documents(documents, QUERY) == compressor.compress_documents(
        documents, QUERY
    )
    assert documents == before


def test_langchain_compressor_takes_one_model(fp32_dirs: dict[str, Path]) -> None:
    from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor

    with pytest.raises(ValueError, match="not neither"):
        IPEXRerankCompressor(top_n=2)
    unloaded = IPEXEmbeddings.model_construct(model_name="unused")  # never loaded here
    with pytest.raises(ValueError, match="not both"):
        IPEXRerankCompressor(embeddings=unloaded, model_name=str(fp32_dirs["bert"]))
    with pytest.raises(ValueError, match=r"\['threads'\] only apply with model_name"):
        IPEXRerankCompressor(embeddings=unloaded, threads=2)
    with pytest.raises(ValueError, match="no prompts"):
        IPEXRerankCompressor(model_name=str(fp32_dirs["bert"]), query_prompt="q: ")
    with pytest.raises(ModelFolderError):
        IPEXRerankCompressor(model_name=str(fp32_dirs["bert"]) + "-missing")


def test_cross_encoder_shares_the_core_engine_and_pickles(bert_fp32: CrossEncoder) -> None:
    import pickle

    info = bert_fp32.info()
    assert info["engine"] == "openvino" and info["kind"] == "cross-encoder"
    # the activation runs in the graph: one inference gives the sigmoid and the raw margin
    assert bert_fp32.compiled_model().output(0).get_partial_shape()[1].get_length() == 2
    scores = bert_fp32.score(QUERY, TEXTS)
    raw = bert_fp32.score(QUERY, TEXTS, activation="none")
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw.astype(np.float64))), atol=1e-6)
    twin = pickle.loads(pickle.dumps(bert_fp32))
    np.testing.assert_array_equal(twin.score(QUERY, TEXTS), scores)
    with pytest.raises(ValueError, match="streams=0 is not supported"):
        CrossEncoder.load(bert_fp32.folder, streams=0)


def test_the_source_commit_is_recorded_as_for_a_bi_encoder(
    sources: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    from ipex_embeddings_builder.cross_build import cross_encoder_source

    hf, _ = sources["bert"]
    found = cross_encoder_source(str(hf))
    assert found is not None and (found.path, found.revision) == (hf, "")
    folder = build(hf, tmp_path / "ce", source_revision="0123abcd")
    assert ModelConfig.load(folder).source_revision == "0123abcd"
