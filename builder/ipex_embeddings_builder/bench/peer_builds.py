"""Build each peer's model once, inside the peer's own environment (see peers.py).

Run as `python -m ipex_embeddings_builder.bench.peer_builds STEP OPTIONS_JSON` by the bench, in
the interpreter of the peer's virtual environment, so only that environment's libraries are
imported. A finished build leaves `bench_peer.json` (its options) in its folder and is reused
while the options match. Only the standard library (and `digest`, which needs no more) is
imported at the top.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from ..digest import sha256

logger = logging.getLogger(__name__)
MARKER = "bench_peer.json"
IPEX_MODEL = "model_int8.pt"
"""The IPEX peer's frozen TorchScript; `torch.jit.load` unpickles it, so it is loaded only
when its sha256 is the one `build_ipex` wrote beside it (`saved_torchscript`)."""
MAX_LENGTH = 256
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "config.json")


def _done(out: Path, options: dict[str, Any]) -> bool:
    marker = out / MARKER
    return marker.is_file() and json.loads(marker.read_text()) == options


def _fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def _copy_tokenizer(source: Path, out: Path, max_length: int | None = None) -> None:
    """Copy the tokenizer files; with `max_length`, tokenizer_config's model_max_length too."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    config_path = out / "tokenizer_config.json"
    if max_length is not None and config_path.is_file():
        config = json.loads(config_path.read_text())
        config["model_max_length"] = max_length
        config_path.write_text(json.dumps(config, indent=2))


def _texts(path: str) -> list[str]:
    return json.loads(Path(path).read_text(encoding="utf-8"))["texts"]


def build_genai(options: dict[str, Any]) -> None:
    """An IR folder for TextEmbeddingPipeline: the model IR plus openvino-tokenizers' IRs."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    out = _fresh(Path(options["out"]))
    ir = Path(options["ir_dir"]) / "openvino_model.xml"
    model = ov.Core().read_model(ir)
    rank = model.outputs[0].get_partial_shape().rank.get_length()
    if rank != 3:
        raise RuntimeError(f"{ir} returns a rank-{rank} output; TextEmbeddingPipeline pools a "
                           "[batch, tokens, hidden] last_hidden_state itself")
    for suffix in (".xml", ".bin"):
        shutil.copy2(ir.with_suffix(suffix), out / f"openvino_model{suffix}")
    _copy_tokenizer(Path(options["config_dir"]), out)
    tokenizer = AutoTokenizer.from_pretrained(options["source"])
    ov_tokenizer, ov_detokenizer = convert_tokenizer(tokenizer, with_detokenizer=True)
    ov.save_model(ov_tokenizer, out / "openvino_tokenizer.xml")
    ov.save_model(ov_detokenizer, out / "openvino_detokenizer.xml")


def _export_onnx(source: str, path: Path) -> None:
    """torch.onnx.export of the transformer (last_hidden_state), with dynamic batch and length.

    transformers 5's mask code does not trace: the model gets the additive 4D mask that
    transformers 4 built, computed inside the graph from the 2D attention_mask input.
    """
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(source, use_safetensors=True).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            mask = attention_mask[:, None, None, :].to(torch.float32)
            additive = (1.0 - mask) * torch.finfo(torch.float32).min
            return self.model(input_ids=input_ids, attention_mask=additive,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Wrapped(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                      "last_hidden_state": axes},
    )


def build_fastembed(options: dict[str, Any]) -> None:
    """model.onnx (fp32 export) and model_int8.onnx (ONNX Runtime dynamic int8), tokenizer 256.

    Per-channel weight scales: with quantize_dynamic's per-tensor default, MiniLM's cosine to
    fp32 falls to 0.93-0.95 on SciFact texts (0.99 per channel).
    """
    from onnxruntime.quantization import quantize_dynamic

    out = _fresh(Path(options["out"]))
    _export_onnx(options["source"], out / "model.onnx")
    quantize_dynamic(str(out / "model.onnx"), str(out / "model_int8.onnx"), per_channel=True)
    _copy_tokenizer(Path(options["source"]), out, max_length=MAX_LENGTH)


def build_optimum(options: dict[str, Any]) -> None:
    """optimum-intel: the fp32 export (what `optimum-cli export openvino` makes) and OVQuantizer
    static int8 with its defaults, calibrated on our SciFact texts instead of GLUE sst2."""
    from datasets import Dataset
    from optimum.intel import (
        OVConfig,
        OVModelForFeatureExtraction,
        OVQuantizationConfig,
        OVQuantizer,
    )
    from transformers import AutoTokenizer

    source = options["source"]
    tokenizer = AutoTokenizer.from_pretrained(source)
    export = _fresh(Path(options["export_out"]))
    model = OVModelForFeatureExtraction.from_pretrained(source, export=True, compile=False)
    model.save_pretrained(export)
    tokenizer.save_pretrained(export)
    calibration = Dataset.from_dict({"text": _texts(options["calibration"])}).map(
        lambda row: tokenizer(row["text"], truncation=True, max_length=MAX_LENGTH),
        remove_columns=["text"],
    )
    out = _fresh(Path(options["out"]))
    quantizer = OVQuantizer.from_pretrained(model)
    quantizer.quantize(
        ov_config=OVConfig(quantization_config=OVQuantizationConfig(
            num_samples=len(calibration))),
        calibration_dataset=calibration, save_directory=out,
    )
    tokenizer.save_pretrained(out)


def build_ipex(options: dict[str, Any]) -> None:
    """The IPEX static int8 recipe: prepare, calibrate, convert, trace, freeze, save."""
    import intel_extension_for_pytorch as ipex
    import torch
    from intel_extension_for_pytorch.quantization import convert, prepare
    from transformers import AutoModel, AutoTokenizer

    source = options["source"]
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source, torchscript=True).eval()
    example = tokenizer(["an example"], return_tensors="pt", padding="max_length",
                        max_length=16)
    inputs = (example["input_ids"], example["attention_mask"])
    prepared = prepare(model, ipex.quantization.default_static_qconfig_mapping,
                       example_inputs=inputs, inplace=False)
    texts = _texts(options["calibration"])
    with torch.no_grad():
        for start in range(0, len(texts), 8):
            batch = tokenizer(texts[start:start + 8], return_tensors="pt", padding=True,
                              truncation=True, max_length=MAX_LENGTH, pad_to_multiple_of=16)
            prepared(batch["input_ids"], batch["attention_mask"])
        converted = convert(prepared)
        traced = torch.jit.freeze(torch.jit.trace(converted, inputs, strict=False))
    out = _fresh(Path(options["out"]))
    traced.save(str(out / IPEX_MODEL))
    (out / f"{IPEX_MODEL}.sha256").write_text(sha256(files=[out / IPEX_MODEL]))
    tokenizer.save_pretrained(out)


def saved_torchscript(folder: str | Path) -> Path:
    """The IPEX peer's TorchScript in `folder`, once its sha256 is the one `build_ipex` wrote:
    `torch.jit.load` unpickles, so no other file may reach it.

    Raises:
        RuntimeError: no recorded digest, or the file changed since it was built.
    """
    path = Path(folder) / IPEX_MODEL
    record = path.with_name(f"{IPEX_MODEL}.sha256")
    if not record.is_file() or record.read_text().strip() != sha256(files=[path]):
        raise RuntimeError(
            f"{path} is not the TorchScript this bench built (no matching {record.name}); "
            f"torch.jit.load unpickles, so it is not loaded. Delete {Path(folder)} and run the "
            "bench again to rebuild it."
        )
    return path


STEPS = {"genai": build_genai, "fastembed": build_fastembed, "optimum": build_optimum,
         "ipex": build_ipex}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    step, options = sys.argv[1], json.loads(sys.argv[2])
    out = Path(options["out"])
    if _done(out, options):
        logger.info("%s: %s is built already", step, out)
        return
    STEPS[step](options)
    (out / MARKER).write_text(json.dumps(options))
    logger.info("%s: built %s", step, out)


if __name__ == "__main__":
    main()
