"""Ray Data, on a real local cluster started here: `ipex_embeddings.ray` and `--engine ray`.

The cluster is `ray start --head --block` in a child process (4 logical CPUs, so that Ray Data's
read tasks are not starved by the 2 actors; a small object store; its own ports and temp folder),
stopped at the end by terminating that process only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

# Ray turns token authentication on by itself when ~/.ray/auth_token exists (a ray.init()
# elsewhere may have written it); this throwaway loopback cluster runs without it.
os.environ["RAY_AUTH_MODE"] = "disabled"
ray = pytest.importorskip("ray")

import ipex_embeddings  # noqa: E402
import ipex_embeddings_builder  # noqa: E402
from ipex_embeddings import Encoder  # noqa: E402
from ipex_embeddings.ray import CRASH_DIR_ENV, embed_dataset, require_ray  # noqa: E402
from ipex_embeddings_builder.cli import main  # noqa: E402

SCIFACT = Path(__file__).parents[1] / "builder/ipex_embeddings_builder/data/scifact/corpus.jsonl"
DOCS = 120


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, crash_dir: Path):
    """The address of a fresh 2-CPU Ray cluster; this process is connected to it."""
    ports = free_ports(8)
    paths = [str(Path(m.__file__).parents[1]) for m in (ipex_embeddings, ipex_embeddings_builder)]
    env = {**os.environ, CRASH_DIR_ENV: str(crash_dir), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    ray_cli = Path(sys.executable).with_name("ray")
    command = [
        str(ray_cli), "start", "--head", "--block", "--num-cpus=4",
        "--object-store-memory=200000000", "--include-dashboard=false",
        f"--temp-dir={tmp_path_factory.mktemp('r')}", f"--port={ports[0]}",
        f"--node-manager-port={ports[1]}", f"--object-manager-port={ports[2]}",
        f"--dashboard-agent-listen-port={ports[4]}",
        f"--metrics-export-port={ports[5]}", f"--runtime-env-agent-port={ports[6]}",
        f"--dashboard-agent-grpc-port={ports[7]}",
    ]
    # its own process group: the teardown stops the processes it started, and nothing else
    head = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    address = f"127.0.0.1:{ports[0]}"
    try:
        _connect(address, head)
        yield address
    finally:
        ray.shutdown()
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)


def _connect(address: str, head: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed: {head.stderr.read().decode()[-2000:]}")
        try:
            ray.init(address=address, log_to_driver=False)
            return
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    with SCIFACT.open() as handle:
        records = [json.loads(line) for _, line in zip(range(DOCS), handle)]
    return [{"_id": r["_id"], "text": f"{r['title']} {r['text'][:300]}"} for r in records]


@pytest.fixture(scope="module")
def expected(demo_int8_dir: Path, corpus: list[dict]) -> dict[str, np.ndarray]:
    vectors = Encoder.load(demo_int8_dir).encode([r["text"] for r in corpus])
    return {r["_id"]: v for r, v in zip(corpus, vectors)}


def arm_crash(crash_dir: Path, after_batches: int) -> None:
    (crash_dir / "fired").unlink(missing_ok=True)
    (crash_dir / "armed").write_text(str(after_batches))


def assert_same_vectors(table: pa.Table, expected: dict[str, np.ndarray]) -> None:
    ids = table.column("id" if "id" in table.column_names else "_id").to_pylist()
    assert sorted(ids) == sorted(expected), "every id exactly once: nothing lost or duplicated"
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy()
    vectors = vectors.reshape(len(ids), -1)
    reference = np.stack([expected[i] for i in ids])
    cosines = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1)
    assert cosines.min() >= 0.99999


def test_embed_dataset_parquet_to_parquet_survives_a_killed_actor(
    cluster, crash_dir, tmp_path, demo_int8_dir, corpus, expected
):
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(corpus), source, row_group_size=50)
    arm_crash(crash_dir, after_batches=2)
    dataset = embed_dataset(ray.data.read_parquet(str(source)), demo_int8_dir, actors=2,
                            threads_per_actor=1, rows_per_batch=25, id_column="_id")
    dataset.write_parquet(str(tmp_path / "out"))
    assert (crash_dir / "fired").exists(), "an actor was killed mid-run"
    table = pq.read_table(tmp_path / "out")
    assert pa.types.is_fixed_size_list(table.schema.field("embedding").type)
    assert_same_vectors(table, expected)


def test_cli_engine_ray_equals_local_and_survives_a_killed_actor(
    cluster, crash_dir, tmp_path, demo_int8_dir, corpus, expected
):
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in corpus))
    arm_crash(crash_dir, after_batches=2)
    args = ["embed", str(demo_int8_dir), "-i", str(source), "-o", str(tmp_path / "out"),
            "--id-field", "_id", "--shard-rows", "40", "--engine", "ray", "--address", cluster,
            "--actors", "2", "--threads", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (crash_dir / "fired").exists(), "an actor was killed mid-run"
    shards = sorted((tmp_path / "out").glob("*.parquet"))
    assert [s.name for s in shards] == [f"00000-corpus-{i:05d}.parquet" for i in range(3)]
    assert_same_vectors(pq.read_table(shards), expected)
    again = CliRunner().invoke(main, args)
    assert "0 rows embedded into 0 new shard(s)" in again.output and "3 already" in again.output


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "ipex-embeddings\[ray\]"'):
        require_ray()


def test_core_never_imports_ray_or_spark():
    code = ("import sys, ipex_embeddings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyspark')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fewer_shards_than_actors_is_said_with_the_fix(caplog):
    from ipex_embeddings_builder.embed_ray import warn_if_actors_idle

    with caplog.at_level("WARNING", logger="ipex_embeddings_builder.embed_ray"):
        assert warn_if_actors_idle(shards=1, actors=2, shard_rows=10_000)
    assert "Only 1 shard(s) of 10000 rows are left for 2 actors: 1 actor(s)" in caplog.text
    assert "--shard-rows (at most 5000 rows" in caplog.text
    caplog.clear()
    assert not warn_if_actors_idle(shards=3, actors=2, shard_rows=40)
    assert caplog.text == ""
