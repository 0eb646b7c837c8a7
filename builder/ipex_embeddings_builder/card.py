"""The model card (README.md): Hub front matter, accuracy and speed tables, usage, how to rebuild.

Everything in it is read from files the build wrote: the model JSON, validation.json,
bench.json/bench.md and the plots. Nothing is typed in by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipex_embeddings import ModelConfig, __version__

from .calibration import DEFAULT_CALIBRATION
from .commandline import command_line
from .validation_report import change_text

__all__ = [
    "CardInputs", "local_paths_out", "read_optional_json", "read_source_metadata", "render_card",
    "write_card",
]

CARD_NAME = "README.md"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
BASE_TAGS = ["openvino", "feature-extraction", "sentence-similarity", "text-embeddings",
             "ipex-embeddings"]


@dataclass
class CardInputs:
    """What the card is made from, besides the files in the model folder."""

    folder: Path
    command: str
    """The exact `ipex-embed build ...` line that rebuilds this model."""
    repo_id: str | None = None
    """Where the model is (or will be) published; the usage examples load it from there."""
    source_metadata: dict[str, Any] | None = None
    """The source model card's front matter (licence, language), when it has one."""
    validation_file: str = "validation.json"
    bench_dir: str = "bench"
    sentence_transformers: bool = False
    """Whether the folder was checked to load in sentence-transformers with backend="openvino"."""


def read_source_metadata(source_path: Path, model_id: str, revision: str | None) -> dict[str, Any]:
    """The front matter of the source model's README.md (fetched from the Hub if not local)."""
    from huggingface_hub import metadata_load

    readme = source_path / CARD_NAME
    if not readme.is_file() and REPO_ID.match(model_id) and not Path(model_id).exists():
        try:
            from huggingface_hub import hf_hub_download

            readme = Path(hf_hub_download(model_id, CARD_NAME, revision=revision or None))
        except Exception:  # offline, no README, gated: the card then says the licence is unknown
            return {}
    if not readme.is_file():
        return {}
    try:
        return metadata_load(readme) or {}
    except Exception:  # malformed YAML in someone else's card must not stop our build
        return {}


def read_optional_json(path: Path) -> dict[str, Any] | None:
    """The JSON file at `path` (a report such as validation.json), or None when it is absent."""
    return json.loads(path.read_text()) if path.is_file() else None


def _task_type(task: str) -> str:
    return "Reranking" if "rerank" in task.lower() else "Retrieval"


def _dataset_type(task: str) -> str:
    return "mteb/scifact" if task.lower().startswith("scifact") else task.lower()


def _front_matter(
    config: ModelConfig, inputs: CardInputs, validation: dict[str, Any] | None
) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    source = inputs.source_metadata or {}
    is_hub_source = bool(REPO_ID.match(config.source_model)) and not Path(
        config.source_model
    ).exists()
    validation = validation or {}
    subset = f" (first {validation['subset']} queries)" if validation.get("subset") else ""
    eval_results = [
        EvalResult(
            task_type=row.get("task_type") or _task_type(row["task"]),
            dataset_type=_dataset_type(row["task"]),
            dataset_name=f"{row['task']}{subset}",
            dataset_split=row.get("split") or validation.get("split", "test"),
            metric_type=row["metric"],
            metric_value=round(float(row["int8"]), 4),
        )
        for row in validation.get("rows", [])
    ]
    tags = [*BASE_TAGS, config.precision]
    if config.precision == "int8":
        tags += ["nncf", "static-quantization"]
    if inputs.sentence_transformers:
        tags.append("sentence-transformers")
    model_name = (inputs.repo_id or inputs.folder.name).split("/")[-1]
    data = ModelCardData(
        base_model=config.source_model if is_hub_source else None,
        base_model_relation="quantized" if is_hub_source else None,
        language=source.get("language"),
        license=source.get("license"),
        license_name=source.get("license_name"),
        license_link=source.get("license_link"),
        library_name="openvino",
        pipeline_tag="feature-extraction",
        tags=tags,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    return data.to_yaml()


def _validation_section(inputs: CardInputs, validation: dict[str, Any] | None) -> str:
    folder = inputs.folder
    if validation is None:
        return "This model has not been validated: run `ipex-embed validate` on it.\n"
    lines = [
        "Measured by `ipex-embed validate` during the build: mteb on the vendored SciFact data "
        "(BEIR test queries), this model next to its fp32 PyTorch source. The gate is a relative "
        f"loss of at most {float(validation['max_loss']):g} % per task; this model "
        f"{'passed' if validation.get('passed') else 'FAILED'} it.",
        "",
    ]
    markdown = folder / Path(inputs.validation_file).with_suffix(".md")  # written with the JSON
    lines.append(local_paths_out(markdown.read_text().strip(), folder))
    subset = validation.get("subset")
    if subset:
        lines += ["", f"These figures come from the first {subset} queries only (a quick build); "
                      "the full run is `ipex-embed validate` without `--subset`."]
    return "\n".join(lines) + "\n"


def local_paths_out(markdown: str, folder: Path) -> str:
    """A report's markdown for the card: the folder by its name, not its path on the builder."""
    return _demote_headings(markdown.replace(str(folder.resolve()), folder.name))


def _untrusted_speed(bench_dir: Path) -> list[str] | None:
    """Why the bench's speed figures must stay out of the card (None: they may go in).

    The bench records the load average around each round and the spread of each figure over
    the rounds (bench.json's speed_trust); a run on a busy machine, of too few rounds or with
    rounds that disagree gives figures that would mislead whoever reads the card.
    """
    data = read_optional_json(bench_dir / "bench.json")
    if data is None:
        return ["bench.json is missing"]
    trust = data.get("speed_trust")
    if trust is None:
        return ["this bench.json records neither the load average nor the spread of its figures "
                "(it predates them)"]
    return None if trust.get("trusted") else list(trust.get("reasons") or ["unknown"])


def _bench_section(inputs: CardInputs) -> str:
    bench_dir = inputs.folder / inputs.bench_dir
    markdown = bench_dir / "bench.md"
    if not markdown.is_file():
        return (
            "Not benchmarked in this build (`--bench skip`). Measure it on your own CPU with "
            f"`{command_line('bench', inputs.folder.name)}`.\n"
        )
    untrusted = _untrusted_speed(bench_dir)
    if untrusted:
        return (
            "The speed figures measured during the build are left out of this card, because "
            + "; ".join(untrusted) + ". Figures from such a run would not describe this model "
            f"fairly. Measure it on your own CPU, on a quiet machine, with "
            f"`{command_line('bench', inputs.folder.name)}`.\n"
        )
    prefix = bench_dir.relative_to(inputs.folder).as_posix()
    text = local_paths_out(markdown.read_text().strip(), inputs.folder)
    # bench.md links its plots relative to its own folder; the card sits one level up.
    text = re.sub(r"(!\[[^\]]*\]\()(?![a-z]+://|/)([^)]+\))", rf"\g<1>{prefix}/\g<2>", text)
    missing = [p for p in sorted(bench_dir.glob("*.png")) if f"{prefix}/{p.name}" not in text]
    text += "".join(f"\n![{p.stem}]({prefix}/{p.name})" for p in missing)
    intro = (
        "Measured by `ipex-embed bench` during the build, on the machine that built it (its CPU "
        "and load are listed below): speed depends on the CPU, so measure it on yours with "
        f"`{command_line('bench', inputs.folder.name)}`."
    )
    return f"{intro}\n\n{text}\n"


def _demote_headings(markdown: str) -> str:
    """Put a section's own headings under the card's `##` level."""
    return re.sub(r"^(#{1,5}) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", markdown,
                  flags=re.MULTILINE)


def _usage_section(config: ModelConfig, inputs: CardInputs) -> str:
    name = inputs.repo_id or f"./{inputs.folder.name}"
    blocks = [
        "### ipex-embeddings",
        "",
        "```bash\npip install ipex-embeddings\n```",
        "",
        "```python",
        "from ipex_embeddings import Encoder",
        "",
        f'encoder = Encoder.load("{name}")',
        'queries = encoder.encode_queries(["What lowers the risk of heart disease?"])',
        "documents = encoder.encode_documents([",
        '    "Regular exercise reduces cardiovascular risk.",',
        '    "The cell cycle is controlled by cyclins.",',
        "])",
        f"scores = queries @ documents.T  # {'cosine similarities: the vectors are unit length' if config.normalize else 'dot products'}",  # noqa: E501
        "```",
        "",
        "### LangChain",
        "",
        "```bash\npip install \"ipex-embeddings[langchain]\"\n```",
        "",
        "```python",
        "from ipex_embeddings.langchain import IPEXEmbeddings",
        "",
        f'embeddings = IPEXEmbeddings(model_name="{name}")',
        'vector = embeddings.embed_query("What lowers the risk of heart disease?")',
        "```",
        "",
        "### LlamaIndex",
        "",
        "```bash\npip install \"ipex-embeddings[llama-index]\"\n```",
        "",
        "```python",
        "from llama_index.core import Settings",
        "from ipex_embeddings.llama_index import IPEXEmbedding, IPEXRerank",
        "",
        f'Settings.embed_model = IPEXEmbedding(model_name="{name}")',
        f'rerank = IPEXRerank(model="{name}", top_n=3)  # as a node postprocessor',
        "```",
    ]
    if inputs.sentence_transformers:
        blocks += [
            "",
            "### sentence-transformers",
            "",
            "The folder also holds the source's sentence-transformers files, and its IR sits where "
            "the OpenVINO backend looks for it (`openvino/openvino_model.xml`):",
            "",
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "",
            f'model = SentenceTransformer("{name}", backend="openvino")',
            "```",
        ]
    return "\n".join(blocks) + "\n"


def _layer_precision(config: ModelConfig) -> str:
    """How the card names the precision of the layers not in int8."""
    if config.inference_precision == "auto":
        return ("bf16 on CPUs that compute bf16 natively (AMX, AVX512_BF16), else f32 "
                "(`inference_precision: auto`)")
    return config.inference_precision


def _quantization_line(config: ModelConfig, calibration: str) -> str:
    """How the int8 model was made: its scheme (`schemes`), and the calibration it read."""
    quantization = config.quantization or {}
    if quantization.get("activations") == "float":
        return (
            "- Quantization: int8 weights only (NNCF weight compression, "
            f"`{quantization.get('weight_compression', 'int8_asym')}`, per output channel); "
            f"activations run in {_layer_precision(config)}, so no calibration texts were used."
        )
    alpha = quantization.get("smooth_quant_alpha")
    return (
        f"- Quantization: static int8 with NNCF (`{quantization.get('preset', 'mixed')}` "
        "preset, transformer model type"
        + (f", SmoothQuant alpha {alpha:g}" if alpha is not None else "")
        + f"), calibrated on {quantization.get('samples', '?')} "
        f"texts from {calibration or 'the calibration file'} "
        f"(sha256 `{config.calibration_digest[:16]}...`)."
    )


def _model_section(config: ModelConfig) -> str:
    quantization = config.quantization or {}
    kept = quantization.get("keep_higher_precision") or []
    calibration = str(quantization.get("calibration_source", ""))
    if Path(calibration) == DEFAULT_CALIBRATION:
        calibration = "the SciFact corpus (BEIR, vendored in ipex-embeddings)"
    elif calibration:
        calibration = f"`{Path(calibration).name}`"
    prompts = [
        f"queries are prefixed with `{config.query_prompt!r}`" if config.query_prompt else "",
        f"documents with `{config.document_prompt!r}`" if config.document_prompt else "",
    ]
    prompt_text = "; ".join(p for p in prompts if p) or "no prompts are added"
    lines = [
        f"- Output: {config.truncate_dim or config.dimension}-dimensional float32 vectors, "
        f"{config.pooling} pooling, "
        f"{'L2-normalised' if config.normalize else 'not normalised'}; {prompt_text}.",
        f"- Longest input: {config.max_seq_length} tokens (longer texts are truncated with a "
        'warning, or refused with `truncation="error"`).',
        f"- Weights: {config.precision}; other layers run in {_layer_precision(config)}.",
    ]
    if config.precision == "int8":
        lines.append(_quantization_line(config, calibration))
        lines.append(
            f"- Layers kept in higher precision: {', '.join(f'`{k}`' for k in kept)}."
            if kept else "- Every quantizable layer is in int8."
        )
        tuning = quantization.get("tuning")
        if tuning and tuning.get("steps"):
            final = tuning["steps"][-1]
            losses = ", ".join(f"{task} {change_text(loss)}"
                               for task, loss in final["losses"].items())
            queries = f"the first {tuning['subset']}" if tuning.get("subset") else "all"
            lines.append(
                f"- Accuracy-aware tuning on {queries} SciFact {tuning.get('split', 'train')} "
                f"queries (not the ones reported below), limit {tuning['max_loss']:g} % per task: "
                f"{len(tuning['steps'])} candidate(s) tried; the one kept "
                f"({final.get('scheme', 'static')}) changed the scores by {losses}."
            )
    onnx = (f", `{config.onnx_file}` (the ONNX Runtime int8 model that `Encoder.load` runs on "
            "CPUs without int8 dot-product instructions, AVX2 only)" if config.onnx_file else "")
    lines.append(
        "- Files: `openvino/openvino_model.xml` + `.bin` (the OpenVINO IR, run where the CPU has "
        f"AVX-512 VNNI, AVX-VNNI or AMX){onnx}, `tokenizer.json`, `ipex_embeddings.json` "
        "(pooling, prompts, length, provenance). No pickle files: loading never unpickles "
        "anything."
    )
    return "\n".join(lines) + "\n"


def render_card(inputs: CardInputs) -> str:
    """The README.md text for the model folder."""
    config = ModelConfig.load(inputs.folder)
    validation = read_optional_json(inputs.folder / inputs.validation_file)
    source = config.source_model or "its source model"
    is_hub_source = bool(REPO_ID.match(config.source_model)) and not Path(source).exists()
    source_link = f"[{source}](https://huggingface.co/{source})" if is_hub_source else f"`{source}`"
    revision = f" (revision `{config.source_revision}`)" if config.source_revision else ""
    title = (inputs.repo_id or inputs.folder.name).split("/")[-1]
    licence = (inputs.source_metadata or {}).get("license")
    licence_text = (
        f"The same as the source model: `{licence}`."
        if licence else f"Not stated in the source model's card: check {source_link} before use."
    )
    sections = [
        f"---\n{_front_matter(config, inputs, validation).strip()}\n---\n",
        f"# {title}\n",
        f"{source_link}{revision} as an OpenVINO {config.precision} model, for fast text "
        f"embeddings on Intel and other x86 CPUs, built with ipex-embeddings.\n",
        "## Model\n",
        _model_section(config),
        "## Accuracy\n",
        _validation_section(inputs, validation),
        "## Speed\n",
        _bench_section(inputs),
        "## Usage\n",
        _usage_section(config, inputs),
        "## Rebuild this model\n",
        "Every figure above was produced by this command (validation and benchmark included):\n",
        f'```bash\npip install "ipex-embeddings[builder]=={__version__}"\n{inputs.command}\n```\n',
        "## Licence\n",
        licence_text + "\n",
    ]
    return "\n".join(sections)


def write_card(inputs: CardInputs) -> Path:
    """Render the card and write it as README.md in the model folder."""
    path = inputs.folder / CARD_NAME
    path.write_text(render_card(inputs))
    return path
