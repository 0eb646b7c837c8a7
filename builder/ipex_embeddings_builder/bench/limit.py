"""Distance to the limit: the int8 operations a model does per document, counted from its IR.

The IR is reshaped to a static [batch, seq_len] and every MatMul is counted as M x K x N
multiply-accumulates. A MatMul is int8 when its activation input comes from a FakeQuantize and
its weight from an int8 constant (how NNCF's static quantization leaves it). Attention
(ScaledDotProductAttention: Q.K^T and A.V) stays in floating point and is counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MacCount", "count_macs", "distance_to_limit"]

# Ops a value passes through unchanged in kind between a quantizer and a MatMul.
PASS_THROUGH = {"Reshape", "Transpose", "Convert", "Multiply", "Subtract", "Squeeze", "Unsqueeze"}


@dataclass
class MacCount:
    """Multiply-accumulates of one forward pass, split into int8 MatMuls and the rest."""

    batch: int
    seq_len: int
    int8_matmul: int
    float_matmul: int
    attention: int

    @property
    def total(self) -> int:
        return self.int8_matmul + self.float_matmul + self.attention


def _reaches(node: Any, wanted: Any) -> bool:
    """Whether `node` is, or passes through PASS_THROUGH ops from, a node `wanted` accepts."""
    seen = 0
    stack = [node]
    while stack and seen < 64:
        current = stack.pop()
        seen += 1
        if wanted(current):
            return True
        if current.get_type_name() in PASS_THROUGH:
            stack.extend(i.get_source_output().get_node() for i in current.inputs())
    return False


def _is_quantizer(node: Any) -> bool:
    return node.get_type_name() == "FakeQuantize"


def _is_int8_constant(node: Any) -> bool:
    import openvino as ov

    low_bits = (ov.Type.i8, ov.Type.u8, ov.Type.i4, ov.Type.u4)
    return node.get_type_name() == "Constant" and node.get_output_element_type(0) in low_bits


def count_macs(model_xml: str | Path, batch: int, seq_len: int) -> MacCount:
    """Count the MACs of one [batch, seq_len] forward pass of the IR at `model_xml`."""
    from ipex_embeddings.encoder import openvino_core

    model = openvino_core().read_model(str(model_xml))
    model.reshape({port.get_any_name(): [batch, seq_len] for port in model.inputs})
    int8 = floating = attention = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "MatMul":
            shape_a = list(op.input(0).get_shape())
            transpose_a = op.get_attributes().get("transpose_a", False)
            inner = shape_a[-2] if transpose_a else shape_a[-1]
            outputs = 1
            for size in op.output(0).get_shape():
                outputs *= size
            macs = outputs * inner
            sources = [i.get_source_output().get_node() for i in op.inputs()]
            if _reaches(sources[0], _is_quantizer) and _reaches(sources[1], _is_int8_constant):
                int8 += macs
            else:
                floating += macs
        elif kind == "ScaledDotProductAttention":
            query, key = list(op.input(0).get_shape()), list(op.input(1).get_shape())
            value = list(op.input(2).get_shape())
            heads_batch = 1
            for size in query[:-2]:
                heads_batch *= size
            # Q.K^T: [.., Lq, d] x [.., d, Lk]; A.V: [.., Lq, Lk] x [.., Lk, dv]
            attention += heads_batch * query[-2] * key[-2] * (query[-1] + value[-1])
    return MacCount(batch, seq_len, int8, floating, attention)


def distance_to_limit(
    model_xml: str | Path, seq_len: int, docs_per_s: float, peak_ops_per_s: float | None
) -> dict[str, Any]:
    """Achieved int8 operations per second at `docs_per_s`, and its share of the peak."""
    macs = count_macs(model_xml, 1, seq_len)
    achieved = 2 * macs.int8_matmul * docs_per_s
    return {
        "seq_len": seq_len,
        "int8_macs_per_doc": macs.int8_matmul,
        "float_matmul_macs_per_doc": macs.float_matmul,
        "attention_macs_per_doc": macs.attention,
        "docs_per_s": docs_per_s,
        "achieved_int8_ops_per_s": achieved,
        "peak_int8_ops_per_s": peak_ops_per_s,
        "percent_of_peak": 100 * achieved / peak_ops_per_s if peak_ops_per_s else None,
        "mac_source": "counted from the IR (MatMul shapes at batch 1)",
    }
