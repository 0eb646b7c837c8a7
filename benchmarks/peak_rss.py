"""Peak resident memory of the calling process, for benchmarks that measure a child process.

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is the wrong figure in a child started with
`subprocess`: Linux carries the parent's high-water mark across `fork`/`vfork` and `exec`
(`setmax_mm_hiwater_rss` in `exec_mmap`), so a small child of a large parent reports the
parent's peak. `VmHWM` in /proc/self/status is the high-water mark of the process's own address
space, which starts afresh at `exec`. (A stop-18 indexing run reported 1,946 MB for an
`ipex-embed embed` that peaked at about 540 MB, because its parent held the corpus and Spark.)
"""

from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (`VmHWM`, Linux).

    Raises:
        RuntimeError: /proc/self/status has no VmHWM line (not Linux); the caller cannot then
            measure a child's own peak, and must say so rather than report ru_maxrss.
    """
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the kernel writes kB
    raise RuntimeError(f"{STATUS} has no VmHWM line: peak RSS of this process is unknown.")


# Code for `python -c` children: prints `PEAK_RSS_MB <float>` as its last line (read it back
# with `child_peak_mb`). Format with the benchmarks directory so the child can import this.
CHILD_EPILOGUE = ("import sys; sys.path.insert(0, {bench_dir!r}); "
                  "from peak_rss import peak_rss_mb; print('PEAK_RSS_MB', peak_rss_mb())")


def child_peak_mb(stdout: str) -> float:
    """The peak RSS in MiB that a child ending with `CHILD_EPILOGUE` printed on `stdout`."""
    return float(stdout.split("PEAK_RSS_MB")[-1].split()[0])
