"""The benchmarks' peak-RSS probe measures the child, not the parent that started it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from peak_rss import CHILD_EPILOGUE, child_peak_mb, peak_rss_mb  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")


def test_a_small_child_of_a_large_parent_reports_its_own_peak():
    ballast = bytearray(400 * 2**20)
    ballast[:: 4096] = b"\1" * len(range(0, len(ballast), 4096))  # touch every page
    assert peak_rss_mb() > 400
    code = ("import resource; print('MAXRSS_MB', resource.getrusage(resource.RUSAGE_SELF)"
            ".ru_maxrss / 1024); " + CHILD_EPILOGUE.format(bench_dir=str(BENCHMARKS)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert child_peak_mb(out) < 100, out  # a bare interpreter: tens of MB
    # What the benchmarks used to read: the parent's ballast leaks into the child's ru_maxrss.
    # If a kernel stops doing that, this line says the old figure is now right too.
    assert float(out.split("MAXRSS_MB")[-1].split()[0]) > 400, out
    del ballast
