"""`ipex-embed bench`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from ..commandline import command_line
from .options import library_errors, model_dir_argument

__all__ = ["bench_command"]


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers "
                                 "(e.g. 16,64,256).", param_hint=option) from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r} needs positive integers.", param_hint=option)
    return values


def _peer_envs(entries: tuple[str, ...]) -> dict[str, str]:
    from ..bench.peers import PEER_ENVS

    envs = {}
    for entry in entries:
        name, sep, python = (part.strip() for part in entry.partition("="))
        if not sep or not name or not python:
            raise click.BadParameter(f"{entry!r} is not NAME=PYTHON (e.g. "
                                     "ovgenai=/opt/peers/ovgenai/bin/python).",
                                     param_hint="--peer-env")
        if name not in PEER_ENVS:
            raise click.BadParameter(f"unknown peer environment {name!r}; use one of "
                                     f"{', '.join(PEER_ENVS)}.", param_hint="--peer-env")
        envs[name] = python
    return envs


@click.command("bench")
@model_dir_argument
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for bench.json, bench.md and the plots (default: MODEL_DIR/bench).")
@click.option("--quick", is_flag=True,
              help="Smoke test in minutes: 3 short rounds, 128 documents, 30 queries, no scaling "
                   "(the first run with --peers-dir also builds each peer's model once).")
@click.option("--rounds", type=click.IntRange(min=1), help="Rounds (default: 3, quick: 1).")
@click.option("--runs", type=click.IntRange(min=1),
              help="Timed calls per latency point per round (default: 50, quick: 5).")
@click.option("--seq-lens", help="Latency sequence lengths (default: 16,32,64,128,256,512).")
@click.option("--batch-sizes", help="Throughput batch sizes at 256 tokens (default: 4,16,64,256).")
@click.option("--docs", type=click.IntRange(min=1),
              help="SciFact documents end to end, evenly spread over the corpus (default: "
                   "all 5,183; quick: 128).")
@click.option("--queries", type=click.IntRange(min=1),
              help="SciFact test queries for query latency, or, for a cross-encoder folder, the "
                   "first N test claims whose BM25 top 100 are reranked (default: all 300; "
                   "quick: 30).")
@click.option("--parts", default=None,
              help="Comma-separated parts to run: model, e2e, scaling for a bi-encoder folder "
                   "(default: all three); rerank, the only part of a cross-encoder folder.")
@click.option("--scaling", "scaling", default=None,
              help="Scaling shapes, comma-separated: base and large (the default, BGE shapes), "
                   "modernbert-base, qwen3-0.6b (random weights, speed only), or none.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Threads per system (default: every core this process may use).")
@click.option("--fp32-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Our fp32 folder of the same model (default: built from the source model; "
                   "not in --quick).")
@click.option("--source",
              help="Cross-encoder folders only: the fp32 source model (a folder or Hub id) for "
                   "sentence-transformers' CrossEncoder and our fp32 folder (default: the "
                   "folder's source_model, which names a local source by its folder name only).")
@click.option("--bf16-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Our bf16 folder of the same model (default: built from the source model).")
@click.option("--peers-python", envvar="IPEX_EMBED_BENCH_PEERS_PYTHON",
              help="Python interpreter for the sentence-transformers systems, one with optimum "
                   "for its onnx and openvino backends (see benchmarks/README.md). Default: this "
                   "one, or $IPEX_EMBED_BENCH_PEERS_PYTHON.")
@click.option("--peers-dir", envvar="IPEX_EMBED_BENCH_PEERS_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the int8 peers' virtual environments, one per peer by name "
                   "(ovgenai, fastembed, optimum, ipex), each made by "
                   "benchmarks/peers/setup_NAME.sh DIR/NAME. A missing one is recorded as "
                   "skipped with its set-up command. Default: $IPEX_EMBED_BENCH_PEERS_DIR; "
                   "without it (or --peer-env) the int8 peers are left out.")
@click.option("--peer-env", "peer_env", multiple=True, metavar="NAME=PYTHON",
              help="The interpreter of one peer environment (repeatable; wins over --peers-dir).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep built folders, vectors and worker logs here and reuse them next time.")
@click.option("--vnni-ports", default=2, show_default=True, type=click.IntRange(min=1),
              help="VNNI instructions per cycle per core assumed for the int8 peak without AMX.")
@click.option("--clock-ghz", type=float, help="CPU clock for the int8 peak (default: from the OS).")
def bench_command(
    model_dir: Path,
    output: Path | None,
    quick: bool,
    peer_env: tuple[str, ...],
    **options: Any,
) -> None:
    """Benchmark MODEL_DIR (an ipex-embeddings folder) against PyTorch and sentence-transformers.

    A bi-encoder folder: model level (latency vs sequence length, throughput vs batch size), end
    to end on SciFact (documents/s and query latency through each library's API), scaling on
    random BGE-base and BGE-large shapes (ModernBERT-base and Qwen3-0.6B on request: --scaling),
    and the distance to the CPU's int8 peak. A cross-encoder folder: reranking SciFact claims'
    BM25 top 100 (pairs/s, latency per claim, agreement) against sentence-transformers'
    CrossEncoder (torch fp32, onnx, openvino). Writes bench.json, bench.md and PNG plots.
    Timings are only as good as the machine is quiet.
    """
    from ..bench.run import FULL, QUICK, run_bench

    changes = _plan_changes(
        options.pop("runs"), options.pop("seq_lens"), options.pop("batch_sizes"),
        options.pop("docs"), options.pop("queries"), options.pop("parts"), options.pop("scaling"),
    )
    envs = _peer_envs(peer_env)
    typed = sys.argv[1:2] == ["bench"]
    with library_errors(ValueError):
        run_bench(
            model_dir, output or model_dir / "bench", quick=quick,
            plan=dataclasses.replace(QUICK if quick else FULL, **changes), peer_envs=envs,
            command=command_line("bench", *sys.argv[2:]) if typed else None, **options,
        )


def _plan_changes(
    runs: int | None, seq_lens: str | None, batch_sizes: str | None, docs: int | None,
    queries: int | None, parts: str | None, scaling: str | None,
) -> dict[str, Any]:
    """The options that change the plan (`BenchPlan` fields), parsed and checked."""
    changes: dict[str, Any] = {
        "latency_runs": runs, "latency_seq_lens": _ints(seq_lens, "--seq-lens"),
        "throughput_batches": _ints(batch_sizes, "--batch-sizes"), "documents": docs,
        "queries": queries, "parts": _parts(parts), "scaling": _shapes(scaling),
    }
    return {name: value for name, value in changes.items() if value is not None}


def _parts(text: str | None) -> tuple[str, ...] | None:
    from ..bench.run import PARTS

    if text is None:
        return None
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown or not chosen:
        raise click.BadParameter(f"unknown part(s) {unknown}; use some of {', '.join(PARTS)}.",
                                 param_hint="--parts")
    return chosen


def _shapes(text: str | None) -> tuple[str, ...] | None:
    from ..bench.scaling import SHAPES

    if text is None:
        return None
    shapes = () if text.strip() == "none" else tuple(
        s.strip() for s in text.split(",") if s.strip()
    )
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        raise click.BadParameter(f"unknown shape(s) {unknown}; use some of "
                                 f"{', '.join(SHAPES)}, or none.", param_hint="--scaling")
    return shapes
