"""The bench's result: one object, written as bench.json and bench.md beside the plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .end_to_end import EndToEndRow
from .measure import SystemStatus, ratio_of_rounds
from .model_level import LatencyRow, ThroughputRow
from .rerank import RerankRow

__all__ = ["SCHEMA_VERSION", "BenchReport"]

SCHEMA_VERSION = 2
# When speed figures are not fit to publish (see `BenchReport.speed_trust`).
BUSY_LOAD_PER_CPU = 1.25
"""A 1-minute load average above this many times the usable CPUs means other work shared the
machine: the bench itself keeps at most `threads` of them busy, one system at a time."""
WIDE_SPREAD = 0.20
"""(max - min) / median of a figure over the rounds above this: the median is not stable."""
MIN_ROUNDS = 3
# The targets, set for MiniLM int8; shown only when that is the model benchmarked.
TARGETS = {"speedup_vs_st_torch": 5.0, "speedup_vs_fastest_st": 1.3, "query_p50_ms": 4.0}
TARGET_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The targets for an int8 cross-encoder, reranking (any model).
RERANK_TARGETS = {"speedup_vs_st_torch": 4.0, "speedup_vs_fastest_st": 1.3}
ST_BACKENDS = ("st-torch", "st-onnx", "st-openvino")
PART_NAMES = {"model": "model level", "e2e": "end to end", "rerank": "rerank"}
SCALING_SEQ_LEN = 128
"""The latency point at which models of different sizes are compared."""
# int8 against each of these, in the scaling summary.
SCALING_REFERENCES = {"torch-fp32": "PyTorch fp32", "torch-bf16": "PyTorch bf16 autocast",
                      "ov-bf16": "our bf16"}


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _mean_min(mean: float | None, low: float | None) -> str:
    return "-" if mean is None or low is None else f"{mean:.4f} ({low:.4f})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


@dataclass
class BenchReport:
    """Everything one run measured, how, and on what; figures come only from this run."""

    mode: str
    command: str
    model: dict[str, Any]
    settings: dict[str, Any]
    hardware: dict[str, Any]
    peak: dict[str, Any]
    systems: list[SystemStatus] = field(default_factory=list)
    latency: list[LatencyRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    end_to_end: list[EndToEndRow] = field(default_factory=list)
    corpus: dict[str, Any] = field(default_factory=dict)
    limit: list[dict[str, Any]] = field(default_factory=list)
    rerank: list[RerankRow] = field(default_factory=list)
    rerank_setup: dict[str, Any] = field(default_factory=dict)
    """The rerank part's claims, candidates and first stage (see bench/rerank.py)."""
    skipped_parts: dict[str, str] = field(default_factory=dict)
    round_loads: dict[str, list[dict[str, float | None]]] = field(default_factory=dict)
    """Per phase (model, e2e, scaling-NAME): the 1-minute load average before and after each
    round."""
    started: str = ""
    seconds: float = 0.0
    plots: list[Path] = field(default_factory=list)

    def label(self, key: str, kind: str | None = None) -> str:
        """The display label of a system key."""
        for status in self.systems:
            if status.key == key and (kind is None or status.kind == kind):
                return status.label
        return key

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plots"] = [p.name for p in self.plots]
        data["schema_version"] = SCHEMA_VERSION
        data["targets"] = self.targets()
        data["scaling_summary"] = self.scaling_summary()
        data["speed_trust"] = self.speed_trust()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    # --- targets -------------------------------------------------------------------------

    def targets(self) -> list[dict[str, Any]]:
        """The issue's targets with the measured figure and whether it is met: end to end for
        MiniLM int8, reranking for an int8 cross-encoder."""
        return self._embedding_targets() + self._rerank_targets()

    def _rerank_targets(self) -> list[dict[str, Any]]:
        rows = {r.system: r for r in self.rerank}
        ours = rows.get("ours")
        if ours is None or self.model.get("precision") != "int8":
            return []
        found = []
        if "st-torch" in rows and ours.speedup is not None:
            found.append({"target": "rerank pairs/s >= 4x sentence-transformers CrossEncoder "
                                    "torch fp32", "measured": ours.speedup, "unit": "x",
                          "met": ours.speedup >= RERANK_TARGETS["speedup_vs_st_torch"]})
        peers = [r for key, r in rows.items() if key in ST_BACKENDS]
        if peers:
            fastest = max(peers, key=lambda r: r.pairs_per_s)
            ratio = ours.pairs_per_s / fastest.pairs_per_s
            found.append({"target": "rerank pairs/s >= 1.3x the fastest sentence-transformers "
                                    f"backend measured ({self.label(fastest.system, 'rerank')})",
                          "measured": ratio, "unit": "x",
                          "met": ratio >= RERANK_TARGETS["speedup_vs_fastest_st"],
                          "peers_measured": sorted(r.system for r in peers)})
        return found

    def _embedding_targets(self) -> list[dict[str, Any]]:
        if self.model.get("source_model") != TARGET_MODEL or not self.end_to_end:
            return []
        rows = {r.system: r for r in self.end_to_end}
        ours = rows.get("ours")
        if ours is None:
            return []
        found = []
        if "st-torch" in rows and ours.speedup is not None:
            found.append({"target": "end to end >= 5x sentence-transformers torch fp32",
                          "measured": ours.speedup, "unit": "x",
                          "met": ours.speedup >= TARGETS["speedup_vs_st_torch"]})
        peers = [r for k, r in rows.items() if k in ("st-torch", "st-onnx", "st-openvino")]
        if peers:
            fastest = max(peers, key=lambda r: r.docs_per_s)
            ratio = ours.docs_per_s / fastest.docs_per_s
            found.append({"target": f"end to end >= 1.3x the fastest sentence-transformers "
                                    f"backend measured ({self.label(fastest.system)})",
                          "measured": ratio, "unit": "x",
                          "met": ratio >= TARGETS["speedup_vs_fastest_st"],
                          "peers_measured": sorted(r.system for r in peers)})
        found.append({"target": "query latency p50 <= 4 ms", "measured": ours.query_p50_ms,
                      "unit": " ms", "met": ours.query_p50_ms <= TARGETS["query_p50_ms"]})
        return found

    # --- trust ---------------------------------------------------------------------------

    def _spreads(self) -> dict[str, float]:
        """Relative spread over rounds of our own headline figures (what a card would quote)."""
        from .measure import spread

        found = {}
        ours = {s.key for s in self.systems if s.role == "ours" and s.kind == "e2e"}
        for r in self.end_to_end:
            if r.system in ours and len(r.round_docs_per_s) > 1:
                found[f"{r.system} docs/s"] = spread(r.round_docs_per_s)["relative"]
                found[f"{r.system} query p50"] = spread(r.round_query_p50_ms or [0])["relative"]
        for row in self.rerank:
            if row.system in ("ours", "ours-fp32") and len(row.round_pairs_per_s) > 1:
                found[f"rerank {row.system} pairs/s"] = spread(row.round_pairs_per_s)["relative"]
        for r in self.latency:
            if r.system == "ov-int8" and len(r.round_medians_ms) > 1:
                found[f"int8 latency {r.seq_len} tokens"] = spread(r.round_medians_ms)["relative"]
        return found

    def speed_trust(self) -> dict[str, Any]:
        """Whether the speed figures are fit to publish, and if not, why (load, spread, rounds)."""
        loads = [v for rounds in self.round_loads.values() for entry in rounds
                 for v in entry.values() if v is not None]
        cpus = int(self.hardware.get("logical_cpus") or self.hardware.get("threads") or 1)
        reasons = []
        if loads and max(loads) > BUSY_LOAD_PER_CPU * cpus:
            reasons.append(f"the machine was busy: load average up to {max(loads):.2f} on {cpus} "
                           f"CPUs (more than {BUSY_LOAD_PER_CPU:g} per CPU)")
        if self.settings.get("rounds", 0) < MIN_ROUNDS:
            reasons.append(f"{self.settings.get('rounds')} round(s): fewer than {MIN_ROUNDS}, "
                           "so a median and its spread mean little")
        spreads = self._spreads()
        wide = {k: v for k, v in spreads.items() if v > WIDE_SPREAD}
        if wide:
            reasons.append("the rounds disagreed: " + ", ".join(
                f"{k} varied by {100 * v:.0f}%" for k, v in wide.items())
                + f" of the median (more than {100 * WIDE_SPREAD:.0f}%)")
        return {"trusted": not reasons, "reasons": reasons,
                "max_load_average": max(loads) if loads else None, "logical_cpus": cpus,
                "spreads": spreads}

    # --- scaling -------------------------------------------------------------------------

    def scaling_points(self) -> list[tuple[str, list[Any]]]:
        """Latency and throughput rows at the one point every model size was measured at."""
        batch = max(self.settings.get("scaling_batches") or [1])
        seq_len = self.settings["throughput_seq_len"]
        return [
            (f"latency, batch 1, {SCALING_SEQ_LEN} tokens",
             [r for r in self.latency if r.batch == 1 and r.seq_len == SCALING_SEQ_LEN]),
            (f"throughput, batch {batch}, {seq_len} tokens",
             [r for r in self.throughput if r.batch == batch and r.seq_len == seq_len]),
        ]

    def scaling_summary(self) -> list[dict[str, Any]]:
        """int8's speedup over each reference system, per model and point, paired by round."""
        found = []
        for point, rows in self.scaling_points():
            latency = point.startswith("latency")
            for model in self._models(rows):
                by_system = {r.system: r for r in rows if r.model == model}
                int8 = by_system.get("ov-int8")
                if int8 is None:
                    continue
                ours = int8.round_medians_ms if latency else int8.round_docs_per_s
                entry: dict[str, Any] = {"model": model, "point": point}
                for key in SCALING_REFERENCES:
                    other = by_system.get(key)
                    if other is None:
                        entry[key] = None
                    elif latency:
                        entry[key] = ratio_of_rounds(other.round_medians_ms, ours)
                    else:
                        entry[key] = ratio_of_rounds(ours, other.round_docs_per_s)
                found.append(entry)
        return found

    # --- markdown ------------------------------------------------------------------------

    def to_markdown(self) -> str:
        hw = self.hardware
        flags = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in hw["flags"].items())
        versions = ", ".join(f"{k} {v}" for k, v in hw["versions"].items())
        lines = [
            f"# ipex-embed bench: {self.model.get('name', '')} ({self.mode})",
            "",
            f"Measured by `{self.command}` on {self.started}, {self.seconds:.0f} s. "
            f"{self.settings['rounds']} round(s); systems run round-robin in separate processes, "
            "their order rotating each round; figures are medians over rounds, ratios are taken "
            "within each round against the baseline of the same run.",
            "",
            f"- CPU: {hw['cpu_model']}, {hw['physical_cores']} cores ({hw['logical_cpus']} logical "
            f"CPUs usable), {hw['threads']} threads per system, clock "
            f"{_fmt(hw['clock_ghz'], 3)} GHz ({hw['clock_source']})",
            f"- Flags: {flags}",
            f"- OpenVINO CPU default inference precision: "
            f"{hw['openvino_cpu'].get('default_inference_precision', '?')}",
            f"- Load average at start: {hw['load_average']} (other work on the machine skews "
            "every figure); " + self._loads_md(),
            f"- Speed figures fit to publish: {self._trust_md()}",
            f"- Versions: {versions}",
            "",
        ]
        lines += self._systems_md()
        lines += self._latency_md()
        lines += self._throughput_md()
        lines += self._scaling_md()
        lines += self._end_to_end_md()
        lines += self._rerank_md()
        lines += self._limit_md()
        targets = self.targets()
        if targets:
            which = "set for MiniLM int8" if self.end_to_end else "int8 cross-encoder, reranking"
            lines += [f"## Targets ({which})", "", "| target | measured | met |",
                      "|---|---|---|"]
            for t in targets:
                lines.append(f"| {t['target']} | {t['measured']:.2f}{t['unit']} | "
                             f"{'yes' if t['met'] else 'no'} |")
            lines.append("")
        if self.skipped_parts:
            lines += ["## Not measured in this run", ""]
            lines += [f"- {part}: {reason}" for part, reason in self.skipped_parts.items()]
            lines.append("")
        if self.plots:
            lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in self.plots] + [""]
        return "\n".join(lines)

    def _loads_md(self) -> str:
        parts = []
        for phase, rounds in self.round_loads.items():
            values = [v for entry in rounds for v in entry.values() if v is not None]
            if values:
                parts.append(f"{phase} {min(values):.2f}-{max(values):.2f}")
        return ("1-minute load average during the rounds: " + ", ".join(parts)) if parts else (
            "no load average recorded during the rounds")

    def _trust_md(self) -> str:
        trust = self.speed_trust()
        return "yes" if trust["trusted"] else "no: " + "; ".join(trust["reasons"])

    def _systems_md(self) -> list[str]:
        lines = ["## Systems", "", "| system | part | role | status | details |",
                 "|---|---|---|---|---|"]
        for s in self.systems:
            if s.status == "ok":
                details = ", ".join(f"{k}={v}" for k, v in s.info.items())
                details += "; " + ", ".join(f"{k} {v}" for k, v in s.versions.items())
            else:
                details = s.reason
            part = PART_NAMES.get(s.kind, s.kind)
            lines.append(f"| {s.label} | {part} | {s.role} | {s.status} | {details} |")
        return [*lines, ""]

    def _models(self, rows: list[Any]) -> list[str]:
        return list(dict.fromkeys(r.model for r in rows))

    def _grid_md(
        self, rows: list[Any], column: Callable[[Any], int], header: str,
        cell: Callable[[Any], str],
    ) -> list[str]:
        """A systems x columns table of `rows` (one model), `column` naming each row's column."""
        columns = sorted({column(r) for r in rows})
        lines = ["| system | " + " | ".join(header.format(c) for c in columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for system in dict.fromkeys(r.system for r in rows):
            found = {column(r): r for r in rows if r.system == system}
            cells = [cell(found[c]) if c in found else "-" for c in columns]
            lines.append(f"| {self.label(system, 'model')} | " + " | ".join(cells) + " |")
        return lines

    def _latency_md(self) -> list[str]:
        lines = []
        for model in self._models(self.latency):
            rows = [r for r in self.latency if r.model == model]
            lines += [f"## Latency at batch 1: {model}", "",
                      "median ms (p90 ms), speedup vs PyTorch fp32 eager", ""]
            lines += self._grid_md(rows, lambda r: r.seq_len, "{} tokens",
                                   lambda r: f"{r.median_ms:.2f} ({r.p90_ms:.2f}), "
                                             f"{_ratio(r.speedup)}")
            runs = rows[0].runs_per_round
            lines += ["", f"{runs} timed calls per round per point after warm-up.", ""]
        return lines

    def _throughput_md(self) -> list[str]:
        lines = []
        for model in self._models(self.throughput):
            rows = [r for r in self.throughput if r.model == model]
            lines += [f"## Throughput at {rows[0].seq_len} tokens: {model}", "",
                      "documents/s, speedup vs PyTorch fp32 eager", ""]
            lines += self._grid_md(rows, lambda r: r.batch, "batch {}",
                                   lambda r: f"{r.docs_per_s:,.1f}, {_ratio(r.speedup)}")
            lines.append("")
        return lines

    def _scaling_md(self) -> list[str]:
        summary = self.scaling_summary()
        if len({e["model"] for e in summary}) < 2:
            return []
        lines = [
            "## Scaling: the int8 gain by model size", "",
            "Speedup of ipex-embeddings int8 over each system, by model (the random BGE shapes "
            "measure speed only), paired within each round, median over rounds.", "",
            "| model | point | " + " | ".join(f"vs {v}" for v in SCALING_REFERENCES.values())
            + " |",
            "|---|---|" + "---|" * len(SCALING_REFERENCES),
        ]
        for e in summary:
            lines.append(f"| {e['model']} | {e['point']} | "
                         + " | ".join(_ratio(e[k]) for k in SCALING_REFERENCES) + " |")
        return [*lines, ""]

    def _end_to_end_md(self) -> list[str]:
        if not self.end_to_end:
            return []
        c = self.corpus
        lines = [
            "## End to end on SciFact", "",
            f"{c['documents']:,} of {c['corpus_size']:,} documents (title + text), batch size "
            f"{self.settings['batch_size']}; {c['queries']} test queries embedded one at a time. "
            "Agreement: cosine between each system's document vectors and the baseline's; "
            "fixed set: the same on the build gate's fidelity texts (short, multilingual, odd: "
            "`ipex_embeddings_builder.fidelity`), embedded as documents.", "",
            "Load s: from the system's process start (imports included) to its first vector. "
            "Spread: the lowest and highest docs/s over the rounds.", "",
            "| system | docs/s (spread) | vs ST torch | query p50 ms | query p90 ms "
            "| cosine to fp32 mean (min) | fixed set: mean (min) | load s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.end_to_end:
            cosine = _mean_min(r.cosine_to_baseline_mean, r.cosine_to_baseline_min)
            fixed = _mean_min(r.fidelity_cosine_mean, r.fidelity_cosine_min)
            rates = r.docs_per_s_spread
            spread = f" ({rates['min']:,.1f}-{rates['max']:,.1f})" if rates else ""
            lines.append(
                f"| {self.label(r.system, 'e2e')} | {r.docs_per_s:,.1f}{spread} | "
                f"{_ratio(r.speedup)} | {r.query_p50_ms:.2f} | {r.query_p90_ms:.2f} | {cosine} | "
                f"{fixed} | {_fmt(r.load_s, 1)} |"
            )
        return [*lines, ""]

    def _rerank_md(self) -> list[str]:
        if not self.rerank:
            return []
        setup = self.rerank_setup
        lines = [
            "## Reranking on SciFact (cross-encoder)", "",
            f"{setup['queries']} SciFact test claims, each with its BM25 top "
            f"{setup['candidates_per_query']} abstracts ({setup['first_stage']}): "
            f"{setup['pairs']:,} (claim, abstract) pairs. Each system scores one claim's "
            f"candidates per call of its public API (batch size {self.settings['batch_size']}), "
            f"after {setup['warmup_queries']} untimed claims per round. Pairs/s: the timed pairs "
            "over the summed call times; latency: per claim. Agreement with sentence-transformers "
            "torch fp32 on the same pairs: Spearman's rank correlation of each claim's "
            "candidates (mean, lowest) and the largest |score difference| of any pair.", "",
            f"Measured by `{self.command}`.", "",
            "| system | pairs/s (spread) | vs ST torch fp32 | claim p50 ms | claim p90 ms "
            "| Spearman to ST fp32 mean (min) | max abs diff | load s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rerank:
            rates = r.pairs_per_s_spread
            spread = f" ({rates['min']:,.1f}-{rates['max']:,.1f})" if rates else ""
            agreement = ("-" if r.spearman_mean is None else
                         f"{r.spearman_mean:.4f} ({r.spearman_min:.4f})")
            lines.append(
                f"| {self.label(r.system, 'rerank')} | {r.pairs_per_s:,.1f}{spread} | "
                f"{_ratio(r.speedup)} | {r.query_p50_ms:.2f} | {r.query_p90_ms:.2f} | "
                f"{agreement} | {_fmt(r.max_abs_diff, 5)} | {_fmt(r.load_s, 1)} |"
            )
        return [*lines, ""]

    def _limit_md(self) -> list[str]:
        if not self.limit:
            return []
        lines = [
            "## Distance to the limit (int8)", "",
            f"Peak: {self.peak.get('formula', '-')}; {self.peak.get('unit', '')}. "
            "Achieved: 2 x the "
            "int8 MatMul MACs per document (counted from the IR) x documents/s at the best batch "
            "size; the time also covers the layers that are not int8 (attention, norms, GELU).", "",
            "| model | seq len | batch | docs/s | int8 GMACs/doc | achieved int8 TOPS "
            "| % of peak |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in self.limit:
            lines.append(
                f"| {e['model']} | {e['seq_len']} | {e['batch']} | {e['docs_per_s']:,.1f} | "
                f"{e['int8_macs_per_doc'] / 1e9:.2f} | {e['achieved_int8_ops_per_s'] / 1e12:.3f} | "
                f"{_fmt(e['percent_of_peak'], 1, '%')} |"
            )
        return [*lines, ""]

    # --- files ---------------------------------------------------------------------------

    def write(self, output_dir: Path) -> list[Path]:
        """Write bench.json and bench.md into `output_dir` (the plots are already there)."""
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = [output_dir / "bench.json", output_dir / "bench.md"]
        paths[0].write_text(self.to_json(), encoding="utf-8")
        paths[1].write_text(self.to_markdown(), encoding="utf-8")
        return paths
