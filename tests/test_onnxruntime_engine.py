"""The ONNX Runtime engine: what `ipex-embed quantize` writes for AVX2-only CPUs, and how the
runtime picks and runs it. Every family and both model kinds, against sentence-transformers and
the OpenVINO engine on the same folder."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from test_families import FAMILIES, HIDDEN, TEXTS, build, cosines, make_family, reference

from ipex_embeddings import CrossEncoder, Encoder, ModelConfig, ModelFolderError
from ipex_embeddings.activation import add_scores, scores_array
from ipex_embeddings.cpu import Int8SpeedWarning
from ipex_embeddings.engine import openvino_core
from ipex_embeddings.engines import pick_engine

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
VNNI = AVX2 | {"avx512f", "avx512_vnni"}


@pytest.fixture(scope="module")
def int8_dirs(tmp_path_factory: pytest.TempPathFactory):
    """family -> (source folder, int8 model folder), made once per module."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in made:
            root = tmp_path_factory.mktemp(family)
            source = make_family(root / "source", family)
            made[family] = (source, build(source, root / "int8", precision="int8"))
        return made[family]

    return get


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_gets_an_onnx_model_that_tracks_sentence_transformers(
    int8_dirs, family: str
) -> None:
    source, folder = int8_dirs(family)
    config = ModelConfig.load(folder)
    assert config.onnx_file == "onnx/model_int8.onnx" and (folder / config.onnx_file).is_file()
    assert config.quantization["onnx"]["per_token"] > 0
    onnx = Encoder.load(folder, engine="onnxruntime", compile_cache=False)
    openvino = Encoder.load(folder, engine="openvino", compile_cache=False)
    assert onnx.info()["engine"] == "onnxruntime" and openvino.info()["engine"] == "openvino"
    for kind in ("query", "document"):
        ours = onnx.encode(TEXTS, kind, batch_size=7, normalize=False)
        theirs = reference(source, kind, TEXTS)
        found = cosines(ours, theirs)
        openvino_found = cosines(openvino.encode(TEXTS, kind, normalize=False), theirs)
        print(f"{family} {kind}: onnxruntime mean {found.mean():.4f} min {found.min():.4f}; "
              f"openvino mean {openvino_found.mean():.4f} min {openvino_found.min():.4f}")
        # Random tiny weights (initializer_range 0.2): int8 is no accuracy claim here, only that
        # the engine tracks the source as OpenVINO's int8 does (measured: 0.981-0.999 mean, both
        # engines); a lost prompt, pooling or position offset lands far below.
        assert ours.shape == (len(TEXTS), HIDDEN) and np.isfinite(ours).all()
        assert found.mean() >= min(0.97, openvino_found.mean() - 0.01), (family, kind)
        # one text alone, or among others: the same bits
        alone = np.concatenate([onnx.encode([t], kind, normalize=False) for t in TEXTS[:12]])
        assert np.array_equal(alone, ours[:12]), family


def test_pooling_modes_and_prompt_exclusion_run_in_numpy_as_in_the_graph(
    int8_dirs, tmp_path: Path
) -> None:
    """The numpy head pools as sentence-transformers does, for every mode and without the
    prompt: the same folder under both engines agrees with the source."""
    base = int8_dirs("bert")[0]
    for mode, include_prompt in (("max", True), ("cls", True), ("mean", False)):
        source = Path(shutil.copytree(base, tmp_path / f"{mode}-{include_prompt}"))
        (source / "1_Pooling" / "config.json").write_text(json.dumps(
            {"embedding_dimension": HIDDEN, "pooling_mode": mode,
             "include_prompt": include_prompt}))
        config = json.loads((source / "config_sentence_transformers.json").read_text())
        config["prompts"] = {"query": "query: ", "document": "passage: "}
        (source / "config_sentence_transformers.json").write_text(json.dumps(config))
        folder = build(source, tmp_path / f"int8-{mode}-{include_prompt}", precision="int8")
        onnx = Encoder.load(folder, engine="onnxruntime", compile_cache=False)
        ours = onnx.encode(TEXTS, "query", normalize=False)
        found = cosines(ours, reference(source, "query", TEXTS))
        print(f"{mode} include_prompt={include_prompt}: mean {found.mean():.4f}")
        assert found.mean() >= 0.97, (mode, include_prompt)


def test_threads_streams_and_streaming_give_the_same_vectors(int8_dirs) -> None:
    folder = int8_dirs("bert")[1]
    one = Encoder.load(folder, engine="onnxruntime", threads=1, streams=1)
    many = Encoder.load(folder, engine="onnxruntime", threads=2, streams=3)
    expected = one.encode(TEXTS)
    assert np.array_equal(many.encode(TEXTS, batch_size=4), expected)
    streamed = np.concatenate(list(many.encode_stream(iter(TEXTS), chunk_size=9)))
    assert np.array_equal(streamed, expected)
    results: dict[int, np.ndarray] = {}

    def call(index: int) -> None:
        results[index] = many.encode(TEXTS[index::4])

    workers = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for index in range(4):
        assert np.array_equal(results[index], expected[index::4])
    assert many.info()["streams_for_many_batches"] == 3


def test_auto_picks_onnxruntime_only_without_int8_dot_products() -> None:
    with_onnx = ModelConfig("mean", 8, 16, onnx_file="onnx/model_int8.onnx")
    without = ModelConfig("mean", 8, 16)
    assert pick_engine("auto", with_onnx, AVX2) == "onnxruntime"
    assert pick_engine("auto", with_onnx, VNNI) == "openvino"
    assert pick_engine("auto", with_onnx, AVX2 | {"amx_int8"}) == "openvino"
    assert pick_engine("auto", without, AVX2) == "openvino"  # an older folder: OpenVINO still
    assert pick_engine("openvino", with_onnx, AVX2) == "openvino"
    with pytest.raises(ValueError, match="'auto', 'openvino', 'onnxruntime'"):
        pick_engine("onnx", with_onnx, AVX2)


def test_a_folder_without_an_onnx_model_is_named_with_the_fix(int8_dirs, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(int8_dirs("bert")[1], tmp_path / "old"))
    data = json.loads((folder / "ipex_embeddings.json").read_text())
    del data["onnx_file"]
    (folder / "ipex_embeddings.json").write_text(json.dumps(data))
    with pytest.raises(ModelFolderError, match='no ONNX Runtime model.*engine="openvino"'):
        Encoder.load(folder, engine="onnxruntime")


def test_a_missing_or_damaged_onnx_file_is_named(int8_dirs, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(int8_dirs("bert")[1], tmp_path / "damaged"))
    model = folder / "onnx" / "model_int8.onnx"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFolderError, match=r"ONNX Runtime cannot read .*model_int8\.onnx"):
        Encoder.load(folder, engine="onnxruntime")
    model.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    with pytest.raises(ModelFolderError, match="Git LFS pointer"):
        Encoder.load(folder)
    model.unlink()
    with pytest.raises(ModelFolderError, match=r"missing \['onnx/model_int8.onnx'\]"):
        Encoder.load(folder)


def test_no_int8_speed_warning_when_onnxruntime_runs(int8_dirs, recwarn) -> None:
    Encoder.load(int8_dirs("bert")[1], engine="onnxruntime")
    assert not [w for w in recwarn if issubclass(w.category, Int8SpeedWarning)]


def test_scores_in_numpy_equal_the_graph_head() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    for labels in (1, 2):
        logits = np.random.default_rng(labels).normal(size=(5, labels)).astype(np.float32) * 4
        parameter = ops.parameter([-1, labels], ov.Type.f32, name="logits")
        model = add_scores(ov.Model([ops.result(ops.relu(parameter))], [parameter]))
        graph = openvino_core().compile_model(model, "CPU")([logits])[0]
        np.testing.assert_allclose(scores_array(np.maximum(logits, 0)), graph, atol=1e-6)
    with pytest.raises(ValueError, match="not \\[batch, 1 or 2\\] logits"):
        scores_array(np.zeros((2, 3), np.float32))


def test_cross_encoder_runs_on_onnxruntime(tmp_path: Path) -> None:
    from test_cross_encoder import QUERY, _calibration_pairs, make_cross_encoder
    from test_cross_encoder import build as build_cross

    source = make_cross_encoder(tmp_path / "source", "bert", num_labels=2)
    folder = build_cross(source, tmp_path / "int8", "int8", calibration_pairs=_calibration_pairs())
    assert ModelConfig.load(folder).onnx_file
    onnx = CrossEncoder.load(folder, engine="onnxruntime", compile_cache=False)
    openvino = CrossEncoder.load(folder, engine="openvino", compile_cache=False)
    texts = [" ".join(p) for p in _calibration_pairs(30)]
    ours, theirs = onnx.score(QUERY, texts), openvino.score(QUERY, texts)
    ranks = [np.argsort(np.argsort(s)) for s in (ours, theirs)]
    spearman = float(np.corrcoef(*ranks)[0, 1])
    print(f"cross-encoder onnxruntime vs openvino int8: Spearman {spearman:.3f}")
    assert ours.dtype == np.float32 and spearman > 0.8
    alone = np.array([onnx.score(QUERY, [t])[0] for t in texts[:8]])
    assert np.array_equal(alone, ours[:8])
    margins = onnx.score(QUERY, texts, activation="none")
    np.testing.assert_allclose(1 / (1 + np.exp(-margins)), ours, rtol=1e-5)


def test_adding_the_onnx_model_leaves_the_callers_config_alone(int8_dirs, tmp_path: Path) -> None:
    import dataclasses

    from transformers import AutoModel

    from ipex_embeddings_builder.onnx_int8 import ONNX_FILE, add_onnx_model, unmasked_module

    source, folder = int8_dirs("bert")
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    config = dataclasses.replace(ModelConfig.load(copy), onnx_file="", quantization={"m": 1})
    before = dataclasses.asdict(config)
    names = [n for n in Encoder.load(folder, engine="onnxruntime").engine.input_names
             if n != "attention_mask"]
    module = unmasked_module(AutoModel.from_pretrained(source).eval(), "last_hidden_state", names)
    examples = [{n: np.array([[3, 4, 5, 6]]) if n == "input_ids" else np.zeros((1, 4), np.int64)
                 for n in names}]
    written = add_onnx_model(copy, config, module, names, examples)
    assert dataclasses.asdict(config) == before
    assert written.onnx_file == ONNX_FILE and written.quantization["m"] == 1
    assert written.quantization["onnx"]["per_token"] > 0
    assert ModelConfig.load(copy) == written
