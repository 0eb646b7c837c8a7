"""`run_bench`: plan the run, start the systems phase by phase, and write the report."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..commandline import command_line
from ..errors import BenchError, BuilderError
from ..log import report_logger
from .report import BenchReport

progress = report_logger(__name__)

__all__ = ["FULL", "PEERS_PYTHON_ENV", "QUICK", "BenchPlan", "run_bench"]

PEERS_PYTHON_ENV = "IPEX_EMBED_BENCH_PEERS_PYTHON"
BI_ENCODER_PARTS = ("model", "e2e", "scaling")
CROSS_ENCODER_PARTS = ("rerank",)
PARTS = (*BI_ENCODER_PARTS, *CROSS_ENCODER_PARTS)


@dataclass(frozen=True)
class BenchPlan:
    """What to measure and how often; `FULL` and `QUICK` are the two presets."""

    rounds: int
    latency_seq_lens: tuple[int, ...]
    latency_runs: int
    latency_warmup: int
    throughput_batches: tuple[int, ...]
    throughput_seq_len: int
    throughput_runs: int
    throughput_warmup: int
    documents: int | None
    """SciFact documents to embed end to end, evenly spread (None: all 5,183)."""
    queries: int | None
    """SciFact test queries for query latency (None: all 300)."""
    batch_size: int = 32
    scaling: tuple[str, ...] = ("base", "large")
    scaling_batches: tuple[int, ...] = (4, 16)
    """Throughput batch sizes for the scaling shapes (at `throughput_seq_len`); the latency
    lengths are `latency_seq_lens`. PyTorch fp32 runs BGE-large at about a document a second
    here, so the larger batches would take most of an hour."""
    scaling_runs: int = 10
    scaling_samples: int = 32
    """Calibration texts for the random scaling models (speed only: their accuracy is moot)."""
    parts: tuple[str, ...] = BI_ENCODER_PARTS
    """The parts of a bi-encoder folder's run; a cross-encoder folder's run is the rerank part,
    which a preset's parts stand for (see `_folder_and_plan`)."""
    build_missing: bool = True
    """Build fp32 and bf16 folders from the int8 folder's source model when not given."""
    torch_bf16: bool = True
    rerank_candidates: int = 100
    """BM25 candidates per SciFact claim in the rerank part (its claims are `queries`)."""


FULL = BenchPlan(
    rounds=3,
    latency_seq_lens=(16, 32, 64, 128, 256, 512),
    latency_runs=50,
    latency_warmup=5,
    throughput_batches=(4, 16, 64, 256),
    throughput_seq_len=256,
    throughput_runs=2,
    throughput_warmup=1,
    documents=None,
    queries=None,
)
QUICK = BenchPlan(
    rounds=3,
    latency_seq_lens=(16, 128),
    latency_runs=5,
    latency_warmup=2,
    throughput_batches=(4,),
    throughput_seq_len=256,
    throughput_runs=2,
    throughput_warmup=1,
    documents=128,
    queries=30,
    scaling=(),
    parts=("model", "e2e"),
    build_missing=False,
)


@dataclass
class _Context:
    model_dir: Path
    output_dir: Path
    work_dir: Path
    plan: BenchPlan
    threads: int
    peers_python: str
    report: BenchReport
    config: Any = None
    peers_dir: Path | None = None
    peer_envs: dict[str, str] = field(default_factory=dict)
    """Interpreters given with --peer-env NAME=PYTHON (they win over --peers-dir)."""
    source_path: Path | None = None
    folders: dict[str, Path] = field(default_factory=dict)
    source: str | None = None
    """--source: a cross-encoder's fp32 source (default: the folder's source_model)."""


def _token_spec(model_dir: Path) -> tuple[dict[str, int], int]:
    """vocab_size, [CLS]/[SEP] ids for synthetic inputs, and the longest length the model takes."""
    from tokenizers import Tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode("").ids
    positions = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # their position ids start after the padding index
    spec = {"vocab_size": int(config["vocab_size"]), "cls_id": ids[0], "sep_id": ids[-1]}
    return spec, positions


def _resolve_source(ctx: _Context) -> None:
    from ..source import inspect_source

    try:
        source = inspect_source(ctx.config.source_model, revision=_revision(ctx))
    except Exception as err:  # e.g. a Hub id while offline: PyTorch and ST peers are skipped
        ctx.report.skipped_parts["PyTorch and sentence-transformers systems"] = (
            f"the source model {ctx.config.source_model!r} could not be found ({err})"
        )
        return
    ctx.source_path = source.path


def _revision(ctx: _Context) -> str | None:
    # The demo's "revision" names its PyPI package; inspect_source knows the demo by name.
    revision = ctx.config.source_revision
    return revision if revision and not revision.startswith("pypi:") else None


def _prepare_folders(ctx: _Context, fp32_dir: Path | None, bf16_dir: Path | None) -> None:
    """Our folders by precision: the one benchmarked, plus fp32/bf16 given or built here."""
    from ipex_embeddings.folder import check_model_folder

    ctx.folders[ctx.config.precision] = ctx.model_dir
    for precision, given in (("fp32", fp32_dir), ("bf16", bf16_dir)):
        if precision in ctx.folders:
            continue
        if given is not None:
            found = check_model_folder(Path(given)).precision
            if found != precision:
                raise BenchError(
                    f"--{precision}-dir {given} holds a {found} model, not {precision}."
                )
            ctx.folders[precision] = Path(given)
        elif ctx.plan.build_missing and ctx.source_path is not None:
            ctx.folders[precision] = _build_folder(ctx, precision)
        else:
            why = ("quick mode builds no extra folders" if not ctx.plan.build_missing
                   else "the source model is not available")
            ctx.report.skipped_parts[f"ipex-embeddings {precision} (model level)"] = (
                f"{why}; pass --{precision}-dir (make one with `{_quantize_line(ctx, precision)}`)"
            )


def _quantize_line(ctx: _Context, precision: str) -> str:
    options = [("--precision", precision), ("--output", "DIR")]
    return command_line("quantize", ctx.config.source_model, options=options)


def _build_folder(ctx: _Context, precision: str) -> Path:
    from ..calibration import load_calibration
    from ..quantize import QuantizeOptions, quantize_to_folder
    from ..source import inspect_source

    folder = ctx.work_dir / f"model-{precision}"
    marker = folder / "bench_build.json"
    identity = {"source": ctx.config.source_model, "revision": ctx.config.source_revision}
    if marker.is_file() and json.loads(marker.read_text()) == identity:
        return folder
    progress.info(f"Building the {precision} folder from {ctx.config.source_model} into {folder}")
    quantize_to_folder(
        inspect_source(ctx.config.source_model, revision=_revision(ctx)), load_calibration(),
        folder,
        QuantizeOptions(precision=precision), overwrite=True,
    )
    marker.write_text(json.dumps(identity))
    return folder


def _fleet(
    ctx: _Context, specs: Sequence[Any], setup: dict[str, Any], phase: str,
    peer_envs: dict[str, str | None] | None = None,
) -> Any:
    from .measure import Fleet

    return Fleet(specs, threads=ctx.threads, setup=setup, peers_python=ctx.peers_python,
                 log_dir=ctx.work_dir / "logs" / phase, peer_envs=peer_envs)


def _peers(ctx: _Context) -> tuple[list[Any], dict[str, str], dict[str, str | None]]:
    """The int8 peers' specs, those skipped (with why) and each environment's interpreter.

    Each peer's model is built once into the work folder in its own environment; a missing
    environment or a failed build is recorded as skipped with the reason.
    """
    from ..calibration import load_calibration
    from .peers import build_peer, build_steps, missing_reason, peer_specs, resolve_peer_envs

    if ctx.peers_dir is None and not ctx.peer_envs:
        ctx.report.skipped_parts["int8 peers (openvino-genai, fastembed, optimum-intel, IPEX)"] = (
            "no --peers-dir or --peer-env: set their environments up with "
            "benchmarks/peers/setup_*.sh (see benchmarks/README.md)")
        return [], {}, {}
    envs = resolve_peer_envs(ctx.peers_dir, ctx.peer_envs)
    specs = peer_specs(ctx.model_dir, ctx.source_path or Path(), ctx.work_dir,
                       ctx.plan.batch_size)
    skipped = {s.key: missing_reason(s.env, ctx.peers_dir) for s in specs if not envs[s.env]}
    if not envs["optimum"]:  # genai-export runs optimum-intel's export, made in that env
        skipped.setdefault("genai-export", "its model is optimum-intel's export, and "
                           + missing_reason("optimum", ctx.peers_dir))
    if ctx.source_path is None:
        skipped.update({s.key: "the source model is not available" for s in specs})
        return specs, skipped, envs
    calibration = ctx.work_dir / "peers" / "calibration.json"
    calibration.parent.mkdir(parents=True, exist_ok=True)
    calibration.write_text(json.dumps({"texts": load_calibration().texts}), encoding="utf-8")
    for env, step, options, keys in build_steps(ctx.model_dir, ctx.source_path, ctx.work_dir,
                                                calibration):
        if not envs[env] or all(key in skipped for key in keys):
            continue
        progress.info(f"  building {', '.join(keys)} in {envs[env]}")
        try:
            build_peer(envs[env], step, options,
                       ctx.work_dir / "logs" / "peers" / f"build-{keys[0]}.log")
        except RuntimeError as err:
            skipped.update({key: str(err) for key in keys})
            if step == "optimum":  # the optimum-cli fp32 export is genai-export's model too
                skipped.setdefault("genai-export", f"needs the optimum build: {err}")
    return specs, skipped, envs


def _sweep(
    ctx: _Context, model: str, model_dir: Path, specs: Sequence[Any], phase: str, *,
    batches: Sequence[int], latency_runs: int, latency_warmup: int,
) -> dict[str, Any]:
    """Latency over the plan's lengths and throughput over `batches` for one model's systems.

    Lengths past the model's position table are left out (and said so); returns the statuses.
    """
    from .model_level import measure_latency, measure_throughput

    plan, report = ctx.plan, ctx.report
    tokens, positions = _token_spec(model_dir)
    lengths = [n for n in plan.latency_seq_lens if n <= positions]
    if len(lengths) < len(plan.latency_seq_lens):
        report.skipped_parts["latency beyond the position table"] = (
            f"lengths above {positions} tokens do not fit this model"
        )
    with _fleet(ctx, specs, {"tokens": tokens}, phase) as fleet:
        report.latency += measure_latency(fleet, model, lengths, runs=latency_runs,
                                          warmup=latency_warmup, rounds=plan.rounds)
        report.throughput += measure_throughput(
            fleet, model, batches, seq_len=min(plan.throughput_seq_len, positions),
            runs=plan.throughput_runs, warmup=plan.throughput_warmup, rounds=plan.rounds,
        )
        report.round_loads[phase] = fleet.round_loads
        return fleet.statuses


def _model_level(ctx: _Context) -> None:
    from .limit import distance_to_limit
    from .model_level import model_level_specs

    plan, report = ctx.plan, ctx.report
    specs = model_level_specs(ctx.source_path or Path(), ctx.folders, torch_bf16=plan.torch_bf16)
    if ctx.source_path is None:
        specs = [s for s in specs if s.factory != "torch"]
    progress.info(f"Model level: {', '.join(s.label for s in specs)}")
    name = report.model["name"]
    statuses = _sweep(ctx, name, ctx.model_dir, specs, "model", batches=plan.throughput_batches,
                      latency_runs=plan.latency_runs, latency_warmup=plan.latency_warmup)
    report.systems += statuses.values()
    _add_limit(ctx, name, ctx.folders.get("int8"), distance_to_limit)


def _add_limit(ctx: _Context, model: str, folder: Path | None, distance: Callable) -> None:
    rows = [r for r in ctx.report.throughput if r.model == model and r.system == "ov-int8"]
    if folder is None or not rows:
        return
    best = max(rows, key=lambda r: r.docs_per_s)
    entry = distance(folder / "openvino" / "openvino_model.xml", best.seq_len, best.docs_per_s,
                     ctx.report.peak.get("ops_per_s"))
    ctx.report.limit.append({"model": model, "batch": best.batch, **entry})


def _end_to_end(ctx: _Context) -> None:
    import importlib.util

    from .end_to_end import end_to_end_specs, measure_end_to_end, write_texts

    plan, report = ctx.plan, ctx.report
    texts_file = ctx.work_dir / "texts.json"
    report.corpus = write_texts(texts_file, plan.documents, plan.queries)
    specs = end_to_end_specs(
        ctx.model_dir, ctx.source_path or Path(), plan.batch_size, ctx.config.precision
    )
    skipped = {}
    if ctx.source_path is None:
        skipped.update({key: "the source model is not available"
                        for key in ("st-torch", "st-onnx", "st-openvino")})
    if importlib.util.find_spec("langchain_core") is None:
        skipped["langchain"] = (
            'langchain-core is not installed: pip install "ipex-embeddings[langchain]"'
        )
    elif importlib.util.find_spec("ipex_embeddings.langchain") is None:
        skipped["langchain"] = "ipex_embeddings.langchain is not in this version of the package"
    peers, peers_skipped, envs = _peers(ctx)
    specs, skipped = [*specs, *peers], {**skipped, **peers_skipped}
    progress.info(f"End to end on {report.corpus['documents']} SciFact documents: "
             f"{', '.join(s.label for s in specs if s.key not in skipped)}")
    with _fleet(ctx, [s for s in specs if s.key not in skipped],
                {"texts_file": str(texts_file)}, "e2e", envs) as fleet:
        for spec in specs:
            if spec.key in skipped:
                fleet.add_skipped(spec, skipped[spec.key])
        report.end_to_end += measure_end_to_end(fleet, plan.rounds, ctx.work_dir / "vectors")
        report.round_loads["e2e"] = fleet.round_loads
        _explain_optimum(ctx, fleet.statuses.values())
        report.systems += [fleet.statuses[s.key] for s in specs]


def _explain_optimum(ctx: _Context, statuses: Iterable[Any]) -> None:
    """Say, beside a sentence-transformers backend that did not load, where optimum must be."""
    for status in statuses:
        needs_optimum = "ptimum" in status.reason or "could not start" in status.reason
        if status.status != "ok" and status.key.startswith("st-") and needs_optimum:
            status.reason += (
                f" [peers interpreter: {Path(ctx.peers_python).name}; sentence-transformers' "
                "onnx and openvino backends need optimum, see benchmarks/README.md and "
                "--peers-python]"
            )


def _resolve_cross_source(ctx: _Context) -> None:
    """The cross-encoder's fp32 source folder (--source, else the folder's source_model), for
    the sentence-transformers systems and our fp32 folder; when absent, they are skipped."""
    from ..cross_build import is_cross_encoder_folder
    from ..errors import SourceModelError
    from ..source import local_copy

    name = ctx.source or ctx.config.source_model
    try:
        path = local_copy(name, None if ctx.source else _revision(ctx))[0]
    except SourceModelError as err:
        reason = f"the source model {name!r} could not be found ({err})"
    else:
        if is_cross_encoder_folder(path):
            ctx.source_path = path
            return
        reason = f"the source {name!r} is not a *ForSequenceClassification cross-encoder"
    ctx.report.skipped_parts["sentence-transformers CrossEncoder systems"] = (
        f"{reason}; pass --source FOLDER, the fp32 cross-encoder the folder was built from")


def _cross_fp32_folder(ctx: _Context, given: Path | None) -> Path | None:
    """Our fp32 cross-encoder folder beside the one benchmarked: given, built, or None (said)."""
    from ipex_embeddings.folder import check_model_folder

    if ctx.config.precision == "fp32":
        return None
    if given is not None:
        found = check_model_folder(Path(given), "cross-encoder").precision
        if found != "fp32":
            raise BenchError(f"--fp32-dir {given} holds a {found} model, not fp32.")
        return Path(given)
    why = ("quick mode builds no extra folders" if not ctx.plan.build_missing
           else "the source model is not available")
    if ctx.plan.build_missing and ctx.source_path is not None:
        try:
            return _build_cross_fp32(ctx, ctx.source_path)
        except BuilderError as err:
            why = f"building it failed ({err})"
    ctx.report.skipped_parts["ipex-embeddings CrossEncoder fp32"] = (
        f"{why}; pass --fp32-dir (make one with `"
        + command_line("quantize", "SOURCE", options=[("--precision", "fp32"),
                                                      ("--output", "DIR")]) + "`)")
    return None


def _build_cross_fp32(ctx: _Context, source: Path) -> Path:
    from ..cross_build import quantize_cross_encoder_source

    folder = ctx.work_dir / "cross-encoder-fp32"
    marker = folder / "bench_build.json"
    identity = {"source": str(source.resolve()), "revision": ctx.config.source_revision,
                "max_seq_length": ctx.config.max_seq_length}
    if marker.is_file() and json.loads(marker.read_text()) == identity:
        return folder
    progress.info(f"Building the fp32 cross-encoder folder from {source} into {folder}")
    quantize_cross_encoder_source(source, ctx.config.source_model, folder, precision="fp32",
                                  max_seq_length=ctx.config.max_seq_length, overwrite=True,
                                  revision=ctx.config.source_revision)
    marker.write_text(json.dumps(identity))
    return folder


def _rerank(ctx: _Context, fp32_dir: Path | None) -> None:
    """The rerank part: SciFact claims' BM25 candidates through each cross-encoder's API."""
    from .rerank import measure_rerank, rerank_specs, write_rerank_texts

    plan, report = ctx.plan, ctx.report
    texts_file = ctx.work_dir / "rerank.json"
    report.rerank_setup, sizes = write_rerank_texts(texts_file, plan.queries,
                                                    plan.rerank_candidates)
    specs = rerank_specs(ctx.model_dir, ctx.source_path or Path(), ctx.config.precision,
                         ctx.config.max_seq_length, plan.batch_size,
                         _cross_fp32_folder(ctx, fp32_dir))
    skipped = {} if ctx.source_path else {
        s.key: "the source model is not available" for s in specs if s.key.startswith("st-")}
    progress.info(f"Rerank: {report.rerank_setup['queries']} SciFact claims x "
                  f"{plan.rerank_candidates} BM25 candidates: "
                  f"{', '.join(s.label for s in specs if s.key not in skipped)}")
    with _fleet(ctx, [s for s in specs if s.key not in skipped],
                {"texts_file": str(texts_file)}, "rerank") as fleet:
        for spec in specs:
            if spec.key in skipped:
                fleet.add_skipped(spec, skipped[spec.key])
        report.rerank += measure_rerank(fleet, plan.rounds, ctx.work_dir / "rerank-scores",
                                        sizes)
        report.round_loads["rerank"] = fleet.round_loads
        _explain_optimum(ctx, fleet.statuses.values())
        report.systems += [fleet.statuses[s.key] for s in specs]


def _scaling(ctx: _Context) -> None:
    from ..demo import demo_model_path
    from .limit import distance_to_limit
    from .model_level import model_level_specs
    from .scaling import SHAPES, build_scaling_models

    plan, report = ctx.plan, ctx.report
    for name in plan.scaling:
        shape = SHAPES[name]
        progress.info(f"Scaling: {shape.label}")
        source_dir, folders = build_scaling_models(
            ctx.work_dir, shape, demo_model_path(), samples=plan.scaling_samples
        )
        specs = model_level_specs(source_dir, folders, torch_bf16=plan.torch_bf16)
        statuses = _sweep(ctx, shape.label, folders["int8"], specs, f"scaling-{name}",
                          batches=plan.scaling_batches, latency_runs=plan.scaling_runs,
                          latency_warmup=2)
        known = {(s.key, s.kind) for s in report.systems}
        for status in statuses.values():
            if (status.key, status.kind) not in known and status.status == "ok":
                report.systems.append(status)  # labels, threads and versions for the tables
            if status.status != "ok":
                report.skipped_parts[f"{shape.label}: {status.label}"] = status.reason
        _add_limit(ctx, shape.label, folders["int8"], distance_to_limit)


def _timed(ctx: _Context, name: str, part: Callable[[_Context], None]) -> None:
    started = time.perf_counter()
    part(ctx)
    progress.info(f"  {name}: {time.perf_counter() - started:.0f} s")


def _default_command(model_dir: Path, output_dir: Path, quick: bool) -> str:
    return command_line("bench", model_dir, options=[("--output", output_dir)],
                        flags=["--quick"] if quick else [])


def _new_report(
    model_dir: Path, output_dir: Path, config: Any, plan: BenchPlan, *, quick: bool,
    threads: int, vnni_ports: int, clock_ghz: float | None, command: str | None,
) -> BenchReport:
    """The report's header: the model, the plan, this machine and its int8 peak."""
    from .hardware import collect_hardware, int8_peak

    hardware = collect_hardware(threads, clock_ghz)
    return BenchReport(
        mode="quick" if quick else "full",
        command=command or _default_command(model_dir, output_dir, quick),
        model={"name": f"{config.source_model.split('/')[-1] or model_dir.name} {config.precision}",
               "folder": model_dir.name, "source_model": config.source_model,
               "precision": config.precision, "dimension": config.dimension,
               "max_seq_length": config.max_seq_length},
        settings={**dataclasses.asdict(plan), "threads": threads, "vnni_ports": vnni_ports},
        hardware=dataclasses.asdict(hardware),
        peak=dataclasses.asdict(int8_peak(hardware, vnni_ports)),
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
    )


def _run_parts(ctx: _Context, fp32_dir: Path | None, bf16_dir: Path | None) -> None:
    """The plan's parts, in order, into `ctx.report`."""
    if ctx.config.kind == "cross-encoder":
        _resolve_cross_source(ctx)
        _timed(ctx, "rerank", lambda c: _rerank(c, fp32_dir))
        ctx.report.skipped_parts["model level, end to end, scaling"] = (
            "these parts measure bi-encoders (embeddings); a cross-encoder folder is measured by "
            "the rerank part")
        return
    _resolve_source(ctx)
    if "model" in ctx.plan.parts:
        _prepare_folders(ctx, fp32_dir, bf16_dir)
        _timed(ctx, "model level", _model_level)
    if "e2e" in ctx.plan.parts:
        _timed(ctx, "end to end", _end_to_end)
    if "scaling" in ctx.plan.parts and ctx.plan.scaling:
        _timed(ctx, "scaling", _scaling)
    else:
        ctx.report.skipped_parts["scaling (BGE-base/large shapes)"] = (
            "not part of this run (--quick, --parts or --scaling none)"
        )


def run_bench(
    model_dir: Path,
    output_dir: Path,
    *,
    quick: bool = False,
    rounds: int | None = None,
    plan: BenchPlan | None = None,
    threads: int | None = None,
    fp32_dir: Path | None = None,
    bf16_dir: Path | None = None,
    peers_python: str | None = None,
    peers_dir: Path | None = None,
    peer_envs: dict[str, str] | None = None,
    work_dir: Path | None = None,
    vnni_ports: int = 2,
    clock_ghz: float | None = None,
    command: str | None = None,
    source: str | None = None,
) -> BenchReport:
    """Benchmark the model folder `model_dir`; write bench.json, bench.md and plots to `output_dir`.
    A cross-encoder folder gets the rerank part (bench/rerank.py), a bi-encoder the others.
    Progress goes to the report logger `ipex_embeddings_builder.report.run` (see `log`).

    Args:
        quick: the smoke-test preset (about a minute): few runs, 64 documents, no scaling.
        rounds, plan: override the plan's rounds; what to measure (default: `QUICK` or `FULL`).
        fp32_dir, bf16_dir: our fp32/bf16 folders to compare (default: the full plan builds them).
        peers_python: interpreter for the sentence-transformers systems (default: this one, or
            $IPEX_EMBED_BENCH_PEERS_PYTHON); its onnx and openvino backends need optimum there.
        peers_dir: the int8 peers' environments, a venv per peer by name (made by
            benchmarks/peers/setup_NAME.sh); without it or `peer_envs`, the report skips them.
        peer_envs: NAME -> interpreter, for peer environments elsewhere (wins over peers_dir).
        work_dir: keep built folders, texts, vectors and worker logs here (default: a temp folder).
        vnni_ports, clock_ghz: VNNI instructions issued per cycle per core, and the CPU clock
            (default: the OS's), for the int8 peak without AMX.
        command: the command line recorded in the report (default: one that re-runs it).
        source: a cross-encoder's fp32 source, a folder or Hub id (default: its source_model).

    Raises:
        BenchError: no rounds, a given folder of another precision, a part of the other kind.
        ModelFolderError: `model_dir` (or a given folder) is not a model folder.
    """
    from ipex_embeddings.encoder import available_cores

    started = time.time()
    model_dir, output_dir = Path(model_dir).expanduser(), Path(output_dir).expanduser()
    config, plan = _folder_and_plan(model_dir, _plan(plan, quick, rounds),
                                    {"--source": source, "--bf16-dir": bf16_dir})
    threads = threads or available_cores()
    report = _new_report(model_dir, output_dir, config, plan, quick=quick, threads=threads,
                         vnni_ports=vnni_ports, clock_ghz=clock_ghz, command=command)
    with _work_folder(work_dir) as work:
        ctx = _Context(model_dir, output_dir, work, plan, threads,
                       peers_python or os.environ.get(PEERS_PYTHON_ENV) or sys.executable,
                       report, config, Path(peers_dir).expanduser() if peers_dir else None,
                       dict(peer_envs or {}), source=source)
        _run_parts(ctx, fp32_dir, bf16_dir)
    _write(report, output_dir, time.time() - started)
    return report


def _plan(plan: BenchPlan | None, quick: bool, rounds: int | None) -> BenchPlan:
    """`plan` (default: the preset for `quick`) with `rounds` when given.

    Raises:
        BenchError: fewer than one round.
    """
    plan = plan or (QUICK if quick else FULL)
    if rounds is not None:
        plan = dataclasses.replace(plan, rounds=rounds)
    if plan.rounds < 1:
        raise BenchError(f"rounds must be at least 1, got {plan.rounds}.")
    return plan


def _folder_and_plan(
    model_dir: Path, plan: BenchPlan, kind_options: dict[str, Any]
) -> tuple[Any, BenchPlan]:
    """The folder's config, and `plan` with the parts of the folder's kind: a preset's
    (bi-encoder) parts stand for the rerank part of a cross-encoder folder.

    Raises:
        ModelFolderError: not a model folder.
        BenchError: a part, or one of `kind_options` (given: not None), of the other kind.
    """
    from ipex_embeddings.folder import check_model_folder

    config = check_model_folder(model_dir)
    kind = config.kind
    cross = kind == "cross-encoder"
    if cross and plan.parts in (FULL.parts, QUICK.parts):
        plan = dataclasses.replace(plan, parts=CROSS_ENCODER_PARTS)
    wrong = [part for part in plan.parts if (part in BI_ENCODER_PARTS) == cross]
    if wrong:
        fits = CROSS_ENCODER_PARTS if cross else BI_ENCODER_PARTS
        raise BenchError(
            f"{model_dir} is a {kind} folder: the part(s) {', '.join(wrong)} do not apply to it. "
            f"Its parts are {', '.join(fits)}; leave --parts out to run them.")
    given = [name for name, value in kind_options.items() if value is not None]
    if cross and "--bf16-dir" in given:
        raise BenchError("--bf16-dir does not apply to a cross-encoder folder (it is measured "
                         "against its fp32 folder and sentence-transformers); leave it out.")
    if not cross and "--source" in given:
        raise BenchError("--source is for cross-encoder folders; a bi-encoder folder's source "
                         "model is read from the folder.")
    return config, plan


@contextmanager
def _work_folder(work_dir: Path | None) -> Iterator[Path]:
    """`work_dir`, kept; or a temporary folder, removed afterwards."""
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="ipex-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _write(report: BenchReport, output_dir: Path, seconds: float) -> None:
    """The plots, bench.json and bench.md into `output_dir`."""
    from .plots import write_plots

    report.seconds = seconds
    report.plots = write_plots(report, output_dir)
    report.write(output_dir)
    progress.info(f"Wrote {output_dir / 'bench.md'}, {output_dir / 'bench.json'} and "
                  f"{len(report.plots)} plot(s) in {report.seconds:.0f} s")
