"""BEIR-format data: the vendored SciFact and any folder a user points at."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BeirDataError

__all__ = ["SCIFACT_DIR", "BeirData", "BeirDataError", "load_beir", "document_text"]

SCIFACT_DIR = Path(__file__).parent / "scifact"


@dataclass
class BeirData:
    """A BEIR split: documents by id, queries by id, and the judged documents of each query."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def document_text(doc: dict[str, str]) -> str:
    """The text BEIR and MTEB embed for a document: title and body, space-joined."""
    return f"{doc.get('title', '')} {doc.get('text', '')}".strip()


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_beir(folder: str | Path = SCIFACT_DIR, split: str = "test") -> BeirData:
    """Load `folder` (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv), keeping the judged queries."""
    folder = Path(folder)
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise BeirDataError(
            f"{folder} is not a BEIR folder with a {split!r} split: missing {missing}. It needs "
            "corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
        )
    corpus = {
        str(d["_id"]): {"title": d.get("title", ""), "text": d.get("text", "")}
        for d in _read_jsonl(needed[0])
    }
    all_queries = {str(q["_id"]): q["text"] for q in _read_jsonl(needed[1])}
    qrels: dict[str, dict[str, int]] = {}
    with needed[2].open(encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if header is None or len(header) < 3:
            raise BeirDataError(f"{needed[2]} needs a header 'query-id corpus-id score'.")
        for row in rows:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    unknown_docs = sorted({d for judged in qrels.values() for d in judged} - corpus.keys())
    unknown_queries = sorted(qrels.keys() - all_queries.keys())
    if unknown_docs or unknown_queries:
        raise BeirDataError(
            f"{needed[2]} names {len(unknown_docs)} document(s) not in corpus.jsonl "
            f"{unknown_docs[:5]} and {len(unknown_queries)} query id(s) not in queries.jsonl "
            f"{unknown_queries[:5]}. Fix the qrels or the corpus so that they match."
        )
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)
