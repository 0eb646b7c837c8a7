"""The machine the figures were measured on, and its int8 peak.

The peak is cores x clock x int8 multiply-accumulates per cycle per core x 2 operations per MAC.
With AMX (the `amx_int8` flag) a core does 1,024 int8 MACs per cycle. Without it, the int8
units are AVX-512 VNNI: one 512-bit VPDPBUSD does 64 int8 MACs (16 lanes x 4 byte products), and
a core issues `vnni_ports` of them per cycle (an assumption the report states; 2 by default).
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Hardware", "Int8Peak", "collect_hardware", "int8_peak"]

CPUINFO = Path("/proc/cpuinfo")
MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
# The CPU features that decide which kernels run: AMX, VNNI, native bf16.
FLAGS_OF_INTEREST = (
    "amx_tile", "amx_int8", "amx_bf16", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "avx512_fp16",
)
AMX_INT8_MACS_PER_CYCLE = 1024
VNNI_512_MACS_PER_INSTRUCTION = 64
VNNI_256_MACS_PER_INSTRUCTION = 32


@dataclass
class Hardware:
    """CPU model, usable cores and threads, clock, the features that matter, the software."""

    cpu_model: str
    physical_cores: int
    logical_cpus: int
    threads: int
    clock_ghz: float | None
    clock_source: str
    flags: dict[str, bool]
    memory_gib: float | None
    load_average: list[float]
    python: str
    platform: str
    openvino_cpu: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Int8Peak:
    """The CPU's int8 peak in operations per second, and how it was derived."""

    ops_per_s: float | None
    macs_per_cycle_per_core: int | None
    unit: str
    formula: str


def _cpuinfo_blocks() -> list[dict[str, str]]:
    if not CPUINFO.is_file():
        return []
    blocks = []
    for chunk in CPUINFO.read_text(errors="replace").split("\n\n"):
        entry = {}
        for line in chunk.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        if "processor" in entry:
            blocks.append(entry)
    return blocks


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _openvino_cpu() -> dict[str, Any]:
    try:
        from ipex_embeddings.encoder import openvino_core

        core = openvino_core()
        return {
            "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
            "capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            "default_inference_precision": core.get_property(
                "CPU", "INFERENCE_PRECISION_HINT"
            ).get_type_name(),
        }
    except Exception as err:  # the report says why it is missing rather than failing the bench
        return {"error": f"{type(err).__name__}: {err}"}


def collect_hardware(threads: int, clock_ghz: float | None = None) -> Hardware:
    """Describe this machine; `clock_ghz` overrides the clock read from the OS."""
    from .systems import library_versions

    usable = _usable_cpus()
    blocks = [b for b in _cpuinfo_blocks() if int(b["processor"]) in usable]
    cores = {(b.get("physical id", "0"), b.get("core id", b["processor"])) for b in blocks}
    flags = set(blocks[0].get("flags", "").split()) if blocks else set()
    if clock_ghz is not None:
        clock, source = clock_ghz, "given with --clock-ghz"
    elif MAX_FREQ.is_file():
        clock, source = int(MAX_FREQ.read_text()) / 1e6, f"{MAX_FREQ} (maximum boost clock)"
    elif blocks and blocks[0].get("cpu MHz"):
        clock = float(blocks[0]["cpu MHz"]) / 1e3
        source = (
            "/proc/cpuinfo 'cpu MHz' (no cpufreq here, e.g. a VM: this is the nominal clock; a "
            "higher boost clock would lower the percentage of peak)"
        )
    else:
        clock, source = None, "unknown: pass --clock-ghz"
    return Hardware(
        cpu_model=blocks[0].get("model name", "") if blocks else platform.processor(),
        physical_cores=len(cores) or len(usable),
        logical_cpus=len(usable),
        threads=threads,
        clock_ghz=round(clock, 3) if clock else None,
        clock_source=source,
        flags={name: name in flags for name in FLAGS_OF_INTEREST},
        memory_gib=_memory_gib(),
        load_average=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
        python=sys.version.split()[0],
        platform=platform.platform(),
        openvino_cpu=_openvino_cpu(),
        versions=library_versions(),
    )


def int8_peak(hardware: Hardware, vnni_ports: int = 2) -> Int8Peak:
    """The int8 peak: AMX where the CPU has it, else AVX-512 VNNI or AVX-VNNI x `vnni_ports`."""
    flags = hardware.flags
    if flags.get("amx_int8"):
        per_core, unit = AMX_INT8_MACS_PER_CYCLE, "AMX: 1,024 int8 MACs per cycle per core"
    elif flags.get("avx512_vnni"):
        per_core = VNNI_512_MACS_PER_INSTRUCTION * vnni_ports
        unit = (
            f"AVX-512 VNNI (no AMX on this CPU): 64 int8 MACs per 512-bit VPDPBUSD x {vnni_ports} "
            "issued per cycle per core (assumed; set with --vnni-ports)"
        )
    elif flags.get("avx_vnni"):
        per_core = VNNI_256_MACS_PER_INSTRUCTION * vnni_ports
        unit = (
            f"AVX-VNNI (256-bit): 32 int8 MACs per VPDPBUSD x {vnni_ports} per cycle per core "
            "(assumed; set with --vnni-ports)"
        )
    else:
        return Int8Peak(None, None, "no AMX or VNNI int8 units found", "not computed")
    if hardware.clock_ghz is None:
        return Int8Peak(None, per_core, unit, "clock unknown: pass --clock-ghz")
    cores = min(hardware.threads, hardware.physical_cores)  # the cores the models may use
    ops = cores * hardware.clock_ghz * 1e9 * per_core * 2
    formula = (
        f"{cores} cores x {hardware.clock_ghz} GHz x {per_core} MACs/cycle/core "
        f"x 2 = {ops / 1e12:.2f} int8 TOPS"
    )
    return Int8Peak(ops, per_core, unit, formula)
