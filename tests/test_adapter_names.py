"""The adapters take the names users bring from sentence-transformers, langchain-huggingface and
LlamaIndex's HuggingFaceEmbedding where they map cleanly, refuse the rest naming the field to
use, and give advice in the adapter's own calls.

Unit tier: nothing is loaded. The accepted names are checked with the adapters' model loading
replaced by a stub (`stub_loading`), a refusal happens before loading, and the call-advice tests
use unloaded adapters (`model_construct`), which fail on their arguments before any model runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, TextNode

import ipex_embeddings.langchain as langchain_adapters
import ipex_embeddings.llama_index as llama_index_adapters
from ipex_embeddings.adapter_fields import FOREIGN_RENAMES, NESTED, REFUSED
from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor
from ipex_embeddings.llama_index import IPEXEmbedding, IPEXRerank

ADAPTERS = (IPEXEmbeddings, IPEXRerankCompressor, IPEXEmbedding, IPEXRerank)
MODEL_FIELD = {IPEXEmbeddings: "model_name", IPEXRerankCompressor: "model_name",
               IPEXEmbedding: "model_name", IPEXRerank: "model"}
MISSING = "no/such-model"


# --- accepted ----------------------------------------------------------------------------------


@pytest.fixture
def stub_loading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every adapter's model loading by a stub recording the model it was given."""
    loaded: list[str] = []

    def load(model_name: str, adapter: object, rename: object = None) -> object:
        loaded.append(model_name)
        return object()

    for module in (langchain_adapters, llama_index_adapters):
        monkeypatch.setattr(module, "load_encoder", load)
        monkeypatch.setattr(module, "load_reranker", load)
    return loaded


def test_langchain_huggingface_options_map_onto_ipex_embeddings(stub_loading: list) -> None:
    embeddings = IPEXEmbeddings(
        model="./minilm-int8",
        model_kwargs={"device": "cpu", "revision": "abc123"},
        encode_kwargs={"batch_size": 64, "normalize_embeddings": True, "precision": "float32"},
        show_progress_bar=True,
        cache_folder="/tmp/hf",
    )
    assert stub_loading == ["./minilm-int8"]
    assert (embeddings.model_name, embeddings.batch_size, embeddings.normalize) == (
        "./minilm-int8", 64, True)
    assert (embeddings.show_progress, embeddings.revision, embeddings.cache_dir) == (
        True, "abc123", "/tmp/hf")
    assert embeddings.output_precision == "float32"


def test_huggingface_embedding_options_map_onto_ipex_embedding(stub_loading: list) -> None:
    embedding = IPEXEmbedding(
        model="./minilm-int8", device="CPU", normalize_embeddings=False, batch_size=8,
        query_prompt="query: ", document_prompt="passage: ",
    )
    assert stub_loading == ["./minilm-int8"]
    assert (embedding.model_name, embedding.normalize, embedding.embed_batch_size) == (
        "./minilm-int8", False, 8)
    assert (embedding.query_instruction, embedding.text_instruction) == ("query: ", "passage: ")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_model_name_and_model_are_accepted_by_every_adapter(
    adapter: type, stub_loading: list
) -> None:
    field = MODEL_FIELD[adapter]
    for given in ("model", "model_name"):
        assert getattr(adapter(**{given: "./m"}), field) == "./m"
    assert stub_loading == ["./m", "./m"]
    assert IPEXRerank(model_name="./m").model_name == "./m"


def test_the_rerankers_take_the_other_frameworks_batch_name(stub_loading: list) -> None:
    assert IPEXRerank(model="m", embed_batch_size=4).batch_size == 4
    assert IPEXRerankCompressor(model_name="m", encode_kwargs={"batch_size": 4}).batch_size == 4


# --- refused, naming what to use ----------------------------------------------------------------


@pytest.mark.parametrize(("options", "says"), [
    ({"device": "cuda"}, r"device= is 'cuda', but IPEXEmbeddings runs on the CPU.*threads="),
    ({"model_kwargs": {"device": "xpu"}}, r"model_kwargs\['device'\] is 'xpu'.*CPU"),
    ({"prompt_name": "query"}, r"prompt_name= .*pass query_prompt= or document_prompt="),
    ({"encode_kwargs": {"convert_to_tensor": True}}, "returns lists of floats"),
    ({"model_kwargs": {"torch_dtype": "float16"}},
     r"model_kwargs\['torch_dtype'\] is not supported.*takes \['cache_folder', 'device'"),
    ({"trust_remote_code": True}, "--trust-remote-code to `ipex-embed quantize`"),
    ({"multi_process": True}, "threads= and streams="),
    ({"max_length": 128}, "--max-seq-length N"),
    ({"model": "other"}, r"model= and model_name= are both set.*give model_name= only"),
    ({"encode_kwargs": {"batch_size": 8}, "batch_size": 16}, "give batch_size= only"),
    ({"batch_sise": 8}, r"no option 'batch_sise' \(did you mean 'batch_size'\?\)"),
    ({"model_kwargs": ["cpu"]}, "model_kwargs must be a dict, got list"),
    ({"output_precision": "fp16"}, r"output_precision='fp16' is not supported"),
])
def test_langchain_refuses_with_the_field_to_use(options: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        IPEXEmbeddings(**{"model_name": MISSING, **options})
    assert "Extra inputs are not permitted" not in str(caught.value)


@pytest.mark.parametrize(("adapter", "options", "says"), [
    (IPEXEmbedding, {"prompt_name": "query"}, "pass query_instruction= or text_instruction="),
    (IPEXEmbedding, {"show_progress_bar": True},
     r"get_text_embedding_batch\(texts, show_progress=True\)"),
    (IPEXEmbedding, {"device": "mps"}, "IPEXEmbedding runs on the CPU"),
    (IPEXRerank, {"normalize_embeddings": True}, "IPEXRerank has no normalisation option"),
    (IPEXRerank, {"show_progress_bar": True}, "draws no progress bar"),
    (IPEXRerank, {"backend": "onnx"}, "engine="),
    (IPEXRerankCompressor, {"normalize_embeddings": True}, "no normalisation option"),
])
def test_llama_index_and_rerankers_refuse_with_the_field_to_use(
    adapter: type, options: dict, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        adapter(**{MODEL_FIELD[adapter]: MISSING, **options})


def test_llama_index_adapters_need_a_model() -> None:
    with pytest.raises(ValueError, match=r'needs the model: IPEXEmbedding\(model_name='):
        IPEXEmbedding()
    with pytest.raises(ValueError, match=r'needs the model: IPEXRerank\(model_name='):
        IPEXRerank(top_n=2)


def test_every_foreign_name_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "troubleshooting.md").read_text()
    names = {*FOREIGN_RENAMES, *REFUSED, *NESTED, "device",
             *(key for keys in NESTED.values() for key in keys)}
    missing = sorted(name for name in names if f"`{name}" not in doc and f'"{name}"' not in doc)
    assert missing == []


# --- advice in the adapter's own calls ----------------------------------------------------------


def test_one_string_is_refused_with_the_adapters_own_call() -> None:
    langchain = IPEXEmbeddings.model_construct(model_name="unused")
    with pytest.raises(TypeError, match=r"wrap it: embed_documents\(\[text\]\)") as caught:
        langchain.embed_documents("abc")  # type: ignore[arg-type]
    assert "encode(" not in str(caught.value)
    llama = IPEXEmbedding.model_construct(model_name="unused")
    with pytest.raises(TypeError, match=r"wrap it: get_text_embedding_batch\(\[text\]\)"):
        llama.get_text_embedding_batch("abc")  # type: ignore[arg-type]


def test_texts_are_refused_where_the_rerankers_take_documents_or_nodes() -> None:
    compressor = IPEXRerankCompressor.model_construct(model_name="unused")
    with pytest.raises(TypeError, match=r"compress_documents\(\[Document\(page_content=text\)\]"):
        compressor.compress_documents("abc", "query")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[1\] is str, not a Document"):
        compressor.compress_documents([Document(page_content="a"), "b"], "query")  # type: ignore[list-item]
    rerank = IPEXRerank.model_construct(model="unused")
    with pytest.raises(TypeError, match=r"nodes\[0\] is str, not a NodeWithScore"):
        rerank.postprocess_nodes(["abc"], query_str="query")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got one NodeWithScore"):
        rerank.postprocess_nodes(NodeWithScore(node=TextNode(text="a")), query_str="q")  # type: ignore[arg-type]
