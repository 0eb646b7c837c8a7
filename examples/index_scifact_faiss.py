"""Index SciFact with `ipex-embed embed`, load the Parquet shards into FAISS, answer the queries.

1. `ipex-embed embed MODEL_DIR --input corpus.jsonl --output vectors/ --text-field title
   --text-field text --id-field _id` writes resumable Parquet shards (id, embedding).
2. The shards are read with pyarrow into one float32 matrix and a FAISS inner-product index
   (the vectors are normalised, so inner product = cosine).
3. The 300 SciFact test queries are embedded with the query prompt and searched; the example
   prints how often a judged abstract is in the top 10.

Run:
    python examples/index_scifact_faiss.py MODEL_DIR [--judged-only]

`--judged-only` indexes only the 283 abstracts judged for a test query (quick); by default the
whole corpus of 5,183 abstracts is indexed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

from ipex_embeddings import Encoder
from ipex_embeddings_builder.data import SCIFACT_DIR, load_beir

CLI = "from ipex_embeddings_builder.cli import main; main()"


def write_corpus(path: Path, judged_only: bool) -> int:
    data = load_beir(split="test")
    keep = {doc for docs in data.qrels.values() for doc in docs} if judged_only else None
    lines = [line for line in (SCIFACT_DIR / "corpus.jsonl").open()
             if keep is None or json.loads(line)["_id"] in keep]
    path.write_text("".join(lines))
    return len(lines)


def main(model_dir: Path, judged_only: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus, vectors_dir = Path(tmp) / "corpus.jsonl", Path(tmp) / "vectors"
        count = write_corpus(corpus, judged_only)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", CLI, "embed", str(model_dir), "--input",
                        str(corpus), "--output", str(vectors_dir), "--text-field", "title",
                        "--text-field", "text", "--id-field", "_id"], check=True)
        print(f"Embedded {count} abstracts with ipex-embed embed in "
              f"{time.perf_counter() - started:.1f} s")
        table = pq.read_table(sorted(vectors_dir.glob("*.parquet")))
    ids = table.column("id").to_pylist()
    matrix = table.column("embedding").combine_chunks().flatten().to_numpy()
    matrix = np.ascontiguousarray(matrix.reshape(len(ids), -1))
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    print(f"Indexed {index.ntotal} abstracts ({matrix.shape[1]}-d) in FAISS")

    data = load_beir(split="test")
    queries = Encoder.load(model_dir).encode(list(data.queries.values()), "query")
    _, top = index.search(queries, 10)
    found = sum(any(ids[j] in data.qrels[qid] for j in row) for qid, row in zip(data.queries, top))
    print(f"A judged abstract is in the top 10 for {found} of {len(data.queries)} test queries.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--judged-only", action="store_true")
    args = parser.parse_args()
    main(args.model_dir, args.judged_only)
