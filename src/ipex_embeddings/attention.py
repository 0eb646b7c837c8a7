"""Attention in bf16 on CPUs with native bf16 (AMX, AVX512_BF16), the rest as the folder says.

An int8 folder runs its matrix products with weights (the FullyConnected layers) in int8; the
attention itself (OpenVINO's `ScaledDotProductAttention`, which the CPU plugin runs as one fused
kernel) has no weights and runs in the folder's `inference_precision`, f32 by default. Where the
CPU computes bf16 natively, running only the attention in bf16 is faster and keeps fidelity,
while bf16 everywhere else does not (all-MiniLM-L6-v2 int8, AMX Xeon, 2 cores, 16 SciFact
abstracts at 256 tokens: 114 ms a batch with f32 attention, 105 with bf16 attention, 102 with
`inference_precision` bf16; fidelity set against sentence-transformers fp32: mean 0.9912 / min
0.9413 f32, 0.9912 / 0.9426 bf16 attention, 0.9788 / 0.8535 bf16 everywhere).

The conversions sit where they cost least: at the top of each input's chain of layout ops
(Reshape, Transpose, FakeQuantize) and after the output's, so the CPU plugin fuses them into
the neighbouring kernels instead of running them alone.
"""

from __future__ import annotations

import openvino as ov
import openvino.opset13 as opset

from .config import ModelConfig

__all__ = ["ATTENTION_OP", "convert_attention_to_bf16", "run_precisions"]

ATTENTION_OP = "ScaledDotProductAttention"
LAYOUT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze")
"""Ops between a projection and the attention that only move values."""


def run_precisions(config: ModelConfig, native_bf16: bool) -> tuple[str, str]:
    """(inference precision, attention precision) the folder runs at here: "f32" or "bf16".

    `native_bf16`: OpenVINO lists BF16 among the CPU's optimization capabilities (AMX,
    AVX512_BF16). `config.inference_precision` "auto" is bf16 there, else f32. The attention
    runs in bf16 wherever the other layers natively do; under f32,
    `config.attention_precision` "auto" is bf16 for an int8 folder on a CPU with native bf16.
    """
    inference = config.inference_precision
    if inference == "auto":
        inference = "bf16" if native_bf16 else "f32"
    if inference == "bf16":  # emulated without native bf16: leave the attention to OpenVINO
        return inference, "bf16" if native_bf16 else "f32"
    attention = config.attention_precision
    if attention == "auto":
        attention = "bf16" if config.precision == "int8" and native_bf16 else "f32"
    return inference, attention


def _strip_chain_to_top(port: ov.Input) -> ov.Input:
    """The input at the top of the layout-op chain feeding `port` (each op used only there),
    after taking every FakeQuantize in the chain out of the graph (bf16 attention reads its
    inputs unquantized; a FakeQuantize fed bf16 computes wrong values on the CPU plugin: cosine
    to fp32 0.977)."""
    while True:
        producer = port.get_source_output()
        node = producer.get_node()
        if len(producer.get_target_inputs()) != 1:
            return port
        if node.get_type_name() == "FakeQuantize":
            port.replace_source_output(node.input_value(0))
        elif node.get_type_name() in LAYOUT_OPS:
            port = node.input(0)
        else:
            return port


def _end_of_chain(output: ov.Output) -> ov.Output:
    """The output at the end of the layout-op chain that `output` alone feeds."""
    while len(output.get_target_inputs()) == 1:
        node = next(iter(output.get_target_inputs())).get_node()
        if node.get_type_name() not in LAYOUT_OPS:
            break
        output = node.output(0)
    return output


def _convert_into(port: ov.Input, precision: ov.Type) -> None:
    port.replace_source_output(opset.convert(port.get_source_output(), precision).output(0))


def convert_attention_to_bf16(model: ov.Model) -> int:
    """Run every f32 `ScaledDotProductAttention` of `model` (changed in place) in bf16: its
    query, key, value and scale inputs are converted to bf16 and its output back to f32.

    Returns:
        The number of attention ops converted (0 when the IR has none, e.g. an export with the
        attention spelt out as MatMul and Softmax).
    """
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != ATTENTION_OP or op.get_output_element_type(0) != ov.Type.f32:
            continue
        for index in range(op.get_input_size()):
            if op.get_input_element_type(index) == ov.Type.f32:  # not the boolean mask
                _convert_into(_strip_chain_to_top(op.input(index)), ov.Type.bf16)
        output = _end_of_chain(op.output(0))
        targets = list(output.get_target_inputs())
        back = opset.convert(output, ov.Type.f32).output(0)
        for target in targets:
            target.replace_source_output(back)
        count += 1
    if count:
        model.validate_nodes_and_infer_types()
    return count
