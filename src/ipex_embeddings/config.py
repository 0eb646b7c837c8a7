"""The model folder's own description: `ipex_embeddings.json`.

A model folder holds the OpenVINO IR (`openvino/openvino_model.xml` + `.bin`), `tokenizer.json`
and this JSON, which says everything the runtime needs that the IR does not: the model's kind
(a bi-encoder for `Encoder`, a cross-encoder for `CrossEncoder`), how to pool, whether to
normalise, the longest input, the prompts, the cross-encoder's activation, and how the model was
made. Format 1 folders have no `kind`: they are bi-encoders.
"""

from __future__ import annotations

import difflib
import json
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from .errors import FOLDER_FIX, ModelFolderError
from .output import (
    FLOAT_PRECISION,
    OUTPUT_PRECISIONS,
    SCALAR_PRECISIONS,
    check_output_precision,
    check_truncate_dim,
)
from .pooling import POOLING_MODES

__all__ = [
    "ACTIVATIONS", "CONFIG_NAME", "FORMAT_VERSION", "KINDS", "POOLING_MODES", "PRECISIONS",
    "ModelConfig", "closest", "did_you_mean",
]

CONFIG_NAME = "ipex_embeddings.json"
FORMAT_VERSION = 2  # 2: `kind` and `activation` (cross-encoders); 1 had bi-encoders only
KINDS = ("bi-encoder", "cross-encoder")
ACTIVATIONS = ("sigmoid", "softmax", "none")
CROSS_ENCODER_POOLING = "none"  # the classification head pools inside the IR
PRECISIONS = ("int8", "bf16", "fp32")
INFERENCE_PRECISIONS = ("auto", "f32", "bf16")
ATTENTION_PRECISIONS = ("auto", "f32", "bf16")
OUTPUT_SIZE_DEFAULTS = {"truncate_dim": None, "output_precision": FLOAT_PRECISION}
REQUIRED_KEYS = ("pooling", "dimension", "max_seq_length")


def closest(value: object, choices: Any) -> str | None:
    """The choice closest to `value` (difflib; case and "_"/"-" aside), or None."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    folded = {n.lower().replace("_", "-"): n for n in names}  # "CLS", "bi_encoder"
    close = difflib.get_close_matches(str(value).lower().replace("_", "-"), list(folded), n=1,
                                      cutoff=0.6)
    return folded[close[0]] if close else None


def did_you_mean(value: object, choices: Any) -> str:
    """' (did you mean 'x'?)' for the choice closest to `value`, else ''."""
    match = closest(value, choices)
    return f" (did you mean {match!r}?)" if match else ""


def _one_of(name: str, value: object, choices: tuple[str, ...]) -> ModelFolderError:
    return ModelFolderError(
        f"{name}={value!r} is not supported; use one of {choices}{did_you_mean(value, choices)}."
    )


@dataclass
class ModelConfig:
    """What the encoder needs to turn token states into the model's sentence vectors."""

    pooling: str
    """"cls" (the first token's state, e.g. BGE) or "mean" (masked mean, e.g. MiniLM, E5);
    "none" for a cross-encoder, whose classification head pools inside the IR."""
    dimension: int
    """Length of the output vectors; for a cross-encoder, the logits per pair (num_labels)."""
    max_seq_length: int
    """Longest input in tokens, prompt and special tokens included."""
    precision: str = "int8"
    """How the weights were stored: int8 (static NNCF quantization), bf16 or fp32."""
    inference_precision: str = "f32"
    """OpenVINO's INFERENCE_PRECISION_HINT for the layers not in int8: "f32", "bf16", or "auto"
    (bf16 where the CPU computes bf16 natively, else f32; what `ipex-embed quantize` writes for
    int8). Folders written before "auto" say "f32"."""
    attention_precision: str = "auto"
    """The attention's precision under f32 layers: "auto" (bf16 for an int8 folder where the CPU
    computes bf16 natively, else f32; see `ipex_embeddings.attention`), "f32" or "bf16". Under
    bf16 layers the attention is bf16 too."""
    normalize: bool = True
    """L2-normalise the pooled vectors (so a dot product is the cosine)."""
    include_prompt: bool = True
    """Pool the prompt's tokens too; False leaves them out (sentence-transformers' setting)."""
    query_prompt: str = ""
    """Text put before every query (e.g. "query: " for E5)."""
    document_prompt: str = ""
    """Text put before every document (e.g. "passage: " for E5)."""
    model_file: str = "openvino/openvino_model.xml"
    """The IR, relative to the folder."""
    onnx_file: str = ""
    """The ONNX Runtime int8 model, relative to the folder ("onnx/model_int8.onnx"), which the
    "onnxruntime" engine runs on CPUs without int8 dot-product instructions; "" for none (folders
    built before it, and models whose ONNX export failed: OpenVINO runs them everywhere)."""
    source_model: str = ""
    """Hugging Face id or path of the model this was made from."""
    source_revision: str = ""
    """Commit of the source model, when known."""
    quantization: dict[str, Any] = field(default_factory=dict)
    """How the IR was quantized: preset, samples, layers kept in higher precision, ..."""
    calibration_digest: str = ""
    """sha256 of the calibration texts, in order."""
    format_version: int = FORMAT_VERSION
    """Version of this file's layout."""
    kind: str = "bi-encoder"
    """"bi-encoder" (texts to vectors: `Encoder`) or "cross-encoder" (a (query, text) pair to a
    relevance score: `CrossEncoder`)."""
    activation: str = ""
    """Cross-encoder only: "sigmoid" (one logit), "softmax" (two, the positive class) or "none"
    (raw logits), as the source model applies it; "" for a bi-encoder."""
    truncate_dim: int | None = None
    """Bi-encoder only: return the first `truncate_dim` dimensions (Matryoshka), re-normalised when
    `normalize`; None: all `dimension`. From the source's config_sentence_transformers.json."""
    output_precision: str = FLOAT_PRECISION
    """Bi-encoder only: the default output precision of `Encoder.encode` ("float32", "binary" or
    "ubinary"; see `ipex_embeddings.output`). Not `precision`, which is the weights'. int8/uint8
    need calibration ranges, so they are given per call, never as a folder default."""

    def __post_init__(self) -> None:
        self._check_kind()
        if self.pooling not in POOLING_MODES and self.kind == "bi-encoder":
            raise _one_of("pooling", self.pooling, POOLING_MODES)
        if self.precision not in PRECISIONS:
            raise _one_of("precision", self.precision, PRECISIONS)
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise _one_of("inference_precision", self.inference_precision, INFERENCE_PRECISIONS)
        if self.attention_precision not in ATTENTION_PRECISIONS:
            raise _one_of("attention_precision", self.attention_precision, ATTENTION_PRECISIONS)
        if self.max_seq_length < 2 or self.dimension < 1:
            raise ModelFolderError(
                f"max_seq_length={self.max_seq_length} and dimension={self.dimension} "
                "must be positive; rebuild the folder with `ipex-embed quantize`."
            )
        self._check_output_size()

    def _check_output_size(self) -> None:
        try:
            check_truncate_dim(self.truncate_dim, self.dimension)
            if self.output_precision not in OUTPUT_PRECISIONS:  # named as the folder names it
                raise _one_of("output_precision", self.output_precision, OUTPUT_PRECISIONS)
            if self.output_precision in SCALAR_PRECISIONS:
                raise ValueError(
                    f"output_precision={self.output_precision!r} needs calibration ranges, so it "
                    "cannot be a folder default; pass precision and ranges to Encoder.encode."
                )
            check_output_precision(self.output_precision, None, self.dimension, "output_precision")
        except ValueError as err:
            raise ModelFolderError(f"{CONFIG_NAME}: {err}") from err
        if self.kind == "cross-encoder" and (
            self.truncate_dim is not None or self.output_precision != FLOAT_PRECISION
        ):
            raise ModelFolderError(
                "truncate_dim and output_precision are for bi-encoders; a cross-encoder "
                "returns scores. Remove them from the folder's JSON."
            )

    def _check_kind(self) -> None:
        if self.kind not in KINDS:  # a newer kind comes with a newer format_version (load)
            raise _one_of("kind", self.kind, KINDS)
        if self.kind == "bi-encoder" and self.activation:
            raise ModelFolderError(
                f"activation={self.activation!r} is for cross-encoders; a bi-encoder has none."
            )
        if self.kind == "cross-encoder":
            if self.activation not in ACTIVATIONS:
                raise _one_of("activation", self.activation, ACTIVATIONS)
            if self.pooling != CROSS_ENCODER_POOLING or self.dimension not in (1, 2):
                raise ModelFolderError(
                    f"a cross-encoder folder needs pooling={CROSS_ENCODER_POOLING!r} and "
                    f"dimension 1 or 2 (its logits), got {self.pooling!r} and {self.dimension}; "
                    "rebuild it with ipex_embeddings_builder.cross_encoder.quantize_cross_encoder."
                )

    def prompt(self, kind: str) -> str:
        """The prompt for "query" or "document" texts."""
        if kind == "query":
            return self.query_prompt
        if kind == "document":
            return self.document_prompt
        raise ValueError(f'kind={kind!r} is not supported; use "query" or "document".')

    def save(self, folder: str | Path) -> Path:
        """Write the JSON into `folder` and return its path."""
        path = Path(folder) / CONFIG_NAME
        data = asdict(self)
        # Left out at their defaults, so such folders stay readable by older versions.
        for key, default in OUTPUT_SIZE_DEFAULTS.items():
            if data[key] == default:
                del data[key]
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ModelConfig:
        """Read the JSON from `folder`, with an error naming the file, the key and the fix.

        Raises:
            ModelFolderError: no JSON, not a JSON object, a `format_version` newer than
                `FORMAT_VERSION` (the fix: upgrade ipex-embeddings), an unknown key (the closest
                known one is suggested), a value of the wrong type (checked against the
                dataclass annotations) or not supported, or required keys missing.
        """
        path = Path(folder) / CONFIG_NAME
        raw = _read_object(path, folder)
        _check_version(raw, path)
        _check_keys(raw, path)
        _check_types(raw, path)
        try:
            return cls(**raw)
        except ModelFolderError as err:
            message = str(err).removeprefix(f"{CONFIG_NAME}: ")
            fix = "" if "ipex-embed" in message else f" Fix the value, or {FOLDER_FIX}."
            raise ModelFolderError(f"{path}: {message}{fix}") from err


def _read_object(path: Path, folder: str | Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFolderError(
            f"{folder} has no {CONFIG_NAME}, so it is not an ipex-embeddings model folder. "
            "Make one from a Hugging Face model with `ipex-embed quantize MODEL --output DIR`."
        )
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFolderError(
            f"{path} is not valid JSON ({err}): it was cut short or damaged; {FOLDER_FIX}."
        ) from err
    if not isinstance(raw, dict):
        raise ModelFolderError(
            f"{path} holds a JSON {type(raw).__name__}, not an object of settings; {FOLDER_FIX}."
        )
    return raw


def _check_version(raw: dict[str, Any], path: Path) -> None:
    version = raw.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFolderError(
            f'{path}: "format_version" is {json.dumps(version)}, but it must be a whole number '
            f'from 1 to {FORMAT_VERSION}, e.g. "format_version": {FORMAT_VERSION}; {FOLDER_FIX}.'
        )
    if version > FORMAT_VERSION:
        raise ModelFolderError(
            f"{path} has format_version {version!r}; this ipex-embeddings reads version "
            f"{FORMAT_VERSION} and older. The folder was written by a newer ipex-embeddings: "
            "upgrade with `pip install -U ipex-embeddings`."
        )


def _check_keys(raw: dict[str, Any], path: Path) -> None:
    """Unknown keys (the version is not newer: a typo, with the closest known key), then the
    required keys."""
    known = [f.name for f in fields(ModelConfig)]
    for key in sorted(set(raw) - set(known)):
        match = closest(key, known)
        fix = f"rename it to {match!r}" if match else "remove it"
        raise ModelFolderError(
            f"{path} has an unknown key {key!r}{did_you_mean(key, known)}; {fix}, or "
            f"{FOLDER_FIX}. The keys are documented in docs/model-folder.md."
        )
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelFolderError(f"{path} lacks {missing}; {FOLDER_FIX} (rebuild the folder).")


JSON_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false",
                   dict: "an object ({...})", type(None): "null", float: "a number",
                   list: "a list"}


def _allowed_types(hint: Any) -> tuple[type, ...]:
    """The types a JSON value may have for the dataclass annotation `hint`."""
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(t for arg in get_args(hint) for t in _allowed_types(arg))
    if hint is Any:
        return (object,)
    return (get_origin(hint) or hint,)


def _check_types(raw: dict[str, Any], path: Path) -> None:
    """Every value's type against `ModelConfig`'s annotations (true is not a number here)."""
    hints = get_type_hints(ModelConfig)
    for key, value in raw.items():
        allowed = _allowed_types(hints[key])
        if bool in allowed if isinstance(value, bool) else isinstance(value, allowed):
            continue
        wanted = " or ".join(JSON_TYPE_NAMES.get(t, t.__name__) for t in allowed)
        got = JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        shown = json.dumps(value) + ("" if value is None else f" ({got})")
        raise ModelFolderError(
            f'{path}: "{key}" is {shown}, but it must be {wanted}: write '
            f'"{key}": {_example(value, allowed, key)}. Fix the value, or {FOLDER_FIX}.'
        )


TRUE_WORDS = ("true", "yes", "y", "on", "1")
FALSE_WORDS = ("false", "no", "n", "off", "0")


def _example(value: object, allowed: tuple[type, ...], key: str) -> str:
    """The value as JSON of an allowed type, when it plainly says one ("384", "yes")."""
    text = str(value).strip().lower()
    if bool in allowed:
        return "true" if text in TRUE_WORDS else "false" if text in FALSE_WORDS else "true or false"
    if int in allowed:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, str) and text.lstrip("-").isdigit():
            return str(int(text))
        default = {f.name: f.default for f in fields(ModelConfig)}.get(key)
        return str(default) if isinstance(default, int) else "a whole number, e.g. 384"
    if dict in allowed:
        return "{}"
    return json.dumps("" if value is None else str(value))
