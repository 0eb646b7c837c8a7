"""The `ipex-embed bench` command line."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

import click

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
    from .peers import PEER_ENVS

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
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
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
              help="SciFact test queries for query latency (default: all 300; quick: 30).")
@click.option("--parts", default=None,
              help="Comma-separated parts to run: model, e2e, scaling (default: all).")
@click.option("--scaling", "scaling", default=None,
              help="Scaling shapes: base,large (default), base, large or none.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Threads per system (default: every core this process may use).")
@click.option("--fp32-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Our fp32 folder of the same model (default: built from the source model).")
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
    rounds: int | None,
    runs: int | None,
    seq_lens: str | None,
    batch_sizes: str | None,
    docs: int | None,
    queries: int | None,
    parts: str | None,
    scaling: str | None,
    threads: int | None,
    fp32_dir: Path | None,
    bf16_dir: Path | None,
    peers_python: str | None,
    peers_dir: Path | None,
    peer_env: tuple[str, ...],
    work_dir: Path | None,
    vnni_ports: int,
    clock_ghz: float | None,
) -> None:
    """Benchmark MODEL_DIR (an ipex-embeddings folder) against PyTorch and sentence-transformers.

    Model level (latency vs sequence length, throughput vs batch size), end to end on SciFact
    (documents/s and query latency through each library's API), scaling on random BGE-base and
    BGE-large shapes, and the distance to the CPU's int8 peak. Writes bench.json, bench.md and
    PNG plots. Timings are only as good as the machine is quiet.
    """
    from .run import FULL, PARTS, QUICK, run_bench
    from .scaling import SHAPES

    plan = QUICK if quick else FULL
    changes: dict[str, object] = {}
    if runs is not None:
        changes["latency_runs"] = runs
    if (lengths := _ints(seq_lens, "--seq-lens")) is not None:
        changes["latency_seq_lens"] = lengths
    if (batches := _ints(batch_sizes, "--batch-sizes")) is not None:
        changes["throughput_batches"] = batches
    if docs is not None:
        changes["documents"] = docs
    if queries is not None:
        changes["queries"] = queries
    if parts is not None:
        chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown or not chosen:
            raise click.BadParameter(f"unknown part(s) {unknown}; use some of {', '.join(PARTS)}.",
                                     param_hint="--parts")
        changes["parts"] = chosen
    if scaling is not None:
        shapes = () if scaling.strip() == "none" else tuple(
            s.strip() for s in scaling.split(",") if s.strip()
        )
        unknown = sorted(set(shapes) - set(SHAPES))
        if unknown:
            raise click.BadParameter(f"unknown shape(s) {unknown}; use base, large or none.",
                                     param_hint="--scaling")
        changes["scaling"] = shapes
    envs = _peer_envs(peer_env)
    output = output or model_dir / "bench"
    try:
        run_bench(
            model_dir, output, quick=quick, rounds=rounds,
            plan=dataclasses.replace(plan, **changes), threads=threads, fp32_dir=fp32_dir,
            bf16_dir=bf16_dir, peers_python=peers_python, peers_dir=peers_dir, peer_envs=envs,
            work_dir=work_dir,
            vnni_ports=vnni_ports, clock_ghz=clock_ghz, echo=click.echo,
            command=shlex.join(["ipex-embed", "bench", *sys.argv[2:]])
            if sys.argv[1:2] == ["bench"] else None,
        )
    except ValueError as err:
        raise click.ClickException(str(err)) from err
