"""The model card (README.md) of a cross-encoder folder: a reranker, not an embedding model.

Read from what the build wrote (the model JSON, validation.json/.md), like `card`'s bi-encoder
card, whose Hub front-matter helpers and licence handling it shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipex_embeddings import ModelConfig, __version__

from .card import CARD_NAME, REPO_ID, CardInputs, local_paths_out, read_optional_json

__all__ = ["render_cross_encoder_card", "write_cross_encoder_card"]

TAGS = ["openvino", "text-ranking", "cross-encoder", "reranker", "ipex-embeddings"]


def _front_matter(config: ModelConfig, inputs: CardInputs, hub_source: bool) -> str:
    from huggingface_hub import ModelCardData

    source = inputs.source_metadata or {}
    tags = [*TAGS, config.precision] + (["nncf", "static-quantization"]
                                        if config.precision == "int8" else [])
    data = ModelCardData(
        base_model=config.source_model if hub_source else None,
        base_model_relation="quantized" if hub_source else None,
        language=source.get("language"), license=source.get("license"),
        library_name="openvino", pipeline_tag="text-ranking", tags=tags,
    )
    return data.to_yaml()


def _validation_section(inputs: CardInputs, validation: dict[str, Any] | None) -> str:
    if validation is None:
        return "This model has not been validated: run `ipex-embed validate` on it.\n"
    markdown = inputs.folder / Path(inputs.validation_file).with_suffix(".md")
    lines = [
        "Measured by `ipex-embed validate` during the build: each SciFact test claim's BM25 top "
        f"{validation.get('depth', 100)} reranked by this model and by its fp32 source in "
        "sentence-transformers' `CrossEncoder` (PyTorch), scored by pytrec_eval. The gate is a "
        f"relative loss of at most {float(validation['max_loss']):g} % per metric; this model "
        f"{'passed' if validation.get('passed') else 'FAILED'} it.",
        "",
        local_paths_out(markdown.read_text().strip(), inputs.folder),
    ]
    if validation.get("subset"):
        lines += ["", f"These figures come from the first {validation['subset']} claims only (a "
                      "quick build); the full run is `ipex-embed validate` without `--subset`."]
    return "\n".join(lines) + "\n"


def _usage_section(config: ModelConfig, inputs: CardInputs) -> str:
    where = inputs.repo_id or f"./{inputs.folder.name}"
    return f"""Load it with `ipex_embeddings.CrossEncoder` (no torch needed; OpenVINO, or on
AVX2-only CPUs ONNX Runtime):

```python
from ipex_embeddings import CrossEncoder

reranker = CrossEncoder.load("{where}")
scores = reranker.score("what causes scurvy?", passages)       # one score per passage
best = reranker.rank("what causes scurvy?", passages, top_n=5)  # RankResult(index, score, text)
```

As a LlamaIndex node postprocessor, or a LangChain document compressor:

```python
from ipex_embeddings.llama_index import IPEXRerank
from ipex_embeddings.langchain import IPEXRerankCompressor

postprocessor = IPEXRerank(model="{where}", top_n=5)
compressor = IPEXRerankCompressor(model_name="{where}", top_n=5)
```

Pairs are (query, passage), query first; a pair over {config.max_seq_length} tokens keeps its
query whole and loses the end of its passage, with a counted `TruncationWarning`. Scores are the
classification head's logits through `{config.activation}`, as in the source.
"""


def render_cross_encoder_card(inputs: CardInputs) -> str:
    """The README.md text for a cross-encoder model folder."""
    config = ModelConfig.load(inputs.folder)
    validation = read_optional_json(inputs.folder / inputs.validation_file)
    source = config.source_model or "its source model"
    hub_source = bool(REPO_ID.match(source)) and not Path(source).exists()
    link = f"[{source}](https://huggingface.co/{source})" if hub_source else f"`{source}`"
    licence = (inputs.source_metadata or {}).get("license")
    record = config.quantization or {}
    calibration = (f"static int8 (NNCF, preset {record.get('preset')}), calibrated on "
                   f"{record.get('samples')} pairs: {record.get('calibration_source')}"
                   if config.precision == "int8" else config.precision)
    sections = [
        f"---\n{_front_matter(config, inputs, hub_source).strip()}\n---\n",
        f"# {(inputs.repo_id or inputs.folder.name).split('/')[-1]}\n",
        f"{link} as an OpenVINO {config.precision} **cross-encoder** (a reranker: it scores "
        "(query, passage) pairs, it does not embed texts), built with ipex-embeddings.\n",
        "## Model\n",
        f"- {config.dimension} logit(s) per pair, activation `{config.activation}`; "
        f"max_seq_length {config.max_seq_length} tokens per pair.\n- Quantization: "
        f"{calibration}.\n- Files: `openvino/openvino_model.xml` + `.bin`, `tokenizer.json`, "
        "`ipex_embeddings.json` (`\"kind\": \"cross-encoder\"`). No pickle files.\n",
        "## Accuracy\n", _validation_section(inputs, validation),
        "## Usage\n", _usage_section(config, inputs),
        "## Rebuild this model\n",
        f'```bash\npip install "ipex-embeddings[builder]=={__version__}"\n{inputs.command}\n```\n',
        "## Licence\n",
        (f"The same as the source model: `{licence}`." if licence
         else f"Not stated in the source model's card: check {link} before use.") + "\n",
    ]
    return "\n".join(sections)


def write_cross_encoder_card(inputs: CardInputs) -> Path:
    """Render the card and write it as README.md in the model folder."""
    path = inputs.folder / CARD_NAME
    path.write_text(render_cross_encoder_card(inputs))
    return path
