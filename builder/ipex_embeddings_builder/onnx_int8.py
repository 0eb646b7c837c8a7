"""The folder's ONNX Runtime int8 model: the `onnxruntime` engine's file (AVX2-only CPUs).

One stage of `ipex-embed quantize`, for bi- and cross-encoders alike: export the source's torch
module to ONNX (fp32, no attention-mask input: the engine runs one unpadded text per call),
check the export against torch, make every matrix product with a constant weight dynamic int8,
check it again, and write `onnx/model_int8.onnx` into the folder (`ModelConfig.onnx_file`).

How each product is quantized (measured on all-MiniLM-L6-v2, 2-core AVX2 EPYC, 300 SciFact
documents, one text per call; cosine to fp32, mean):
- weights int8 per output channel (symmetric), everywhere;
- a product whose input is a LayerNorm's output (query/key/value, the FFN's first layer) gets
  ONNX Runtime's own dynamic quantization (`quantize_dynamic`: one u8 scale per call, i.e. per
  text), which ONNX Runtime fuses into `DynamicQuantizeMatMul`;
- every other one (the attention's output projection, the FFN's second layer: inputs with
  outlier tokens) one scale per token, 7-bit (0..127): with 8 bits, AVX2's u8 x s8 pair sums
  (vpmaddubsw) saturate. Per-text everywhere: 0.9922; per token here: 0.9972; per token
  everywhere: 0.9972, 35 % slower.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ipex_embeddings import ModelConfig

__all__ = ["ONNX_FILE", "OnnxExportError", "add_onnx_model", "per_token_int8", "unmasked_module"]

logger = logging.getLogger(__name__)

ONNX_FILE = "onnx/model_int8.onnx"
ACTIVATION_LEVELS = 127.0  # 7-bit unsigned activations: no u8 x s8 saturation on AVX2
WEIGHT_LEVELS = 127.0
EXPORT_TOLERANCE = 1e-2
"""fp32 ONNX vs torch: the largest |difference| over the largest |value|, per example (measured
1e-7 to 1.2e-3; a lost position offset or mask gives 0.1 and more)."""
MIN_AGREEMENT = 0.7
"""The least Pearson correlation of the int8 and fp32 outputs (all values of the examples
together); below it the file is left out. A check for a broken quantization, which lands near 0
(tiny random test models score 0.8-0.97, all-MiniLM-L6-v2 0.99), not the accuracy claim:
`ipex-embed validate` holds the engine this CPU picks to the same gate as OpenVINO."""


class OnnxExportError(RuntimeError):
    """The ONNX export or its int8 model does not reproduce the source."""


def _export(module: Any, names: Sequence[str], vocab_size: int, path: Path) -> None:
    """torch.onnx.export of `module` (token inputs `names`, int64 [1, tokens]), dynamic length."""
    import torch

    example = tuple((torch.arange(8).reshape(1, 8) % (vocab_size - 3)) + 3 if n == "input_ids"
                    else torch.zeros((1, 8), dtype=torch.long) for n in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    with torch.no_grad():
        torch.onnx.export(module, example, str(path), input_names=list(names),
                          output_names=["output"], opset_version=17, dynamo=False,
                          dynamic_axes={**axes, "output": {0: "batch"}})


def _run(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    from ipex_embeddings.onnxruntime_engine import onnxruntime_session

    session = onnxruntime_session(path, 1)
    return [session.run(None, feed)[0] for feed in feeds]


def _torch_outputs(module: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [module(*(torch.from_numpy(v) for v in feed.values())).numpy() for feed in feeds]


def _agreement(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """The Pearson correlation of all output values (token states or logits) of the examples."""
    ours = np.concatenate([o.ravel() for o in outputs]).astype(np.float64)
    theirs = np.concatenate([r.ravel() for r in reference]).astype(np.float64)
    return float(np.corrcoef(ours, theirs)[0, 1])


def add_onnx_model(
    folder: Path,
    config: ModelConfig,
    module: Any,
    names: Sequence[str],
    examples: list[dict[str, np.ndarray]],
) -> ModelConfig:
    """Write `folder`/`ONNX_FILE` from `module` and save `config` naming it; or, when the export
    fails or does not reproduce the source, warn, write nothing and return `config` unchanged
    (OpenVINO then runs the folder everywhere).

    Args:
        folder: the model folder being written (its JSON is rewritten).
        config: the folder's config.
        module: a torch module taking the token inputs `names` (int64 [1, tokens], in that
            order, no attention mask) and returning the transformer's output (float32
            [1, tokens, hidden] token states, or [1, labels] logits).
        names: its inputs: "input_ids", and "token_type_ids" where the model has them.
        examples: unpadded inputs (dicts of int64 [1, tokens] arrays, keys `names`) to check
            the export and the int8 model on.

    Returns:
        The config as saved (a new one; `config` itself is left as it is).
    """
    feeds = [{n: np.ascontiguousarray(e[n]) for n in names} for e in examples]
    try:
        record = _write(folder, module, names, feeds)
    except Exception as err:  # an export that fails leaves the folder as OpenVINO-only
        logger.warning(
            "No ONNX Runtime model in %s (%s): OpenVINO will run it on every CPU, including "
            "AVX2-only ones, where its int8 is slower than fp32.", folder, err)
        return config
    written = dataclasses.replace(config, onnx_file=ONNX_FILE,
                                  quantization={**config.quantization, "onnx": record})
    written.save(folder)
    return written


def _write(folder: Path, module: Any, names: Sequence[str],
           feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    import onnxruntime

    vocab_size = int(module.vocab_size)
    with tempfile.TemporaryDirectory(prefix="ipex-embed-onnx-") as scratch:
        fp32 = Path(scratch) / "model.onnx"
        _export(module, names, vocab_size, fp32)
        reference = _torch_outputs(module, feeds)
        exported = _run(fp32, feeds)
        worst = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
                    for a, b in zip(exported, reference))
        if worst > EXPORT_TOLERANCE:
            raise OnnxExportError(f"the ONNX export differs from torch by {worst:.2e} (relative)")
        (folder / ONNX_FILE).parent.mkdir(parents=True, exist_ok=True)
        counts = per_token_int8(fp32, folder / ONNX_FILE)
    agreement = _agreement(_run(folder / ONNX_FILE, feeds), reference)
    if not agreement >= MIN_AGREEMENT:  # NaN too
        (folder / ONNX_FILE).unlink()
        raise OnnxExportError(f"its int8 output's correlation with fp32 is {agreement:.3f}")
    logger.info("ONNX Runtime int8 model: %d products per token, %d per text; correlation "
                "with fp32 on %d examples %.4f", counts["per_token"], counts["per_text"],
                len(feeds), agreement)
    return {
        "method": "per-token and per-text dynamic int8 (ipex_embeddings_builder.onnx_int8)",
        "onnxruntime": onnxruntime.__version__,
        "weights": "int8 per channel",
        "activations": "dynamic uint8: 7-bit per token, or 8-bit per text after a LayerNorm",
        **counts,
        "examples_correlation_with_fp32": round(agreement, 5),
    }


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization's advice ("consider pre-processing", "already quantized?")
    held back: it logs through the root logger, whose first use would also give the root a
    handler (`logging.basicConfig`) that repeats every later message of the process."""
    root = logging.getLogger()
    level, guard = root.level, logging.NullHandler()
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.removeHandler(guard)


def per_token_int8(source: Path, output: Path) -> dict[str, int]:
    """Write `output`: `source` (fp32 ONNX) with every MatMul on a constant 2-D weight in
    dynamic int8 (see the module docstring); the counts of products per token and per text.

    Raises:
        OnnxExportError: the model has no such MatMul.
    """
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    model = onnx.load(str(source))
    per_token = _rewrite_per_token(model)
    onnx.save(model, str(output))
    remaining = sum(1 for n in model.graph.node if n.op_type == "MatMul")
    with _quiet_root_logger():
        quantize_dynamic(str(output), str(output), per_channel=True,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    per_text = remaining - sum(1 for n in onnx.load(str(output)).graph.node
                               if n.op_type == "MatMul")
    if per_token + per_text == 0:
        raise OnnxExportError("the model has no matrix product with a constant weight")
    return {"per_token": per_token, "per_text": per_text}


def _per_token_matmuls(graph: Any, weights: dict[str, np.ndarray]) -> set[int]:
    """Indices of the MatMuls on a constant 2-D float weight whose input is not a LayerNorm's
    output."""
    producer = {out: node.op_type for node in graph.node for out in node.output}
    return {index for index, node in enumerate(graph.node)
            if node.op_type == "MatMul" and node.input[1] in weights
            and weights[node.input[1]].ndim == 2 and weights[node.input[1]].dtype == np.float32
            and producer.get(node.input[0]) != "LayerNormalization"}


class _Graph:
    """New nodes and initializers for `_rewrite_per_token`, named with a per-product prefix."""

    def __init__(self) -> None:
        from onnx import numpy_helper

        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self._array = numpy_helper.from_array
        for name, value in (("zero", 0.0), ("levels", ACTIVATION_LEVELS), ("one", 1.0),
                            ("tiny", 1e-12)):
            self.constant(f"pt_{name}", np.array(value, np.float32))
        self.constant("pt_last", np.array([-1], np.int64))
        self.constant("pt_first", np.array([0], np.int64))

    def constant(self, name: str, value: np.ndarray) -> str:
        self.constants.append(self._array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        from onnx import helper

        domain = "com.microsoft" if kind == "MatMulIntegerToFloat" else ""
        self.nodes.append(helper.make_node(kind, inputs, [output], name=output, domain=domain,
                                           **attributes))
        return output


def _quantize_rows(g: _Graph, x: str, p: str, depth: int) -> tuple[str, str, str, str]:
    """x as [rows, depth] uint8 per row (7-bit, asymmetric); (q, zero point [rows, 1] float,
    scale [rows, 1], x's leading shape)."""
    from onnx import TensorProto

    rows = g.op("Reshape", [x, g.constant(p + "k", np.array([-1, depth], np.int64))], p + "x2")
    high = g.op("Max", [g.op("ReduceMax", [rows], p + "mx", axes=[1], keepdims=0), "pt_zero"],
                p + "hi")
    low = g.op("Min", [g.op("ReduceMin", [rows], p + "mn", axes=[1], keepdims=0), "pt_zero"],
               p + "lo")
    scale = g.op("Max", [g.op("Div", [g.op("Sub", [high, low], p + "rg"), "pt_levels"],
                              p + "s0"), "pt_tiny"], p + "s")
    zero = g.op("Round", [g.op("Neg", [g.op("Div", [low, scale], p + "zn")], p + "zr")],
                p + "zf")
    quantized = g.op("QuantizeLinear",
                     [rows, scale, g.op("Cast", [zero], p + "zu", to=TensorProto.UINT8)],
                     p + "q", axis=0)
    lead = g.op("Slice", [g.op("Shape", [x], p + "shx"), "pt_first", "pt_last"], p + "lead")
    return (quantized, g.op("Unsqueeze", [zero, "pt_last"], p + "z1"),
            g.op("Unsqueeze", [scale, "pt_last"], p + "s1"), lead)


def _product(g: _Graph, node: Any, weight: np.ndarray, rows: tuple[str, str, str, str],
             p: str) -> None:
    """node's output = (q @ wq) * w_scale, less zero point x column sums, times the row scale."""
    quantized, zero, scale, lead = rows
    w_scale = (np.maximum(np.abs(weight).max(axis=0), 1e-12) / WEIGHT_LEVELS).astype(np.float32)
    wq = np.clip(np.round(weight / w_scale), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
    sums = (wq.astype(np.int64).sum(axis=0) * w_scale).astype(np.float32)
    product = g.op("MatMulIntegerToFloat",
                   [quantized, g.constant(p + "wq", wq), "pt_one", "pt_one"], p + "yf")
    scaled = g.op("Mul", [product, g.constant(p + "ws", w_scale)], p + "yw")
    shifted = g.op("Sub", [scaled, g.op("Mul", [zero, g.constant(p + "cs", sums)], p + "zc")],
                   p + "yc")
    out = g.op("Mul", [shifted, scale], p + "o2")
    shape = g.op("Concat", [lead, g.constant(p + "n", np.array([weight.shape[1]], np.int64))],
                 p + "shape", axis=0)
    g.op("Reshape", [out, shape], node.output[0])


def _rewrite_per_token(model: Any) -> int:
    """Replace `_per_token_matmuls` in `model` (in place) by per-token int8; their count.
    Products sharing an input share its quantization."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    chosen = _per_token_matmuls(graph, weights)
    g, nodes, shared = _Graph(), [], {}
    for index, node in enumerate(graph.node):
        if index not in chosen:
            nodes.append(node)
            continue
        weight, p, start = weights[node.input[1]], f"pt{index}_", len(g.nodes)
        if node.input[0] not in shared:
            shared[node.input[0]] = _quantize_rows(g, node.input[0], p, weight.shape[0])
        _product(g, node, weight, shared[node.input[0]], p)
        nodes.extend(g.nodes[start:])  # in the product's place: the graph stays in order
    used = {name for node in nodes for name in node.input}
    kept = [i for i in list(graph.initializer) + g.constants if i.name in used]
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(chosen)


def unmasked_module(model: Any, output_name: str, names: Sequence[str],
                    extra: dict[str, Any] | None = None, head: Any = None) -> Any:
    """A torch module for `add_onnx_model`: the token inputs `names` (positional, no attention
    mask: one unpadded text) to `model(...).<output_name>`, through `head` when given."""
    import torch

    class Unmasked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.head = head
            self.vocab_size = int(model.config.vocab_size)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            named = dict(zip(names, inputs))
            if "use_cache" in (extra or {}):  # a decoder: without a mask transformers looks
                # for packed sequences (aten::diff, which ONNX lacks); all ones is the same here
                named["attention_mask"] = torch.ones_like(inputs[0])
            output = getattr(self.model(**named, **(extra or {})), output_name)
            return output if self.head is None else self.head(output)

    return Unmasked().eval()
