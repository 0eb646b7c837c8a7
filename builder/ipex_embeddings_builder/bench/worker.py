"""One process per system under test, driven by the bench over a line-based JSON protocol.

Each system runs in its own process so that thread pools (PyTorch's OpenMP, OpenVINO's TBB,
ONNX Runtime's) never share a process, and so that the sentence-transformers peers can run in
another interpreter (one with optimum installed). The bench sends one task at a time, so only
one system computes at any moment; the others wait on their stdin.

Protocol: the bench writes one JSON object per line to the worker's stdin, the worker answers one
JSON object per line on its original stdout ({"ok": true, ...} or {"ok": false, "error": ...}).
Everything the libraries print goes to stderr, which the bench keeps in a log file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["SystemProcess", "WorkerError", "main", "subprocess_env"]
LOAD_PROBE = "How long does it take to load the model?"
"""The query embedded (or scored against itself, rerank) once after loading: load time runs
until its vector (its score) is back."""


class WorkerError(RuntimeError):
    """A system could not be loaded or failed a task; the message says why."""


def _package_roots() -> list[str]:
    import ipex_embeddings
    import ipex_embeddings_builder

    packages = (ipex_embeddings, ipex_embeddings_builder)
    return sorted({str(Path(m.__file__).resolve().parents[1]) for m in packages})


def subprocess_env() -> dict[str, str]:
    """This environment, with our two packages on PYTHONPATH (for another interpreter)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*_package_roots(), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


class SystemProcess:
    """The bench's handle on one worker: start it, wait until loaded, send tasks, close it."""

    def __init__(
        self, spec: Any, python: str, threads: int, setup: dict[str, Any], log_path: Path
    ) -> None:
        self.spec = spec
        self.python = python
        self.log_path = log_path
        self.info: dict[str, Any] = {}
        self.versions: dict[str, str] = {}
        self.load_s: float | None = None
        env = subprocess_env()
        self._log = log_path.open("w", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                [python, "-m", "ipex_embeddings_builder.bench.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
                text=True, encoding="utf-8",
            )
        except OSError as err:
            self._log.close()
            raise WorkerError(f"could not start {python}: {err}") from err
        self._send({"spec": spec.to_dict(), "threads": threads, **setup})

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def _receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            raise WorkerError(
                f"the worker exited (code {self._process.returncode}): {self._log_tail()}"
            )
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "unknown error"))
        return reply

    def _log_tail(self, lines: int = 3) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def wait_ready(self) -> None:
        """Block until the system is loaded; raise WorkerError with the reason if it failed."""
        reply = self._receive()
        self.info, self.versions = reply["info"], reply["versions"]
        self.load_s = reply.get("load_s")

    def call(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run one task and return the worker's answer."""
        self._send(task)
        return self._receive()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._send({"task": "exit"})
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._log.close()


# --- the worker side ----------------------------------------------------------------------------


def _latency(system: Any, task: dict[str, Any], tokens: dict[str, int]) -> dict[str, Any]:
    from .systems import token_inputs

    inputs = token_inputs(task["batch"], task["seq_len"], **tokens)
    for _ in range(task["warmup"]):
        system.infer(inputs)
    times = []
    for _ in range(task["runs"]):
        started = time.perf_counter()
        system.infer(inputs)
        times.append(time.perf_counter() - started)
    return {"times": times}


def _corpus(system: Any, task: dict[str, Any], texts: dict[str, list[str]]) -> dict[str, Any]:
    documents = texts["documents"]
    started = time.perf_counter()
    vectors = system.embed_documents(documents)
    seconds = time.perf_counter() - started
    if task.get("save"):
        np.save(task["save"], np.asarray(vectors, dtype=np.float32))
        if texts.get("fidelity"):  # untimed: agreement on short and odd texts too
            fixed = system.embed_documents(texts["fidelity"])
            np.save(task["save"].replace(".npy", ".fidelity.npy"),
                    np.asarray(fixed, dtype=np.float32))
    return {"seconds": seconds, "documents": len(documents)}


def _queries(system: Any, task: dict[str, Any], texts: dict[str, list[str]]) -> dict[str, Any]:
    for query in texts["queries"][: task.get("warmup", 0)]:
        system.embed_query(query)
    times = []
    for query in texts["queries"]:
        started = time.perf_counter()
        system.embed_query(query)
        times.append(time.perf_counter() - started)
    return {"times": times}


def _rerank(system: Any, task: dict[str, Any], texts: dict[str, Any]) -> dict[str, Any]:
    """Each query's candidates scored in one call, timed per query; scores kept when asked."""
    documents = texts["documents"]
    queries = [(item["query"], [documents[i] for i in item["candidates"]])
               for item in texts["rerank"]]
    for query, candidates in queries[: task.get("warmup", 0)]:
        system.score(query, candidates)
    times, scores = [], []
    for query, candidates in queries:
        started = time.perf_counter()
        found = system.score(query, candidates)
        times.append(time.perf_counter() - started)
        scores.append(np.asarray(found, dtype=np.float32))
    if task.get("save"):
        np.save(task["save"], np.concatenate(scores) if scores else np.empty(0, np.float32))
    return {"times": times, "pairs": sum(len(candidates) for _, candidates in queries)}


TASKS = {"corpus": _corpus, "queries": _queries, "rerank": _rerank}
"""The tasks on texts (the texts file's content is their third argument)."""


def _answer(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _error(err: BaseException) -> str:
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}{where}"


def main() -> None:
    """Load the system named on the first stdin line, then answer tasks until told to exit.

    The load time runs from here (library imports included) to the first vector of an end-to-end
    system (one short query), the first score of a rerank system, or a loaded model-level system.
    """
    started = time.perf_counter()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the libraries print (C or Python) goes to the log, not the protocol
    sys.stdout = sys.stderr
    from .systems import PACKAGES_OF, SystemSpec, library_versions, load_system

    setup = json.loads(sys.stdin.readline())
    try:
        spec = SystemSpec(**setup["spec"])
        system = load_system(spec, setup["threads"])
        if spec.kind == "e2e":
            system.embed_query(LOAD_PROBE)
        elif spec.kind == "rerank":
            system.score(LOAD_PROBE, [LOAD_PROBE])
        load_s = time.perf_counter() - started
        texts: dict[str, Any] = {}
        if setup.get("texts_file"):
            texts = json.loads(Path(setup["texts_file"]).read_text(encoding="utf-8"))
        versions = library_versions(PACKAGES_OF[spec.factory])
        _answer(protocol, {"ok": True, "info": system.info(), "versions": versions,
                           "load_s": load_s})
    except BaseException as err:  # reported to the bench, which records the system as skipped
        traceback.print_exc()
        _answer(protocol, {"ok": False, "error": _error(err)})
        return
    for line in sys.stdin:
        task = json.loads(line)
        if task["task"] == "exit":
            break
        try:
            if task["task"] == "latency":
                result = _latency(system, task, setup["tokens"])
            elif task["task"] in TASKS:
                result = TASKS[task["task"]](system, task, texts)
            else:
                raise ValueError(f"unknown task {task['task']!r}")
            _answer(protocol, {"ok": True, **result})
        except BaseException as err:
            traceback.print_exc()
            _answer(protocol, {"ok": False, "error": _error(err)})


if __name__ == "__main__":
    main()
