"""mteb tasks that read BEIR folders from disk: SciFact retrieval, SciFact reranking, any folder.

Every task here loads its data with `load_beir` (which checks the files and that the qrels name
only known documents and queries); none of them touches the Hugging Face Hub. The metrics are
mteb's own: these classes only supply the data.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, ClassVar

from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.tasks.retrieval.eng.sci_fact_retrieval import SciFact

from .data import SCIFACT_DIR, BeirData, document_text, load_beir
from .errors import OptionError, UnknownTaskError

__all__ = [
    "DEFAULT_TASKS",
    "LOCAL_TASKS",
    "OTHER_DOCS_PER_QUERY",
    "RERANK_TOP_K",
    "SCIFACT_RERANKING_TASK",
    "SCIFACT_TASK",
    "LocalBeirRetrieval",
    "SciFactLocal",
    "SciFactReranking",
    "UnknownTaskError",
    "beir_folder_task",
    "bm25_top_ranked",
    "make_task",
    "subset_beir",
]

SCIFACT_TASK = "SciFact"
SCIFACT_RERANKING_TASK = "SciFactReranking"
DEFAULT_TASKS = (SCIFACT_TASK, SCIFACT_RERANKING_TASK)
RERANK_TOP_K = 30
"""BM25 candidates per query in the reranking task (the judged documents are added to them)."""
OTHER_DOCS_PER_QUERY = 10
"""In a subset: unjudged documents kept per kept query, so retrieval still has distractors."""


def subset_beir(data: BeirData, queries: int, seed: int = 0) -> BeirData:
    """A small deterministic slice: the first `queries` judged queries (by id), their judged
    documents, and `OTHER_DOCS_PER_QUERY` times as many other documents drawn with `seed`."""
    if queries < 1:
        raise ValueError(f"subset must be at least 1 query, got {queries}.")
    kept = sorted(data.queries, key=lambda q: (len(q), q))[:queries]
    qrels = {q: data.qrels[q] for q in kept}
    judged = sorted({d for docs in qrels.values() for d in docs})
    others = sorted(set(data.corpus) - set(judged))
    extra = random.Random(seed).sample(others, min(len(others), OTHER_DOCS_PER_QUERY * len(kept)))
    doc_ids = set(judged) | set(extra)
    corpus = {d: doc for d, doc in data.corpus.items() if d in doc_ids}
    return BeirData(corpus=corpus, queries={q: data.queries[q] for q in kept}, qrels=qrels)


def bm25_top_ranked(data: BeirData, k: int = RERANK_TOP_K) -> dict[str, list[str]]:
    """Each query's candidates: its BM25 top-`k` documents, then any judged ones BM25 missed.

    bm25s with its defaults (Lucene BM25, k1=1.5, b=0.75, English stop words, no stemming);
    ties are broken by corpus order, so the lists are the same on every run.
    """
    import bm25s
    import numpy as np

    doc_ids = list(data.corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([document_text(data.corpus[d]) for d in doc_ids], show_progress=False),
        show_progress=False,
    )
    query_ids = list(data.queries)
    tokens = bm25s.tokenize(
        [data.queries[q] for q in query_ids], return_ids=False, show_progress=False
    )
    top_ranked = {}
    for qid, query_tokens in zip(query_ids, tokens):
        scores = retriever.get_scores(query_tokens)
        best = np.argsort(-scores, kind="stable")[: min(k, len(doc_ids))]
        candidates = [doc_ids[i] for i in best]
        found = set(candidates)
        candidates += [d for d in data.qrels[qid] if d not in found]
        top_ranked[qid] = candidates
    return top_ranked


class LocalBeirRetrieval(AbsTaskRetrieval):
    """An mteb retrieval task over a BEIR folder on disk, optionally cut to a subset."""

    folder: ClassVar[Path]

    def __init__(self, split: str = "test", subset: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter_eval_splits([split])
        self.subset = subset

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the folder (no Hub access) into mteb's retrieval format."""
        if self.data_loaded:
            return
        from datasets import Dataset

        self.dataset = {"default": {}}
        for split in self.eval_splits:
            data = self.beir_data(split)
            corpus = Dataset.from_list(
                [
                    {"id": d, "title": doc["title"], "text": doc["text"]}
                    for d, doc in data.corpus.items()
                ]
            )
            queries = Dataset.from_list([{"id": q, "text": t} for q, t in data.queries.items()])
            self.dataset["default"][split] = RetrievalSplitData(
                corpus=corpus,
                queries=queries,
                relevant_docs=data.qrels,
                top_ranked=self.candidates(data),
            )
        self.data_loaded = True

    def beir_data(self, split: str) -> BeirData:
        """The split as this task evaluates it (the subset, when one was asked for)."""
        data = load_beir(self.folder, split)
        return subset_beir(data, self.subset) if self.subset else data

    def candidates(self, data: BeirData) -> dict[str, list[str]] | None:
        """Candidates per query for reranking tasks; None means search the whole corpus."""
        return None


class SciFactLocal(LocalBeirRetrieval):
    """mteb's SciFact (NDCG@10 on the test queries) read from the vendored BEIR copy."""

    folder = SCIFACT_DIR
    metadata = SciFact.metadata.model_copy(
        update={"dataset": {"path": str(SCIFACT_DIR), "revision": "vendored-beir-scifact"}}
    )


class SciFactReranking(LocalBeirRetrieval):
    """SciFact as reranking: each claim's BM25 top-30 plus its judged abstracts, built in code."""

    folder = SCIFACT_DIR
    metadata = TaskMetadata(
        name=SCIFACT_RERANKING_TASK,
        description=(
            "SciFact claims reranking their candidate abstracts: the BM25 top-30 (bm25s defaults, "
            "no stemming) plus every judged abstract, so each claim has its positives to place."
        ),
        reference="https://github.com/allenai/scifact",
        dataset={
            "path": str(SCIFACT_DIR),
            "revision": f"vendored-beir-scifact-bm25-top{RERANK_TOP_K}",
        },
        type="Reranking",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="map_at_1000",
        date=("2020-01-01", "2020-12-31"),
        domains=["Academic", "Medical", "Written"],
        task_subtypes=["Claim verification"],
        license="cc-by-nc-4.0",
        annotations_creators="expert-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
        adapted_from=["SciFact"],
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """As for retrieval, but the corpus holds only the candidates (mteb encodes all of it)."""
        super().load_data(num_proc, **kwargs)
        for split_data in self.dataset["default"].values():
            wanted = {d for docs in split_data["top_ranked"].values() for d in docs}
            keep = [i for i, d in enumerate(split_data["corpus"]["id"]) if d in wanted]
            split_data["corpus"] = split_data["corpus"].select(keep)

    def candidates(self, data: BeirData) -> dict[str, list[str]]:
        """BM25 top-30 plus the judged documents of each query."""
        return bm25_top_ranked(data, RERANK_TOP_K)


def beir_folder_task(
    folder: Path, split: str = "test", subset: int | None = None
) -> LocalBeirRetrieval:
    """A retrieval task (NDCG@10) over any BEIR-format folder; its files are checked now."""
    folder = Path(folder).expanduser().resolve()
    load_beir(folder, split)  # fail before any model runs: missing files, unknown ids
    name = "BEIR-" + re.sub(r"[^A-Za-z0-9_.-]", "_", folder.name)
    metadata = TaskMetadata(
        name=name,
        description=f"Retrieval on the BEIR folder {folder}.",
        dataset={"path": str(folder), "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
    )
    task_class = type(name, (LocalBeirRetrieval,), {"folder": folder, "metadata": metadata})
    return task_class(split=split, subset=subset)


LOCAL_TASKS: dict[str, type[LocalBeirRetrieval]] = {
    SCIFACT_TASK: SciFactLocal,
    SCIFACT_RERANKING_TASK: SciFactReranking,
}


def make_task(name: str, split: str = "test", subset: int | None = None) -> Any:
    """One of our local tasks by name, or any task in mteb's registry (which needs the Hub)."""
    if name in LOCAL_TASKS:
        return LOCAL_TASKS[name](split=split, subset=subset)
    import mteb

    try:
        task = mteb.get_task(name, eval_splits=[split])
    except KeyError as err:
        raise UnknownTaskError(
            f"Unknown task {name!r} ({err.args[0]}). Use one of ours ({', '.join(LOCAL_TASKS)}), "
            'any mteb task name (python -c "import mteb; print(mteb.get_tasks())"), or '
            "--beir-dir FOLDER for a BEIR-format folder."
        ) from None
    if subset:
        raise OptionError(
            f"--subset only applies to local tasks ({', '.join(LOCAL_TASKS)} and --beir-dir), "
            f"not to the mteb task {name!r}."
        )
    return task
