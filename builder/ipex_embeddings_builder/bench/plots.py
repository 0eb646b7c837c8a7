"""PNG plots of a BenchReport: latency vs sequence length, throughput vs batch, end-to-end and
rerank bars, scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import BenchReport

__all__ = ["write_plots"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _footer(report: BenchReport) -> str:
    hw = report.hardware
    return (f"{hw['cpu_model']}, {hw['threads']} threads, {report.mode}, median of "
            f"{report.settings['rounds']} round(s): ipex-embed bench")


def _save(report: BenchReport, fig: Any, path: Path) -> Path:
    """Stamp the footer on `fig`, write it to `path` and free it."""
    fig.text(0.01, 0.01, _footer(report), fontsize=6, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _lines(
    report: BenchReport, rows: list[Any], x: str, y: str, labels: tuple[str, str, str],
    path: Path, *, log_y: bool = False,
) -> Path:
    """One line per system of `rows` (one model): attribute `y` against attribute `x`, log2 x."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    for system in dict.fromkeys(r.system for r in rows):
        points = sorted((getattr(r, x), getattr(r, y)) for r in rows if r.system == system)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                label=report.label(system, "model"))
    ax.set_xscale("log", base=2)
    ticks = sorted({getattr(r, x) for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    if log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    xlabel, ylabel, title = labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(report, fig, path)


def _latency(report: BenchReport, model: str, path: Path) -> Path:
    rows = [r for r in report.latency if r.model == model]
    labels = ("sequence length (tokens)", "median latency at batch 1 (ms, log)",
              f"Latency vs sequence length: {model}")
    return _lines(report, rows, "seq_len", "median_ms", labels, path, log_y=True)


def _throughput(report: BenchReport, model: str, path: Path) -> Path:
    rows = [r for r in report.throughput if r.model == model]
    labels = ("batch size", f"documents/s at {rows[0].seq_len} tokens",
              f"Throughput vs batch size: {model}")
    return _lines(report, rows, "batch", "docs_per_s", labels, path)


def _end_to_end(report: BenchReport, path: Path) -> Path:
    plt = _pyplot()
    rows = report.end_to_end
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [report.label(r.system, "e2e") for r in rows]
    colors = ["tab:orange" if r.system in ("ours", "langchain") else
              "tab:olive" if r.system == "st-openvino-ours" else "tab:blue" for r in rows]
    bars = left.barh(labels, [r.docs_per_s for r in rows], color=colors)
    left.bar_label(bars, labels=[f"{r.docs_per_s:,.0f}" + (f" ({r.speedup:.1f}x)" if r.speedup
                   else "") for r in rows], fontsize=7, padding=2)
    left.invert_yaxis()
    left.set_xlabel(f"documents/s ({report.corpus.get('documents', 0):,} SciFact documents)")
    left.set_title("Corpus throughput (x: vs sentence-transformers torch)", fontsize=10)
    bars = right.barh(labels, [r.query_p50_ms for r in rows], color=colors)
    right.bar_label(bars, labels=[f"{r.query_p50_ms:.1f} (p90 {r.query_p90_ms:.1f})" for r in rows],
                    fontsize=7, padding=2)
    right.invert_yaxis()
    right.set_yticks([])
    queries = report.corpus.get("queries", 0)
    right.set_xlabel(f"query latency p50 (ms), {queries} queries one by one")
    right.set_title("Query latency", fontsize=10)
    left.margins(x=0.3)
    right.margins(x=0.55)
    return _save(report, fig, path)


def _rerank(report: BenchReport, path: Path) -> Path:
    """Pairs/s (with the ratio to sentence-transformers torch fp32) and per-claim latency."""
    plt = _pyplot()
    rows = report.rerank
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [report.label(r.system, "rerank") for r in rows]
    colors = ["tab:orange" if r.system.startswith("ours") else "tab:blue" for r in rows]
    bars = left.barh(labels, [r.pairs_per_s for r in rows], color=colors)
    left.bar_label(bars, labels=[f"{r.pairs_per_s:,.0f}" + (f" ({r.speedup:.1f}x)" if r.speedup
                   else "") for r in rows], fontsize=7, padding=2)
    left.invert_yaxis()
    setup = report.rerank_setup
    left.set_xlabel(f"(claim, abstract) pairs/s ({setup.get('pairs', 0):,} pairs)")
    left.set_title("Rerank throughput (x: vs sentence-transformers torch fp32)", fontsize=10)
    bars = right.barh(labels, [r.query_p50_ms for r in rows], color=colors)
    right.bar_label(bars, labels=[f"{r.query_p50_ms:.0f} (p90 {r.query_p90_ms:.0f})"
                                  for r in rows], fontsize=7, padding=2)
    right.invert_yaxis()
    right.set_yticks([])
    right.set_xlabel(f"latency per claim p50 (ms), {setup.get('candidates_per_query', 0)} "
                     "candidates each")
    right.set_title("Latency per claim", fontsize=10)
    left.margins(x=0.3)
    right.margins(x=0.55)
    return _save(report, fig, path)


def _scaling(report: BenchReport, path: Path) -> Path | None:
    """Speedup over PyTorch fp32 eager of every other system, model by model (MiniLM first)."""
    plt = _pyplot()
    panels = [(title, [r for r in rows if r.system != "torch-fp32" and r.speedup])
              for title, rows in report.scaling_points()]
    if max(len({r.model for r in rows}) for _, rows in panels) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, (title, rows) in zip(axes, panels, strict=True):
        models = list(dict.fromkeys(r.model for r in rows))
        systems = list(dict.fromkeys(r.system for r in rows))
        speedup = {(r.model, r.system): r.speedup for r in rows}
        width = 0.8 / max(len(systems), 1)
        for i, system in enumerate(systems):
            values = [speedup.get((m, system), 0.0) for m in models]
            bars = ax.bar([x + i * width for x in range(len(models))], values, width,
                          label=report.label(system, "model"))
            ax.bar_label(bars, labels=[f"{v:.1f}x" if v else "" for v in values], fontsize=6)
        ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(models))],
                      [m.replace(" shape (", "\n(").replace(", random: ", "\nrandom: ")
                       for m in models], fontsize=7)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("speedup vs PyTorch fp32 eager")
    axes[0].legend(fontsize=8)
    fig.suptitle("Scaling: the gain over PyTorch fp32 eager by model size", fontsize=10)
    return _save(report, fig, path)


def write_plots(report: BenchReport, output_dir: Path) -> list[Path]:
    """Write the plots for whatever the report holds; return their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model = report.model["name"]
    paths = []
    if any(r.model == model for r in report.latency):
        paths.append(_latency(report, model, output_dir / "latency_vs_seq_len.png"))
    if any(r.model == model for r in report.throughput):
        paths.append(_throughput(report, model, output_dir / "throughput_vs_batch.png"))
    if report.end_to_end:
        paths.append(_end_to_end(report, output_dir / "end_to_end.png"))
    if report.rerank:
        paths.append(_rerank(report, output_dir / "rerank.png"))
    scaling = _scaling(report, output_dir / "scaling.png")
    if scaling is not None:
        paths.append(scaling)
    return paths
