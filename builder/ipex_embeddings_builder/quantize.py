"""Export a Hugging Face encoder to OpenVINO and quantize it: the `ipex-embed quantize` stage."""

from __future__ import annotations

import inspect
import logging
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipex_embeddings import ModelConfig

from .calibration import CalibrationSet
from .errors import OutputExistsError, SourceModelError
from .onnx_int8 import add_onnx_model, unmasked_module
from .schemes import PRESET, Scheme, parse_scheme
from .source import DECODER_MODEL_TYPES, SourceModel, source_tokenizer

__all__ = [
    "add_onnx_int8",
    "calibration_inputs",
    "QuantizeOptions",
    "export_model",
    "quantize_model",
    "quantize_to_folder",
    "quiet_transformers",
    "save_model_folder",
    "trace_to_openvino",
    "write_atomically",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "openvino/openvino_model.xml"
INFERENCE_PRECISION = {"int8": "auto", "bf16": "bf16", "fp32": "f32"}
"""The `inference_precision` each weight precision's folder is written with: int8's other layers
run in bf16 where the CPU computes bf16 natively (fidelity measured equal to f32 there once the
attention's inputs are not fake-quantized: `ipex_embeddings.attention`; a MiniLM cross-encoder's
scores agreed with sentence-transformers fp32 alike, Spearman 0.993 either way), fp32 stays f32."""
# Files copied from the source so the folder also loads in sentence-transformers and transformers.
COMPANION_FILES = [
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "sentencepiece.bpe.model", "modules.json", "sentence_bert_config.json",
    "config_sentence_transformers.json", "1_Pooling/config.json",
]


@dataclass
class QuantizeOptions:
    """How to turn the source into IR: precision, the int8 scheme (`schemes`), and which layers
    keep higher precision."""

    precision: str = "int8"
    keep_higher_precision: Sequence[str] = field(default_factory=list)
    scheme: str = "static"
    """An int8 scheme (`schemes.parse_scheme`); `auto` is a search: `tuning.tune_to_folder`."""


def _check_loading(source: SourceModel, info: dict[str, Any]) -> None:
    """Stop when weights failed to load: transformers would leave those layers random."""
    # A checkpoint saved with a task head or without the unused pooler loads fine for us.
    harmless = ("pooler.", "cls.", "lm_head.", "generator_", "discriminator_predictions.")
    missing = sorted(k for k in info.get("missing_keys", []) if not k.startswith(harmless))
    unexpected = sorted(k for k in info.get("unexpected_keys", []) if not k.startswith(harmless))
    mismatched = sorted(map(str, info.get("mismatched_keys", [])))
    if missing or unexpected or mismatched:
        raise SourceModelError(
            f"The weights in {source.path} do not fit transformers' {source.model_type!r} "
            f"model: missing {missing[:5]}, unexpected {unexpected[:5]}, mismatched "
            f"{mismatched[:5]} ({len(missing)}, {len(unexpected)}, {len(mismatched)} in all); the "
            "export would use random weights there. If the model ships its own code (auto_map), "
            "pass --trust-remote-code; otherwise re-save it with transformers."
        )


def _load_transformer(source: SourceModel) -> Any:
    """The source's transformer, every weight loaded, in eval mode."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(source.path, trust_remote_code=source.trust_remote_code)
    kwargs: dict[str, Any] = {}
    if source.model_type == "modernbert":
        # Its sliding-window layers leave padded rows with nothing to attend to; sdpa then gives
        # NaN under OpenVINO, the eager softmax does not.
        kwargs["attn_implementation"] = "eager"
    if source.model_type in DECODER_MODEL_TYPES:
        config.use_cache = False
    with quiet_transformers():
        model, info = AutoModel.from_pretrained(
            source.path, config=config, use_safetensors=True, output_loading_info=True,
            trust_remote_code=source.trust_remote_code, **kwargs,
        )
    _check_loading(source, info)
    return model.eval()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' load-time notices (`loss_type`, the weights bar) held back: they concern
    training, not an export. Errors still raise; `_check_loading` reports missing weights."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _dense_stack(source: SourceModel) -> Any:
    """The source's Dense modules as one torch module applied to every token (or None)."""
    import torch
    from safetensors.torch import load_file

    if not source.dense:
        return None
    activations = {"tanh": torch.nn.Tanh, "identity": torch.nn.Identity, "relu": torch.nn.ReLU,
                   "gelu": torch.nn.GELU, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for dense in source.dense:
        weights = load_file(dense.weights)
        bias = "linear.bias" in weights
        linear = torch.nn.Linear(dense.in_features, dense.out_features, bias=bias)
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in weights.items()})
        layers += [linear, activations[dense.activation]()]
    return torch.nn.Sequential(*layers).eval()


def _input_names(model: Any) -> list[str]:
    """The token inputs the source's forward takes: input_ids, attention_mask, and
    token_type_ids only where the model has several token types (BERT, not XLM-R/ModernBERT)."""
    accepted = inspect.signature(model.forward).parameters
    types = int(getattr(model.config, "type_vocab_size", 0) or 0)
    names = [n for n in ("input_ids", "attention_mask") if n in accepted]
    if "token_type_ids" in accepted and types > 1:
        names.append("token_type_ids")
    return names


def _extra_inputs(model: Any) -> dict[str, Any]:
    """Keyword arguments of the export's forward: decoders run without their cache."""
    return {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters \
        else {}


def add_onnx_int8(folder: Path, config: ModelConfig, source: SourceModel,
                  calibration: CalibrationSet) -> ModelConfig:
    """The folder's ONNX Runtime int8 model (`onnx_int8.add_onnx_model`), checked on the first
    calibration texts; the config naming it (unchanged when the export fails: see there)."""
    model = _load_transformer(source)
    names = [n for n in _input_names(model) if n != "attention_mask"]
    module = unmasked_module(model, "last_hidden_state", names, _extra_inputs(model),
                             _dense_stack(source))
    examples = calibration_inputs(source, calibration.texts[:8], names, calibration.kinds[:8])
    logger.info("Exporting %s to ONNX for ONNX Runtime (CPUs without int8 dot products)",
                source.model_id)
    return add_onnx_model(folder, config, module, names, examples)


def export_model(source: SourceModel) -> Any:
    """Trace the source's transformer into an fp32 `openvino.Model`, dynamic batch and length.

    token_type_ids is an input only where the model has several token types (BERT, not
    XLM-R/ModernBERT); decoders run without their cache. Dense modules run on every token,
    before the runtime's pooling (exact for the poolings `source.inspect_source` lets through).
    The example batch holds a padded row, so no "mask is all ones" shortcut is traced.
    """

    model = _load_transformer(source)
    return trace_to_openvino(model, _input_names(model), "last_hidden_state",
                             extra=_extra_inputs(model), head=_dense_stack(source))


def _model_output(model: Any, output_name: str, extra: dict[str, Any], head: Any) -> Any:
    """A torch module: token inputs in, `model(...).<output_name>` (through `head`) out."""
    import torch

    class ModelOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.head = head

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            types = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            output = getattr(self.model(
                input_ids=input_ids, attention_mask=attention_mask, **types, **extra
            ), output_name)
            return output if self.head is None else self.head(output)

    return ModelOutput()


def trace_to_openvino(
    model: Any, names: list[str], output_name: str, *, extra: dict[str, Any] | None = None,
    head: Any = None,
) -> Any:
    """Trace a transformers `model` taking token inputs (`names`, int64) into an fp32
    `openvino.Model` with dynamic [batch, length] inputs and one output: the model output's
    field `output_name` ("last_hidden_state", "logits"), through `head` (a torch module on
    every token, e.g. sentence-transformers Dense) when given. `extra` are further keyword
    arguments of the model's forward (e.g. use_cache=False).

    The example batch has a padded row, so the padded path is traced, never a "mask is all
    ones" shortcut; its ids avoid the first special tokens. Shared by the bi-encoder and the
    cross-encoder exports.
    """
    import openvino as ov
    import torch

    vocab_size = int(model.config.vocab_size)
    example = {
        "input_ids": (torch.arange(16).reshape(2, 8) % (vocab_size - 3)) + 3,
        "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3]),
        "token_type_ids": torch.zeros((2, 8), dtype=torch.long),
    }
    with torch.no_grad(), warnings.catch_warnings(), quiet_transformers():
        # The trace's TracerWarnings and transformers' deprecation notices say nothing a user
        # can act on: the exported graph is checked against PyTorch by the build's gate.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        ov_model = ov.convert_model(
            _model_output(model, output_name, extra or {}, head),
            example_input={n: example[n] for n in names},
            input=[(n, [-1, -1], ov.Type.i64) for n in names],
        )
    ov_model.outputs[0].get_tensor().set_names({output_name})
    return ov_model


def calibration_inputs(
    source: SourceModel,
    texts: list[str],
    input_names: list[str],
    kinds: Sequence[str] = (),
) -> list[dict[str, np.ndarray]]:
    """One model input per text, for NNCF: the query or document prompt as `kinds` says (all
    documents when empty), truncated to max_seq_length as the runtime truncates."""
    tokenizer = source_tokenizer(source)
    tokenizer.no_padding()
    tokenizer.enable_truncation(source.max_seq_length)
    prompts = {"query": source.query_prompt, "document": source.document_prompt}
    prompted = [prompts[kinds[i] if kinds else "document"] + t for i, t in enumerate(texts)]
    items = []
    for encoding in tokenizer.encode_batch(prompted):
        arrays = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        items.append({n: arrays[n] for n in input_names})
    return items


def quantize_model(
    ov_model: Any, source: SourceModel, calibration: CalibrationSet, options: QuantizeOptions
) -> Any:
    """`ov_model` in int8 by `options.scheme`: static int8 with NNCF's transformer preset, or
    int8 weights only; other precisions pass through. `ov_model` itself is left as it is.

    Raises:
        OptionError: an unknown scheme, or `auto` (a search, see `tuning.tune_to_folder`).
    """
    if options.precision != "int8":
        return ov_model
    import nncf

    scheme = parse_scheme(options.scheme)
    ignored = nncf.IgnoredScope(names=list(options.keep_higher_precision), validate=False)
    if not scheme.int8_activations:
        logger.info("Compressing the weights to int8 with NNCF (activations stay float)")
        # compress_weights changes the model it is given; the caller's stays fp32.
        return nncf.compress_weights(
            ov_model.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored
        )
    return _static_int8(ov_model, source, calibration, scheme, ignored)


def _static_int8(
    ov_model: Any, source: SourceModel, calibration: CalibrationSet, scheme: Scheme, ignored: Any
) -> Any:
    """NNCF static int8 of weights and activations, calibrated on `calibration`."""
    import nncf
    from tqdm.auto import tqdm

    input_names = [p.get_any_name() for p in ov_model.inputs]
    data = calibration_inputs(source, calibration.texts, input_names, calibration.kinds)
    logger.info(
        "Calibrating int8 (%s) on %d texts (%s) with NNCF", scheme.name, len(data),
        ", ".join(f"{n} {part}" for part, n in calibration.mix.items()) or calibration.source,
    )
    advanced = None
    if scheme.smooth_quant_alpha is not None:
        advanced = nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(
                matmul=scheme.smooth_quant_alpha
            )
        )
    # NNCF's own bars draw only on a terminal; this one counts the texts its passes run
    # (SmoothQuant's statistics, then the ranges) wherever stderr goes.
    with tqdm(desc="calibration passes", unit="text", mininterval=2.0) as bar:

        def counted(item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            bar.update(1)
            return item

        return nncf.quantize(
            ov_model,
            nncf.Dataset(data, counted),
            model_type=nncf.ModelType.TRANSFORMER,
            preset=nncf.QuantizationPreset(PRESET),
            subset_size=len(data),
            ignored_scope=ignored,
            advanced_parameters=advanced,
        )


@contextmanager
def write_atomically(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `output`; it becomes `output` only if the block succeeds.

    Raises:
        OutputExistsError: `output` exists, is not empty, and `overwrite` is False.
    """
    output = output.expanduser().resolve()
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{output} exists and is not empty; pass --overwrite to replace it."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = output.parent / f".{output.name}.previous"
    if output.exists():
        shutil.rmtree(previous, ignore_errors=True)
        output.rename(previous)
    staging.rename(output)
    shutil.rmtree(previous, ignore_errors=True)


def quantize_to_folder(
    source: SourceModel,
    calibration: CalibrationSet,
    output: Path,
    options: QuantizeOptions | None = None,
    overwrite: bool = False,
) -> ModelConfig:
    """Export, quantize and write a complete model folder at `output` (or nothing, on failure).

    Raises:
        OutputExistsError: `output` exists, is not empty, and `overwrite` is False.
    """
    options = options or QuantizeOptions()
    started = time.perf_counter()
    with write_atomically(output, overwrite) as staging:
        logger.info("Exporting %s to OpenVINO IR", source.model_id)
        ov_model = quantize_model(export_model(source), source, calibration, options)
        config = save_model_folder(
            ov_model, staging, source, calibration, options, time.perf_counter() - started
        )
        if options.precision == "int8":
            config = add_onnx_int8(staging, config, source, calibration)
    return config


def save_model_folder(
    ov_model: Any,
    folder: Path,
    source: SourceModel,
    calibration: CalibrationSet,
    options: QuantizeOptions,
    seconds: float,
    extra: dict[str, Any] | None = None,
) -> ModelConfig:
    """Write an already quantized `ov_model`, the source's companion files and the JSON into
    the empty `folder`; `extra` is merged into the JSON's quantization record."""
    import openvino as ov

    scheme = parse_scheme(options.scheme) if options.precision == "int8" else None
    calibrated = scheme is not None and scheme.int8_activations
    (folder / "openvino").mkdir()
    # fp16 storage only where inference is in bf16 anyway; int8 and fp32 keep fp32 scales.
    ov.save_model(ov_model, folder / MODEL_FILE, compress_to_fp16=options.precision == "bf16")
    for name in COMPANION_FILES:
        if (source.path / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.path / name, folder / name)
    source_tokenizer(source).save(str(folder / "tokenizer.json"))  # the one ST runs, see there
    config = ModelConfig(
        pooling=source.pooling,
        dimension=source.dimension,
        max_seq_length=source.max_seq_length,
        precision=options.precision,
        inference_precision=INFERENCE_PRECISION[options.precision],
        normalize=source.normalize,
        include_prompt=source.include_prompt,
        query_prompt=source.query_prompt,
        document_prompt=source.document_prompt,
        truncate_dim=source.truncate_dim,
        model_file=MODEL_FILE,
        source_model=source.model_id,
        source_revision=source.revision,
        quantization={
            **(scheme.record() if scheme else {"method": "none", "preset": None}),
            "model_type": "transformer",
            # weight-only int8 reads no texts: nothing to record about them
            **({"samples": len(calibration.texts), **calibration.record()}
               if scheme is None or calibrated else {"samples": 0}),
            "keep_higher_precision": list(options.keep_higher_precision),
            "seconds": round(seconds, 1),
            **(extra or {}),
        },
        calibration_digest=calibration.digest if calibrated else "",
    )
    config.save(folder)
    return config
