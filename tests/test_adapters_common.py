"""What every adapter shares, on the real int8 demo model and a local HTTP Hub.

Load options (one definition, all of `Encoder.load`), invalid text (a lone surrogate names its
text), one ranking for both rerankers, rerankers that never change their inputs, and the
runtime's declared dependencies (tqdm for show_progress).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.metadata
import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hub_server import Commit, HubServer, client_env
from langchain_core.documents import Document
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from ipex_embeddings import Encoder, InvalidTextError
from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor
from ipex_embeddings.llama_index import RENAME, IPEXEmbedding, IPEXRerank
from ipex_embeddings.load_options import LOAD_OPTIONS

REPO = Path(__file__).resolve().parents[1]
BROKEN = "broken \ud835 text"  # a lone surrogate, as PDF extraction leaves them
QUERY = "Does vitamin D prevent bone fractures?"
CANDIDATES = [  # (text, first-stage score: BM25-like, None for one the first stage did not score)
    ("Calcium intake and bone health in children.", 7.5),
    ("Vitamin D supplements prevent bone fractures in older adults.", 0.5),
    ("The stock market fell sharply on Monday.", 3.0),
    ("Vitamin D deficiency is linked to weak bones.", 9.0),
    ("Smoking increases the risk of lung cancer.", None),
    ("Aspirin reduces the risk of heart attack in some patients.", 4.0),
]
READ_TOKEN = "hf_test_read_alice"
TOKENS = {READ_TOKEN: ("alice", "read")}
# Each adapter's field name for each option of Encoder.load.
ADAPTERS: dict[type, dict[str, str]] = {
    IPEXEmbeddings: {},
    IPEXRerankCompressor: {},  # used with model_name; with embeddings, those embeddings' own
    IPEXEmbedding: RENAME,
    IPEXRerank: RENAME,
}


@pytest.fixture(scope="module")
def encoder(demo_int8_dir: Path) -> Encoder:
    return Encoder.load(demo_int8_dir)


@pytest.fixture(scope="module")
def embeddings(demo_int8_dir: Path) -> IPEXEmbeddings:
    return IPEXEmbeddings(model_name=str(demo_int8_dir))


# --- load options -------------------------------------------------------------------------


def test_every_adapter_takes_every_load_option() -> None:
    parameters = dict(inspect.signature(Encoder.load).parameters)
    del parameters["path_or_repo_id"]
    # The one definition matches the core: a new option of Encoder.load fails here first.
    assert [o.name for o in LOAD_OPTIONS] == list(parameters)
    assert {o.name: o.default for o in LOAD_OPTIONS} == {
        name: p.default for name, p in parameters.items()
    }
    for adapter, rename in ADAPTERS.items():
        for option in LOAD_OPTIONS:
            field = adapter.model_fields.get(rename.get(option.name, option.name))
            assert field is not None, f"{adapter.__name__} lacks the load option {option.name}"
            assert field.default == option.default, (adapter.__name__, option.name)
    assert IPEXRerankCompressor.model_fields["embeddings"].annotation == IPEXEmbeddings | None


@pytest.mark.parametrize(("adapter", "field"), [
    (IPEXEmbeddings, "query_prompt"), (IPEXEmbeddings, "document_prompt"),
    (IPEXEmbedding, "query_instruction"), (IPEXRerank, "text_instruction"),
])
def test_a_prompt_that_is_not_valid_text_is_refused_by_name(adapter: type, field: str) -> None:
    name = "model_name" if adapter is not IPEXRerank else "model"
    # Refused before any loading (the model does not exist): not blamed on texts[0] later.
    with pytest.raises(ValueError, match=f"{field} is not valid text.*lone surrogate"):
        adapter(**{name: "no/such-model", field: BROKEN})


def test_load_options_reach_the_encoder(demo_int8_dir: Path, tmp_path: Path) -> None:
    def options(name: str) -> dict[str, Any]:
        # OpenVINO by name: its compile cache is one of the options checked, and "auto" runs
        # ONNX Runtime (no compile cache) on CPUs without int8 dot products
        return {"threads": 1, "streams": 1, "compile_cache": str(tmp_path / name),
                "engine": "openvino"}

    adapters = [
        IPEXEmbeddings(model_name=str(demo_int8_dir), query_prompt="q: ", document_prompt="d: ",
                       **options("langchain")),
        IPEXEmbedding(str(demo_int8_dir), query_instruction="q: ", text_instruction="d: ",
                      **options("embedding")),
        IPEXRerank(str(demo_int8_dir), query_instruction="q: ", text_instruction="d: ",
                   **options("rerank")),
    ]
    for adapter, name in zip(adapters, ("langchain", "embedding", "rerank")):
        core = adapter.encoder
        assert (core.threads, core.streams, core.engine.name) == (1, 1, "openvino"), name
        assert (core.config.query_prompt, core.config.document_prompt) == ("q: ", "d: "), name
        assert any((tmp_path / name).iterdir()), name  # the compile cache was written there
    with pytest.raises(ValueError, match="threads"):
        IPEXRerank(str(demo_int8_dir), threads=0)


def test_the_token_is_never_shown_or_serialised(demo_int8_dir: Path) -> None:
    secret = "hf_secret_never_printed"
    for adapter in (
        IPEXEmbeddings(model_name=str(demo_int8_dir), token=secret),
        IPEXEmbedding(str(demo_int8_dir), token=secret),
        IPEXRerank(str(demo_int8_dir), token=secret),
    ):
        assert adapter.token == secret
        assert secret not in repr(adapter) and secret not in adapter.model_dump_json()


def _seed_two_commits(hub: HubServer, model: Path) -> tuple[str, str]:
    """A private repo whose first commit is `model` and whose second changes the query prompt."""
    first = {
        p.relative_to(model).as_posix(): p.read_bytes()
        for p in model.rglob("*") if p.is_file() and p.name != "build_state.json"
    }
    repo = hub.add_repo("alice/minilm", first, private=True)
    config = json.loads(first["ipex_embeddings.json"]) | {"query_prompt": "second: "}
    files = repo.head.files | {"ipex_embeddings.json": json.dumps(config).encode()}
    oid = hashlib.sha1(b"second commit").hexdigest()
    repo.commits.append(Commit(oid, "second: a query prompt", files, set(repo.head.lfs_paths)))
    return repo.commits[0].oid, oid


def test_each_adapter_pins_a_hub_revision(demo_int8_dir: Path, tmp_path: Path) -> None:
    with HubServer(TOKENS) as hub:
        first, second = _seed_two_commits(hub, demo_int8_dir)
        # No HF_TOKEN in the environment: the private repo loads only with token= passed on.
        env = client_env(hub.url, tmp_path / "home", token=None)
        cache = tmp_path / "hf-cache"
        code = f"""
            import json
            from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor
            from ipex_embeddings.llama_index import IPEXEmbedding, IPEXRerank
            hub = dict(cache_dir={str(cache)!r}, token={READ_TOKEN!r})
            pinned = dict(hub, revision={first!r})
            lc = IPEXEmbeddings(model_name="alice/minilm", **pinned)
            adapters = {{
                "IPEXEmbeddings": lc,
                "IPEXRerankCompressor": IPEXRerankCompressor(embeddings=lc).embeddings,
                "IPEXEmbedding": IPEXEmbedding("alice/minilm", **pinned),
                "IPEXRerank": IPEXRerank("alice/minilm", **pinned),
                "head": IPEXEmbeddings(model_name="alice/minilm", **hub),
            }}
            print(json.dumps({{name: [str(a.encoder.folder), a.encoder.config.query_prompt]
                              for name, a in adapters.items()}}))
        """
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
        requests = [path for _, path in hub.requests]
    for name in ("IPEXEmbeddings", "IPEXRerankCompressor", "IPEXEmbedding", "IPEXRerank"):
        folder, prompt = loaded[name]
        assert Path(folder).name == first and prompt == "", name  # the pinned commit's files
        assert Path(folder).is_relative_to(cache), name  # downloaded into cache_dir
    folder, prompt = loaded["head"]
    assert Path(folder).name == second and prompt == "second: "  # unpinned: the newest commit
    assert any(f"/resolve/{first}/" in path for path in requests)


# --- invalid text -------------------------------------------------------------------------


def test_a_lone_surrogate_names_its_text_in_the_core(encoder: Encoder) -> None:
    texts = ["fine", BROKEN, "fine"]
    before = list(texts)
    with pytest.raises(InvalidTextError, match=r"texts\[1\] is not valid text") as caught:
        encoder.encode(texts)
    message = str(caught.value)
    assert "lone surrogate '\\ud835'" in message and "UTF-8" in message
    assert 'encode("utf-16", "surrogatepass")' in message  # the fix
    assert isinstance(caught.value, ValueError) and caught.value.where == "texts[1]"
    assert texts == before
    # The fix the message gives works, and the encoder is unharmed.
    cleaned = [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for t in texts]
    assert cleaned[1] == "broken \ufffd text"
    np.testing.assert_allclose(encoder.encode(cleaned)[0], encoder.encode(["fine"])[0], atol=1e-6)
    # A split surrogate pair is rejoined into its character by the same fix.
    pair = "bold \ud835\udc00".encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert pair == "bold \U0001d400"
    # With a prompt, and past the first batch, the index is still the caller's.
    with pytest.raises(InvalidTextError, match=r"texts\[5\]"):
        encoder.encode(["a"] * 5 + [BROKEN], "query", batch_size=2)


def _raises_naming(where: str) -> Any:
    return pytest.raises(InvalidTextError, match=re.escape(where) + ".*lone surrogate")


async def test_a_lone_surrogate_names_its_text_in_langchain(embeddings: IPEXEmbeddings) -> None:
    with _raises_naming("texts[2] is not valid text"):
        embeddings.embed_documents(["a", "b", BROKEN])
    with _raises_naming("texts[2] is not valid text"):
        await embeddings.aembed_documents(["a", "b", BROKEN])
    with _raises_naming("the text given to embed_query"):
        embeddings.embed_query(BROKEN)
    with _raises_naming("the text given to embed_query"):
        await embeddings.aembed_query(BROKEN)
    reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=2)
    docs = [Document(page_content=t) for t in ("a", "b", BROKEN)]
    with _raises_naming("documents[2].page_content is not valid text"):
        reranker.compress_documents(docs, QUERY)
    with _raises_naming("compress_documents(query=...)"):
        reranker.compress_documents(docs[:2], BROKEN)


async def test_a_lone_surrogate_names_its_text_in_llama_index(demo_int8_dir: Path) -> None:
    model = IPEXEmbedding(str(demo_int8_dir), embed_batch_size=2)
    texts = ["a", "b", "c", BROKEN, "e"]  # in the second batch: the index counts from texts[0]
    with _raises_naming("texts[3] is not valid text"):
        model.get_text_embedding_batch(texts)
    with _raises_naming("texts[3] is not valid text"):
        await model.aget_text_embedding_batch(texts)
    with pytest.raises(TypeError, match=r"texts\[3\] is NoneType, not str"):
        model.get_text_embedding_batch(["a", "b", "c", None])  # type: ignore[list-item]
    with _raises_naming("the text given to get_query_embedding"):
        model.get_query_embedding(BROKEN)
    with _raises_naming("the text given to get_text_embedding"):
        await model.aget_text_embedding(BROKEN)
    reranker = IPEXRerank(str(demo_int8_dir), top_n=2)
    nodes = [NodeWithScore(node=TextNode(text=t), score=1.0) for t in ("a", "b", BROKEN)]
    with _raises_naming("nodes[2] is not valid text"):
        reranker.postprocess_nodes(nodes, query_str=QUERY)
    with _raises_naming("IPEXRerank (the query)"):
        reranker.postprocess_nodes(nodes[:2], query_str=BROKEN)


# --- one ranking for both rerankers ---------------------------------------------------------


def _documents() -> list[Document]:
    return [
        Document(page_content=t, id=f"c{i}", metadata={} if s is None else {"bm25": s})
        for i, (t, s) in enumerate(CANDIDATES)
    ]


def _nodes() -> list[NodeWithScore]:
    return [
        # "source" is shown to the LLM but not embedded: the node embeds as the Document does.
        NodeWithScore(
            node=TextNode(text=t, id_=f"c{i}", metadata={"source": i},
                          excluded_embed_metadata_keys=["source"]),
            score=s,
        )
        for i, (t, s) in enumerate(CANDIDATES)
    ]


@pytest.mark.parametrize("fusion", ["none", "rrf"])
def test_both_rerankers_give_the_same_scores_order_and_metadata(
    embeddings: IPEXEmbeddings, demo_int8_dir: Path, encoder: Encoder, fusion: str
) -> None:
    options = {"top_n": 4, "fusion": fusion, "keep_retrieval_score": True}
    compressor = IPEXRerankCompressor(embeddings=embeddings, first_stage_score_key="bm25",
                                      **options)
    documents = compressor.compress_documents(_documents(), QUERY)
    nodes = IPEXRerank(str(demo_int8_dir), **options).postprocess_nodes(_nodes(), query_str=QUERY)

    assert [d.id for d in documents] == [n.node.node_id for n in nodes]
    assert [d.metadata["relevance_score"] for d in documents] == [n.score for n in nodes]
    for key in ("cosine_score", "retrieval_score"):
        assert [d.metadata[key] for d in documents] == [n.node.metadata[key] for n in nodes], key
    # The values themselves: cosines from the core, first-stage scores as given.
    cosines = encoder.encode([t for t, _ in CANDIDATES]) @ encoder.encode([QUERY], "query")[0]
    kept = [int(n.node.node_id[1:]) for n in nodes]
    np.testing.assert_allclose([n.node.metadata["cosine_score"] for n in nodes], cosines[kept],
                               atol=1e-5)
    assert [n.node.metadata["retrieval_score"] for n in nodes] == [CANDIDATES[i][1] for i in kept]
    if fusion == "none":
        assert kept == np.argsort(-cosines, kind="stable")[:4].tolist()
        assert [n.score for n in nodes] == [n.node.metadata["cosine_score"] for n in nodes]


# --- rerankers never change their inputs ----------------------------------------------------


def test_llama_index_rerank_never_mutates_its_input_nodes(demo_int8_dir: Path) -> None:
    reranker = IPEXRerank(str(demo_int8_dir), top_n=3, fusion="rrf", keep_retrieval_score=True)
    nodes = _nodes()
    before = copy.deepcopy(nodes)
    first = reranker.postprocess_nodes(nodes, query_str=QUERY)
    second = reranker.postprocess_nodes(nodes, QueryBundle(QUERY))

    def summary(kept: list[NodeWithScore]) -> list[tuple[Any, ...]]:
        return [(n.node.node_id, n.score, n.node.metadata) for n in kept]

    assert summary(first) == summary(second)  # the second call fuses the same BM25 scores
    assert nodes == before  # scores, metadata and exclusion lists as they were
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]
    assert all(a.node is not b.node for a in first for b in nodes)
    for kept in first:
        assert kept.node.metadata["retrieval_score"] == CANDIDATES[int(kept.node.node_id[1:])][1]
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            content = kept.node.get_content(metadata_mode=mode)
            assert "cosine_score" not in content and "retrieval_score" not in content, mode
        assert "source: " in kept.node.get_content(metadata_mode=MetadataMode.LLM)  # still shown


def test_langchain_compressor_never_mutates_its_input_documents(
    embeddings: IPEXEmbeddings,
) -> None:
    reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=3, fusion="rrf",
                                    first_stage_score_key="bm25", keep_retrieval_score=True)
    documents = _documents()
    before = copy.deepcopy(documents)
    first = reranker.compress_documents(documents, QUERY)
    assert reranker.compress_documents(documents, QUERY) == first
    assert documents == before
    assert all(a.metadata is not b.metadata for a in first for b in documents)


# --- declared dependencies: show_progress needs tqdm ----------------------------------------

# Runtime modules that need an optional extra, which must declare what they import.
EXTRA_OF_MODULE = {
    "langchain.py": "langchain", "llama_index.py": "llama-index", "adapter_fields.py": "langchain",
    "ray.py": "ray", "spark.py": "spark",
}


def _third_party_imports(source: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "ipex_embeddings"}


def test_the_runtime_declares_every_package_it_imports() -> None:
    # [project] dependencies, read as text: tomllib is not in Python 3.10.
    pyproject = (REPO / "pyproject.toml").read_text()

    def requirements(key: str) -> set[str]:
        block = re.search(rf"^{key} = \[(.*?)\]$", pyproject, flags=re.MULTILINE | re.DOTALL)
        assert block is not None, key
        return {
            re.split(r"[<>=!~ \[]", requirement)[0].lower().replace("_", "-")
            for requirement in re.findall(r'"([^"]+)"', block.group(1))
        }

    core = requirements("dependencies")
    assert "tqdm" in core
    distributions = importlib.metadata.packages_distributions()
    runtime = REPO / "src" / "ipex_embeddings"
    for source in sorted(runtime.glob("*.py")):
        extra = EXTRA_OF_MODULE.get(source.name)
        declared = core | (requirements(extra) if extra else set())
        if source.name == "adapter_fields.py":
            declared |= requirements("llama-index")  # pydantic comes with either adapter
        for module in _third_party_imports(source):  # lazy imports included
            names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            assert names & declared, f"{source.name} imports {module}, not in the dependencies"
    assert "tqdm" in _third_party_imports(runtime / "core.py")  # the case that was missing


def test_show_progress_draws_a_bar(
    demo_int8_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = IPEXEmbeddings(model_name=str(demo_int8_dir), batch_size=2, show_progress=True)
    vectors = model.embed_documents(["one", "two", "three", "four", "five"])
    assert len(vectors) == 5
    assert re.search(r"Encoding: 100%.*3/3", capsys.readouterr().err)
