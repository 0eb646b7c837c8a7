"""Does int8 pay on this CPU? The same model as fp32, static int8 and weight-only int8 IRs,
timed side by side in OpenVINO, with the time per layer type and kernel (performance counters).

    ipex-embed quantize MODEL --output FP32_DIR --precision fp32
    python benchmarks/int8_kernels.py --fp32 FP32_DIR --int8 INT8_DIR --out DIR

Variants (all compiled with f32 inference precision, INFERENCE_NUM_THREADS=--threads, 1 stream):
- `fp32`: the fp32 folder's IR;
- `int8 static`: the int8 folder's IR (NNCF static int8: int8 weights and activations);
- `int8 weights only`: `nncf.compress_weights(fp32 IR, mode=INT8_SYM)` (activations stay float);
- `int8 weights only + dynamic quantization`: the same IR compiled with OpenVINO's
  `DYNAMIC_QUANTIZATION_GROUP_SIZE=32` (activations quantized per call, in groups of 32).

Throughput: random token ids at batch x seq (default 32 x 256), docs/s; latency: batch 1 at
`--query-tokens` (default 32), ms. Medians over `--rounds` interleaved rounds. Without AVX-512
VNNI, AVX-VNNI or AMX, OpenVINO's int8 FullyConnected runs oneDNN's `jit_gemm_I8` (u8s8 on
vpmaddubsw), which this script shows can be slower than fp32 (openvinotoolkit/openvino#4005).
Speed only: the weight-only variants are not validated here (`ipex-embed validate` does that).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ipex_embeddings.cpu import cpu_flags

logger = logging.getLogger("int8_kernels")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def model_xml(folder: Path) -> Path:
    config = json.loads((folder / "ipex_embeddings.json").read_text())
    return folder / config.get("model_file", "openvino/openvino_model.xml")


def weights_only(fp32_xml: Path, work: Path) -> Path:
    import nncf
    import openvino as ov

    from ipex_embeddings.encoder import openvino_core

    compressed = nncf.compress_weights(openvino_core().read_model(fp32_xml),
                                       mode=nncf.CompressWeightsMode.INT8_SYM)
    path = work / "weights-int8" / "openvino_model.xml"
    ov.save_model(compressed, path)
    return path


def feeds(request, batch: int, seq: int) -> dict[str, np.ndarray]:
    """Inputs by name: random ids, a full mask, zero token types, zeros for anything else."""
    rng = np.random.default_rng(0)
    out = {}
    for port in request.model_inputs:
        name = port.get_any_name()
        if "input_ids" in name:
            out[name] = rng.integers(1000, 20000, (batch, seq), dtype=np.int64)
        elif "attention_mask" in name:
            out[name] = np.ones((batch, seq), np.int64)
        elif port.get_partial_shape().rank.get_length() == 2:
            out[name] = np.zeros((batch, seq), np.int64)
        else:
            out[name] = np.zeros((batch,), np.int64)
    return out


def compile_variants(fp32: Path, int8: Path, work: Path, threads: int) -> dict:
    from ipex_embeddings.encoder import openvino_core

    core = openvino_core()
    weights = weights_only(model_xml(fp32), work)
    base = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": "YES"}
    variants = {
        "fp32": (model_xml(fp32), {}),
        "int8 static": (model_xml(int8), {}),
        "int8 weights only": (weights, {}),
        "int8 weights only + dynamic quantization": (
            weights, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 32}),
    }
    return {name: core.compile_model(core.read_model(xml), "CPU", {**base, **extra})
            .create_infer_request() for name, (xml, extra) in variants.items()}


def time_round(request, shape: tuple[int, int], query_tokens: int, runs: int) -> tuple:
    batch, seq = shape
    big, small = feeds(request, batch, seq), feeds(request, 1, query_tokens)
    request.infer(big)
    request.infer(small)
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        request.infer(big)
        rates.append(batch / (time.perf_counter() - started))
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        request.infer(small)
        latencies.append(1e3 * (time.perf_counter() - started))
    return statistics.median(rates), statistics.median(latencies)


def breakdown(request, batch: int, seq: int, top: int = 8) -> list[dict]:
    """Share of one batch's time per (layer type, kernel), from OpenVINO's counters, on a
    fresh request that has only run that shape (the counters of a request that switched
    shapes under-report), second call."""
    request = request.get_compiled_model().create_infer_request()
    inputs = feeds(request, batch, seq)
    request.infer(inputs)
    request.infer(inputs)
    times: dict[tuple[str, str], float] = defaultdict(float)
    for info in request.profiling_info:
        times[(info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1e3
    total = sum(times.values()) or 1.0
    rows = sorted(times.items(), key=lambda item: -item[1])[:top]
    return [{"layer": layer, "kernel": kernel, "ms": round(ms, 2),
             "share": round(100 * ms / total, 1)} for (layer, kernel), ms in rows]


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as work:
        requests = compile_variants(args.fp32, args.int8, Path(work), args.threads)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in requests}
        for round_index in range(args.rounds):
            for name, request in requests.items():
                samples[name].append(time_round(request, (args.batch, args.seq),
                                                args.query_tokens, args.runs))
            logger.info("round %d/%d done", round_index + 1, args.rounds)
        rows = [{"variant": name,
                 "docs_per_s": round(statistics.median(s[0] for s in values), 1),
                 "query_ms": round(statistics.median(s[1] for s in values), 2)}
                for name, values in samples.items()]
        profiles = {name: breakdown(requests[name], args.batch, args.seq)
                    for name in ("fp32", "int8 static")}
    flags = cpu_flags() or frozenset()
    return {"cpu_flags": {flag: flag in flags for flag in FLAGS}, "threads": args.threads,
            "batch": args.batch, "seq": args.seq, "query_tokens": args.query_tokens,
            "rounds": args.rounds, "rows": rows, "profiles": profiles}


def markdown(result: dict, command: str) -> str:
    fp32 = next(r for r in result["rows"] if r["variant"] == "fp32")
    lines = [f"# int8 kernels on this CPU\n\n`{command}`\n",
             f"CPU flags: {result['cpu_flags']}; {result['threads']} threads; medians of "
             f"{result['rounds']} interleaved rounds.\n",
             f"| variant | docs/s at {result['batch']}x{result['seq']} | vs fp32 | query ms at "
             f"1x{result['query_tokens']} | vs fp32 |", "|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['variant']} | {row['docs_per_s']} | "
                     f"{row['docs_per_s'] / fp32['docs_per_s']:.2f}x | {row['query_ms']} | "
                     f"{fp32['query_ms'] / row['query_ms']:.2f}x |")
    for name, rows in result["profiles"].items():
        lines += [f"\n## Where {name} spends one {result['batch']}x{result['seq']} batch\n",
                  "Share of the summed performance counters (their absolute ms are in the JSON; "
                  "they do not add up to the wall time, so compare shares).\n",
                  "| layer | kernel | share |", "|---|---|---:|"]
        lines += [f"| {r['layer']} | {r['kernel']} | {r['share']} % |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True, help="our fp32 folder")
    parser.add_argument("--int8", type=Path, required=True, help="our int8 folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30, help="timed queries per round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args)
    command = "python benchmarks/int8_kernels.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_kernels.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "int8_kernels.md").write_text(markdown(result, command))
    logger.info("%s", markdown(result, command))


if __name__ == "__main__":
    main()
