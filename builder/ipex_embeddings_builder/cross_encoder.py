"""Export a Hugging Face cross-encoder (`*ForSequenceClassification`) to an OpenVINO model folder.

The library half of cross-encoder support: `quantize_cross_encoder(source, output)` writes a
folder that `ipex_embeddings.CrossEncoder` loads (fp32 IR, or static int8 calibrated on
(query, passage) pairs). Its IR returns the classification head's logits; the activation the
source applies (sigmoid for one logit, softmax for two) is recorded in the model JSON and applied
by the runtime. Raises plain exceptions (ValueError, FileNotFoundError); the CLI wiring is not
here.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ipex_embeddings.batching import TextTokenizer
from ipex_embeddings.config import ModelConfig

from .digest import sha256
from .onnx_int8 import add_onnx_model, unmasked_module
from .quantize import (
    COMPANION_FILES,
    INFERENCE_PRECISION,
    MODEL_FILE,
    quiet_transformers,
    trace_to_openvino,
    write_atomically,
)
from .source import DECODER_MODEL_TYPES, SUPPORTED_MODEL_TYPES, check_code

__all__ = [
    "CrossEncoderSource", "default_calibration_pairs", "export_cross_encoder",
    "inspect_cross_encoder", "quantize_cross_encoder",
]

logger = logging.getLogger(__name__)

# sentence-transformers' activation_fn paths (CrossEncoder.save writes the class's full path;
# the short torch.nn aliases import the same class) -> the runtime's activations.
ST_ACTIVATIONS = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "none",
    "torch.nn.Identity": "none",
}
CROSS_ENCODER_MODEL_TYPES = SUPPORTED_MODEL_TYPES - DECODER_MODEL_TYPES
"""The encoder families a cross-encoder may be (the bi-encoder intake's, less decoders)."""
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}  # ids start after padding
DEFAULT_PAIRS_NAME = (
    "SciFact train queries with judged passages and BM25 hard negatives (vendored)"
)
HARD_NEGATIVE_DEPTH = 10
"""BM25 candidates searched for each query's hard negative (the best one not judged)."""


@dataclass
class CrossEncoderSource:
    """What the export needs to know about a local cross-encoder folder."""

    path: Path
    model_type: str
    num_labels: int
    activation: str
    max_seq_length: int
    input_names: list[str]
    """The IR's inputs: input_ids, attention_mask, and token_type_ids where the model has
    more than one token type (BERT; not XLM-R or ModernBERT)."""


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _source_activation(path: Path, config: dict[str, Any], num_labels: int) -> str:
    """The activation sentence-transformers' CrossEncoder applies to this source, read from the
    keys it reads, in its order (sentence-transformers 6.2, `CrossEncoder._parse_model_config`
    and `get_default_activation_fn`): config_sentence_transformers.json's `activation_fn` (v5
    and later), config.json's `sentence_transformers.activation_fn` (v4), config.json's
    `sbert_ce_default_activation_function` (before v4); a path outside `torch.` is not imported
    without trust_remote_code, so the default stands, as there. Default: sigmoid for one
    logit. Two logits always give the softmax's positive class here (one score per pair)."""
    if num_labels == 2:
        return "softmax"
    name = (
        _read_json(path / "config_sentence_transformers.json").get("activation_fn")
        or (config.get("sentence_transformers") or {}).get("activation_fn")
        or config.get("sbert_ce_default_activation_function")
    )
    if name is None:
        return "sigmoid"
    if name not in ST_ACTIVATIONS and not str(name).startswith("torch."):
        logger.warning("%s names activation_fn=%r, which sentence-transformers does not import "
                       "without trust_remote_code: sigmoid is used, as there.", path, name)
        return "sigmoid"
    if name not in ST_ACTIVATIONS:
        raise ValueError(
            f"{path} applies activation_fn={name!r}, which the runtime does not "
            'implement; pass activation="sigmoid" or "none" to choose one.'
        )
    return ST_ACTIVATIONS[name]


def _max_seq_length(path: Path, config: dict[str, Any], given: int | None) -> int:
    model_type = str(config.get("model_type", ""))
    limit = int(config.get("max_position_embeddings", 512)) - POSITION_OFFSET.get(model_type, 0)
    st = _read_json(path / "sentence_bert_config.json")
    tokenizer_max = _read_json(path / "tokenizer_config.json").get("model_max_length")
    found = st.get("max_seq_length") or (
        tokenizer_max if isinstance(tokenizer_max, int) and tokenizer_max < 100_000 else None
    )
    length = int(given or found or limit)
    if length > limit:
        if given:
            raise ValueError(
                f"max_seq_length={length} exceeds the model's {limit} positions; pass a "
                "smaller one."
            )
        length = limit
    return length


def _check_safe_and_supported(path: Path, config: dict[str, Any]) -> None:
    """The bi-encoder intake's checks that hold for a cross-encoder too (`source.py`): a
    supported encoder family, and no custom code (transformers' built-in class would replace it
    with randomly initialised layers; the cross-encoder export runs no custom code)."""
    model_type = str(config.get("model_type", ""))
    if model_type not in CROSS_ENCODER_MODEL_TYPES:
        raise ValueError(
            f"{path} is a {model_type or 'unknown'!r} model, not a supported cross-encoder "
            f"family ({', '.join(sorted(CROSS_ENCODER_MODEL_TYPES))})."
        )
    check_code(path, config, trust_remote_code=False)


def inspect_cross_encoder(
    source: str | Path, *, max_seq_length: int | None = None, activation: str | None = None
) -> CrossEncoderSource:
    """Read a local `*ForSequenceClassification` folder (plain transformers, or saved by
    sentence-transformers' `CrossEncoder.save`).

    Raises:
        FileNotFoundError: no config.json, tokenizer.json or .safetensors weights.
        ValueError: not a sequence-classification model, more than two labels, or an
            activation the runtime does not implement.
    """
    path = Path(source).expanduser()
    config = _read_json(path / "config.json")
    if not config:
        raise FileNotFoundError(f"{path} has no config.json: it is not a transformers model.")
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{path} has no tokenizer.json (a fast tokenizer). Save one with transformers' "
            "AutoTokenizer.from_pretrained(path).save_pretrained(path), then retry."
        )
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{path} has no .safetensors weights; ipex-embeddings never unpickles model files."
        )
    _check_safe_and_supported(path, config)
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise ValueError(
            f"{path} is {architectures or 'no known architecture'}, not a "
            "*ForSequenceClassification cross-encoder; export bi-encoders with "
            "`ipex-embed quantize`."
        )
    # transformers leaves id2label out of config.json at its default: two labels
    num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels") or 2)
    if num_labels not in (1, 2):
        raise ValueError(
            f"{path} has {num_labels} labels; a reranker needs one relevance logit or two "
            "(negative, positive)."
        )
    if activation is None:
        activation = _source_activation(path, config, num_labels)
    has_types = int(config.get("type_vocab_size", 0) or 0) > 1
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if has_types else [])
    return CrossEncoderSource(
        path=path,
        model_type=str(config.get("model_type", "")),
        num_labels=num_labels,
        activation=activation,
        max_seq_length=_max_seq_length(path, config, max_seq_length),
        input_names=names,
    )


def export_cross_encoder(source: CrossEncoderSource) -> Any:
    """Trace the source into an fp32 `openvino.Model`: token inputs (int64, dynamic
    [batch, tokens]) to float32 [batch, num_labels] logits named "logits".

    Attention is exported in its "eager" form: sdpa and flash attention trace badly (ModernBERT
    gives NaN at padded positions), and eager computes the same values.
    """
    return trace_to_openvino(_load_classifier(source), source.input_names, "logits")


def _load_classifier(source: CrossEncoderSource) -> Any:
    """The source's `*ForSequenceClassification` model, eager attention, in eval mode."""
    from transformers import AutoModelForSequenceClassification

    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            source.path, use_safetensors=True, attn_implementation="eager"
        ).eval()


def default_calibration_pairs(samples: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """(query, passage) pairs from the vendored SciFact train split: each query's judged
    passage and its best BM25 candidate that is not judged (a hard negative, from
    `bm25.Bm25Index`), shuffled with `seed` and cut to `samples`, so that calibration sees
    the close calls a reranker is used for, at both ends of the score range."""
    from .bm25 import bm25_candidates
    from .data import SCIFACT_DIR, document_text, load_beir

    data = load_beir(SCIFACT_DIR, split="train")
    candidates = bm25_candidates(data, HARD_NEGATIVE_DEPTH)
    rng = random.Random(seed)
    pairs = []
    for qid in sorted(data.qrels):
        query = data.queries[qid]
        judged = sorted(data.qrels[qid])
        pairs.append((query, document_text(data.corpus[judged[0]])))
        negative = next((d for d, _ in candidates[qid] if d not in data.qrels[qid]), None)
        if negative is not None:
            pairs.append((query, document_text(data.corpus[negative])))
    rng.shuffle(pairs)
    return pairs[:samples]


def _pairs_digest(pairs: Sequence[tuple[str, str]]) -> str:
    joined = "\0".join(f"{query}\t{text}" for query, text in pairs)
    return sha256(joined)


def _calibration_items(
    source: CrossEncoderSource, pairs: Sequence[tuple[str, str]]
) -> list[dict[str, np.ndarray]]:
    """One model input per pair, tokenized and truncated as the runtime does (unpadded)."""
    tokenizer = TextTokenizer(
        source.path / "tokenizer.json", source.max_seq_length, source.input_names, "only_second"
    )
    encodings, _ = tokenizer.tokenize(list(pairs))
    return [
        tokenizer.pad(encodings, np.array([i]), len(e.ids)).inputs
        for i, e in enumerate(encodings)
    ]


def _quantize(
    ov_model: Any, source: CrossEncoderSource, pairs: Sequence[tuple[str, str]], preset: str
) -> Any:
    import nncf

    data = _calibration_items(source, pairs)
    logger.info("Calibrating int8 on %d (query, passage) pairs with NNCF", len(data))
    return nncf.quantize(
        ov_model,
        nncf.Dataset(data),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset(preset),
        subset_size=len(data),
    )


def quantize_cross_encoder(
    source: str | Path,
    output: str | Path,
    precision: str = "int8",
    calibration_pairs: Sequence[tuple[str, str]] | None = None,
    *,
    max_seq_length: int | None = None,
    activation: str | None = None,
    preset: str = "mixed",
    source_model: str | None = None,
    source_revision: str = "",
    overwrite: bool = False,
    calibration_name: str | None = None,
) -> ModelConfig:
    """Export a local cross-encoder folder and write a runtime model folder at `output`.

    Args:
        source: a local `*ForSequenceClassification` folder with safetensors weights and
            tokenizer.json (a transformers save, or sentence-transformers' `CrossEncoder.save`).
        output: the folder to write (IR, tokenizer.json, the source's companion files,
            ipex_embeddings.json with kind "cross-encoder"); nothing is left there on failure.
        precision: "int8" (static NNCF quantization) or "fp32" (the exported IR as is).
        calibration_pairs: (query, passage) pairs for int8; None: `default_calibration_pairs()`.
        max_seq_length: longest pair in tokens; None: the source's (sentence-transformers'
            setting, the tokenizer's model_max_length, or the position limit).
        activation: "sigmoid", "softmax" or "none"; None: the source's (see module docstring).
        preset: NNCF's quantization preset ("mixed" or "performance").
        source_model: the source's name in the model JSON; None: the folder's name.
        source_revision: the Hub commit the source came from, recorded for validation and the
            card ("" for a local folder).
        overwrite: replace a non-empty `output`.
        calibration_name: the given pairs' name in the model JSON (None: "given pairs").

    Returns:
        The written `ModelConfig`.

    Raises:
        ValueError: an unknown precision, empty calibration pairs, or a source that is not a
            supported cross-encoder (see `inspect_cross_encoder`).
        FileNotFoundError: the source lacks config.json, tokenizer.json or safetensors.
        OutputExistsError: `output` is not empty and `overwrite` is False (raised by
            `quantize.write_atomically`, shared with the bi-encoder export).
    """
    if precision not in ("int8", "fp32"):
        raise ValueError(f'precision={precision!r} is not supported; use "int8" or "fp32".')
    found = inspect_cross_encoder(source, max_seq_length=max_seq_length, activation=activation)
    pairs = None
    if precision == "int8":
        pairs = list(calibration_pairs if calibration_pairs is not None
                     else default_calibration_pairs())
        if not pairs:
            raise ValueError("calibration_pairs is empty; int8 needs (query, passage) pairs.")
    started = time.perf_counter()
    with write_atomically(Path(output), overwrite) as staging:
        logger.info("Exporting %s to OpenVINO IR", found.path)
        ov_model = export_cross_encoder(found)
        if pairs is not None:
            ov_model = _quantize(ov_model, found, pairs, preset)
        name = DEFAULT_PAIRS_NAME if calibration_pairs is None else calibration_name
        record = _record(pairs, name, preset, time.perf_counter() - started)
        config = _save_folder(ov_model, staging, found, precision, record, pairs,
                              (source_model, source_revision))
    return config


def _add_onnx_int8(folder: Path, config: ModelConfig, source: CrossEncoderSource,
                   pairs: Sequence[tuple[str, str]]) -> ModelConfig:
    """The folder's ONNX Runtime int8 model (`onnx_int8.add_onnx_model`), checked on the first
    calibration pairs."""
    names = [n for n in source.input_names if n != "attention_mask"]
    module = unmasked_module(_load_classifier(source), "logits", names)
    logger.info("Exporting %s to ONNX for ONNX Runtime (CPUs without int8 dot products)",
                source.path)
    return add_onnx_model(folder, config, module, names, _calibration_items(source, pairs[:8]))


def _record(
    pairs: Sequence[tuple[str, str]] | None, name: str | None, preset: str, seconds: float
) -> dict[str, Any]:
    """The model JSON's quantization record: names and counts, never a path."""
    return {
        "method": "nncf.quantize" if pairs else "none",
        "preset": preset if pairs else None,
        "model_type": "transformer",
        "samples": len(pairs or []),
        "calibration_source": (
            (name or "given pairs") if pairs else None
        ),
        "seconds": round(seconds, 1),
    }


def _save_folder(
    ov_model: Any,
    folder: Path,
    source: CrossEncoderSource,
    precision: str,
    record: dict[str, Any],
    pairs: Sequence[tuple[str, str]] | None,
    recorded: tuple[str | None, str],
) -> ModelConfig:
    """Write the IR, tokenizer, companion files and JSON (and for int8 the ONNX Runtime model);
    `recorded`: (source_model, source_revision) as the JSON names the source."""
    import openvino as ov

    source_model, source_revision = recorded

    (folder / "openvino").mkdir()
    ov.save_model(ov_model, folder / MODEL_FILE, compress_to_fp16=False)
    for name in COMPANION_FILES:
        if (source.path / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.path / name, folder / name)
    config = ModelConfig(
        pooling="none",
        dimension=source.num_labels,
        max_seq_length=source.max_seq_length,
        precision=precision,
        inference_precision=INFERENCE_PRECISION[precision],
        normalize=False,
        model_file=MODEL_FILE,
        source_model=source_model or source.path.resolve().name,
        source_revision=source_revision,
        quantization=record,
        calibration_digest=_pairs_digest(pairs) if pairs else "",
        kind="cross-encoder",
        activation=source.activation,
    )
    config.save(folder)
    if pairs:  # int8: the ONNX Runtime model too
        config = _add_onnx_int8(folder, config, source, pairs)
    return config
