"""The int8 peers end to end, each in its own environment: which, where, and how each is built.

Every peer runs in a virtual environment of its own (their pins conflict with each other and with
ours), found by name under `--peers-dir` or given with `--peer-env NAME=PYTHON`. A missing
environment is recorded as skipped, with the command that makes it. Each peer's model is built
once into the work folder, inside the peer's own environment (see peer_builds.py), from the same
source model and the same 300 SciFact calibration texts as ours; the bench then loads only files
it made.

Settings are those a user of each library would pick for a mean-pooled, 256-token model; where a
library's default differs, the spec's `corrections` says what was changed and why (see
benchmarks/README.md and the report's Systems table).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .systems import END_TO_END, SystemSpec

__all__ = ["PEER_ENVS", "PeerEnv", "build_peer", "peer_specs", "resolve_peer_envs"]

logger = logging.getLogger(__name__)
SETUP_DIR = "benchmarks/peers"


@dataclass(frozen=True)
class PeerEnv:
    """A peer's environment: its name under --peers-dir and the script that makes it."""

    name: str
    what: str

    @property
    def setup(self) -> str:
        return f"bash {SETUP_DIR}/setup_{self.name}.sh PEERS_DIR/{self.name}"


PEER_ENVS = {
    env.name: env for env in (
        PeerEnv("ovgenai", "openvino-genai 2026.4 with openvino-tokenizers"),
        PeerEnv("fastembed", "fastembed 0.9 (ONNX Runtime), torch for the ONNX export"),
        PeerEnv("optimum", "optimum-intel 2.2 with LlamaIndex OpenVINOEmbedding"),
        PeerEnv("ipex", "torch 2.8 with intel-extension-for-pytorch 2.8"),
    )
}


def resolve_peer_envs(
    peers_dir: Path | None, given: dict[str, str] | None = None
) -> dict[str, str | None]:
    """Interpreter of each peer environment: `given` first, then PEERS_DIR/NAME/bin/python."""
    found: dict[str, str | None] = {}
    for name in PEER_ENVS:
        python = (given or {}).get(name)
        if python is None and peers_dir is not None:
            candidate = Path(peers_dir).expanduser() / name / "bin" / "python"
            python = str(candidate) if candidate.exists() else None
        found[name] = python
    unknown = sorted(set(given or {}) - set(PEER_ENVS))
    if unknown:
        raise ValueError(f"unknown peer environment(s) {unknown}; known: {', '.join(PEER_ENVS)}.")
    return found


def missing_reason(name: str, peers_dir: Path | None) -> str:
    env = PEER_ENVS[name]
    where = f"no {peers_dir}/{name}/bin/python" if peers_dir else "no --peers-dir"
    setup = env.setup.replace("PEERS_DIR", str(peers_dir) if peers_dir else "PEERS_DIR")
    return (f"its environment ({env.what}) is not set up ({where}): run `{setup}`, then pass "
            f"--peers-dir (or --peer-env {name}=PYTHON)")


def build_peer(python: str, what: str, options: dict[str, Any], log_path: Path) -> None:
    """Run one build step of peer_builds.py in the peer's interpreter; raise with the log's tail."""
    from .worker import subprocess_env

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(
            [python, "-m", "ipex_embeddings_builder.bench.peer_builds", what, json.dumps(options)],
            stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(), check=False,
        )
    if done.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"building {what} failed (code {done.returncode}): "
                           + " | ".join(tail) + f" (log: {log_path})")


def peer_dir(work: Path, name: str) -> Path:
    """Where a peer's model is built, under the work folder."""
    return work / "peers" / name


CORRECTIONS = {
    "genai": "pooling MEAN (Config defaults to CLS), normalize, max_length 256; documents fed in "
             "batch-size chunks (the pipeline does not batch); Config.batch_size left unset",
    "fastembed": "max length 256 (fastembed truncates at tokenizer_config.json's "
                 "model_max_length, 512 here): the built folder's tokenizer_config says 256; "
                 "mean pooling and normalization registered with add_custom_model; int8 made "
                 "with quantize_dynamic(per_channel=True) (per tensor: cosine 0.93-0.95)",
    "llamaindex": "pooling mean (OpenVINOEmbedding defaults to cls), max_length 256 (default "
                  "512), normalize; calibrated on our 300 SciFact texts (optimum-intel "
                  "defaults to GLUE sst2)",
    "ipex": "mean pooling, max_length 256, lengths padded to a multiple of 16 and "
            "torch.jit.set_fusion_strategy DYNAMIC (else a seen shape can fall back to slow "
            "paths); calibrated on our 300 SciFact texts",
}


def peer_specs(model_dir: Path, source: Path, work: Path, batch_size: int) -> list[SystemSpec]:
    """The int8 peers' end-to-end systems, in the order the issue ranks them."""
    common = {"batch_size": batch_size, "max_length": 256}

    def spec(key: str, label: str, factory: str, path: Path, env: str, correction: str,
             role: str = "peer", **options: Any) -> SystemSpec:
        return SystemSpec(key, label, END_TO_END, factory, str(path),
                          {**common, **options, "corrections": CORRECTIONS[correction]},
                          role=role, env=env)

    genai, fastembed = peer_dir(work, "genai-ours"), peer_dir(work, "fastembed")
    return [
        spec("genai-ours", "openvino-genai TextEmbeddingPipeline, our int8 IR", "genai",
             genai, "ovgenai", "genai", role="hybrid"),
        spec("genai-export", "openvino-genai TextEmbeddingPipeline, optimum-cli fp32 export",
             "genai", peer_dir(work, "genai-export"), "ovgenai", "genai"),
        spec("fastembed-fp32", "fastembed ONNX fp32", "fastembed", fastembed,
             "fastembed", "fastembed", model_file="model.onnx"),
        spec("fastembed-int8", "fastembed ONNX dynamic int8", "fastembed", fastembed,
             "fastembed", "fastembed", model_file="model_int8.onnx"),
        spec("llamaindex-ov-int8", "LlamaIndex OpenVINOEmbedding, optimum-intel static int8",
             "llamaindex", peer_dir(work, "optimum-int8"), "optimum", "llamaindex"),
        spec("ipex-int8", "IPEX 2.8 static int8 (TorchScript)", "ipex",
             peer_dir(work, "ipex-int8"), "ipex", "ipex"),
    ]


def build_steps(
    model_dir: Path, source: Path, work: Path, calibration: Path
) -> list[tuple[str, str, dict[str, Any], tuple[str, ...]]]:
    """(environment, step, options, systems it makes) for every peer model, in dependency order.

    The optimum-cli-style fp32 export is made in the optimum environment and given its tokenizer
    IRs in the openvino-genai one, so `genai-export` needs both.
    """
    src = str(source)
    export = str(peer_dir(work, "optimum-fp32"))
    return [
        ("ovgenai", "genai", {"ir_dir": str(model_dir / "openvino"), "source": src,
                              "config_dir": str(model_dir),
                              "out": str(peer_dir(work, "genai-ours"))}, ("genai-ours",)),
        ("fastembed", "fastembed", {"source": src, "out": str(peer_dir(work, "fastembed")),
                                    "int8": "quantize_dynamic per_channel"},
         ("fastembed-fp32", "fastembed-int8")),
        ("optimum", "optimum", {"source": src, "calibration": str(calibration),
                                "out": str(peer_dir(work, "optimum-int8")),
                                "export_out": export}, ("llamaindex-ov-int8",)),
        ("ovgenai", "genai", {"ir_dir": export, "source": src, "config_dir": export,
                              "out": str(peer_dir(work, "genai-export"))}, ("genai-export",)),
        # "digest": builds from before the TorchScript's sha256 was recorded are made again
        ("ipex", "ipex", {"source": src, "calibration": str(calibration), "digest": "sha256",
                          "out": str(peer_dir(work, "ipex-int8"))}, ("ipex-int8",)),
    ]
