"""The indexing benchmark's drift-corrected ratio takes out both the machine's drift and the
short reference run's bias, so neither passes for an engine being faster or slower."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from indexing import BARE, drift_corrected  # noqa: E402


def row(rate: float, before: float, after: float) -> dict[str, float]:
    return {"docs_per_s": rate, "reference_docs_per_s": (before + after) / 2,
            "reference_before": before, "reference_after": after}


def test_an_engine_as_fast_as_the_bare_encoder_reads_one_whatever_the_drift():
    # The full corpus runs 5 % faster than the short reference (fixed costs amortised), and the
    # machine speeds up by 30 % between the two runs: an equal engine must still read 1.00x.
    rates = {BARE: row(1.05 * 10.0, 10.0, 10.0),
             "embed local": row(1.05 * 13.0, 13.0, 13.0),
             "slow engine": row(0.9 * 1.05 * 13.0, 13.0, 13.0)}
    corrected = drift_corrected(rates)
    assert corrected[BARE] == pytest.approx(1.0)
    assert corrected["embed local"] == pytest.approx(1.0)
    assert corrected["slow engine"] == pytest.approx(0.9)


def test_the_caller_rates_are_not_changed():
    rates = {BARE: row(18.0, 17.7, 16.5), "Spark": row(18.2, 16.7, 17.0)}
    before = {name: dict(r) for name, r in rates.items()}
    drift_corrected(rates)
    assert rates == before
