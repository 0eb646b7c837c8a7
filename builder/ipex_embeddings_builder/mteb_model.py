"""mteb model wrappers: our OpenVINO `Encoder`, and the fp32 PyTorch reference it is judged by.

The reference is the source as its authors ship it: `SentenceTransformer(source)`, with its own
prompts, pooling, Dense, Normalize, do_lower_case, max_seq_length and truncate_dim, read by
sentence-transformers from the source's files, never rebuilt from our folder's JSON (which would
repeat any mistake of the import). Both map mteb's `prompt_type` to query and document prompts
and score with cosine, so a difference in any setting shows up as lost accuracy.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ScoringFunction
from mteb.types import PromptType

from ipex_embeddings import Encoder, ModelConfig, TruncationWarning

from .digest import sha256

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

__all__ = [
    "EncoderModel",
    "OutputSizeModel",
    "SourceReferenceModel",
    "encoder_model",
    "model_digest",
    "reference_source",
    "source_fingerprint",
]

PROGRESS_CHUNK = 128
"""Texts per progress-bar step: four batches, so the core still overlaps batches, and a bar moves
every 2 to 5 s in fp32 on 2 cores (SciFact's longest abstracts first), well within 30 s."""


def _kind(prompt_type: PromptType | None) -> str:
    # Symmetric tasks (prompt_type None) get the document prompt: the model's plain-text form
    # (empty for BGE-style models, whose query prompt is a retrieval instruction).
    return "query" if prompt_type == PromptType.query else "document"


def _meta(
    name: str, revision: str, dimension: int, max_tokens: int, prompted: bool,
    framework: list[str],
) -> ModelMeta:
    return ModelMeta.create_empty(
        overwrites={
            "name": name,
            "revision": revision or "unknown",
            "embed_dim": dimension,
            "max_tokens": max_tokens,
            "similarity_fn_name": ScoringFunction.COSINE,
            "framework": framework,
            "open_weights": True,
            "use_instructions": prompted,
        }
    )


def _config_meta(name: str, revision: str, config: ModelConfig, framework: list[str]) -> ModelMeta:
    return _meta(name, revision, config.truncate_dim or config.dimension, config.max_seq_length,
                 bool(config.query_prompt or config.document_prompt), framework)


class _TextModel(AbsEncoder):
    """Collects the texts of mteb's dataloader and embeds them in one call, longest first.

    Each distinct (prompt, text) is embedded once per model: the reranking task's documents are
    the retrieval task's, and encoding them again would only cost time.
    """

    dimension: int
    progress_label: str = ""
    """What its progress bars say it is ("fp32 reference (PyTorch)"); default: its mteb name."""
    _memo: dict[tuple[str, str], np.ndarray] | None = None

    def encode(
        self,
        inputs: DataLoader[Any],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every text of `inputs` with the query or document prompt, as `prompt_type` says."""
        texts = [text for batch in inputs for text in batch["text"]]
        kind = _kind(prompt_type)
        if self._memo is None:
            self._memo = {}
        memo = self._memo
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in memo]
        if missing:
            self._embed_with_progress(
                missing, kind, int(kwargs.get("batch_size", 32)), task_metadata.name
            )
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.stack([memo[(kind, t)] for t in texts])

    def _embed_with_progress(
        self, texts: list[str], kind: str, batch_size: int, task: str = ""
    ) -> None:
        """Embed into the memo in chunks of similar length, with a bar (texts/s) on stderr
        naming the model and what it embeds ("fp32 reference (PyTorch): SciFact documents")."""
        from tqdm.auto import tqdm

        ordered = sorted(texts, key=len, reverse=True)  # chunks keep the core's length sorting
        memo = self._memo if self._memo is not None else {}
        who = self.progress_label or self.mteb_model_meta.name.split("/")[-1]
        label = f"{who}: {task} {kind.replace('y', 'ie')}s".replace(":  ", ": ")
        with tqdm(total=len(ordered), desc=label, unit="text", mininterval=2.0,
                  disable=len(ordered) < PROGRESS_CHUNK) as bar:
            for start in range(0, len(ordered), PROGRESS_CHUNK):
                chunk = ordered[start : start + PROGRESS_CHUNK]
                memo.update(zip([(kind, t) for t in chunk], self.embed(chunk, kind, batch_size)))
                bar.update(len(chunk))

    @abstractmethod
    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """float32 vectors of `texts`, one row each."""


ENGINE_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX"}
"""Each engine (`ipex_embeddings.engines.ENGINES`) as mteb's `ModelMeta.framework` names it."""


class EncoderModel(_TextModel):
    """An ipex-embeddings model folder (int8, bf16 or fp32 IR) as an mteb encoder."""

    def __init__(self, encoder: Encoder, name: str | None = None) -> None:
        self.model = encoder
        self.config = encoder.config
        self.dimension = encoder.dimension
        label = name or f"ipex-embeddings/{encoder.folder.name}"
        self.progress_label = f"{encoder.config.precision} {label.split('/')[-1]}"
        self.mteb_model_meta = _config_meta(
            label,
            f"{self.config.precision}:{self.config.calibration_digest[:12]}",
            self.config,
            [ENGINE_NAMES.get(encoder.engine.name, encoder.engine.name)],
        )

    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """Texts longer than max_seq_length are cut, exactly as the reference cuts them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            return self.model.encode(  # type: ignore[arg-type]
                texts, kind, batch_size=batch_size, precision="float32"
            )


class SourceReferenceModel(_TextModel):
    """The source model as its authors ship it, in fp32 PyTorch: `SentenceTransformer(source)`.

    sentence-transformers reads every setting from the source's own files; only the prompts
    are picked here, as `ipex-embed quantize` picks them (source.py): queries get the "query"
    prompt, documents the first of "document", "passage", "corpus" (E5's "passage: ", which
    sentence-transformers' `encode_document` would skip), else the model's default prompt.
    A `truncate_dim` in config_sentence_transformers.json is applied (sentence-transformers
    6.2 reads it only as an argument).
    """

    def __init__(self, source: Path, revision: str = "") -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        from .source import DOCUMENT_PROMPT_NAMES, read_st_config

        transformers.utils.logging.disable_progress_bar()
        self.model = SentenceTransformer(
            str(source), device="cpu", truncate_dim=read_st_config(source).get("truncate_dim"),
            model_kwargs={"use_safetensors": True, "dtype": torch.float32},
        ).eval()
        # The names the source's file gives: sentence-transformers adds an empty "document"
        # (and "query") prompt to every model, which would hide E5's "passage".
        prompts = read_st_config(source).get("prompts") or {}
        self.prompt_names = {
            "query": "query" if "query" in prompts else None,
            "document": next((n for n in DOCUMENT_PROMPT_NAMES if n in prompts), None),
        }
        self.dimension = int(self.model.get_embedding_dimension())
        self.progress_label = "fp32 reference (PyTorch)"
        self.mteb_model_meta = _meta(
            source.name, revision, self.dimension, int(self.model.max_seq_length),
            any(self.model.prompts.values()), ["PyTorch", "Sentence Transformers"],
        )

    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """fp32 vectors; sentence-transformers sorts by length and truncates like the core."""
        vectors = self.model.encode(
            texts,
            prompt_name=self.prompt_names[kind],
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class OutputSizeModel(_TextModel):
    """An `EncoderModel` at a smaller output size, for mteb: its float32 vectors (remembered by
    the full-size model, so nothing is encoded twice) truncated and quantized as `Encoder.encode`
    does, then given to mteb as floats it can score by cosine: (u)binary as +1/-1 per bit (the
    cosine then ranks as the Hamming distance does), int8/uint8 as their bucket numbers.

    int8/uint8 ranges come from a documented source: the model's own vectors of the default
    calibration texts (`calibration.load_calibration()`: SciFact documents, train queries and
    short texts, each with its prompt), never from the texts being scored.
    """

    def __init__(self, full: EncoderModel, truncate_dim: int | None, precision: str) -> None:
        from ipex_embeddings.output import OUTPUT_PRECISIONS, check_truncate_dim

        check_truncate_dim(truncate_dim, full.config.dimension)
        if precision not in OUTPUT_PRECISIONS:
            raise ValueError(f"precision={precision!r}; use one of {OUTPUT_PRECISIONS}.")
        self.full = full
        self.size = (truncate_dim, precision)
        self.dimension = truncate_dim or full.config.dimension
        self.label = output_size_label(truncate_dim, precision)
        self.ranges = self._ranges() if precision in ("int8", "uint8") else None
        self.mteb_model_meta = _config_meta(
            f"{full.mteb_model_meta.name}-{self.label.replace(' ', '-')}",
            str(full.mteb_model_meta.revision), full.config, ["OpenVINO"],
        )

    def _ranges(self) -> np.ndarray:
        from ipex_embeddings.output import quantization_ranges, truncate

        from .calibration import load_calibration

        calibration = load_calibration()
        groups = [[t for i, t in enumerate(calibration.texts) if calibration.kind_of(i) == kind]
                  for kind in ("query", "document")]
        vectors = np.concatenate([self.full.embed(texts, kind, 32)
                                  for texts, kind in zip(groups, ("query", "document")) if texts])
        return quantization_ranges(truncate(vectors, self.size[0], self.full.config.normalize))

    def encode(self, inputs: DataLoader[Any], **kwargs: Any) -> np.ndarray:
        """The full-size model's vectors for `inputs`, at this output size (see the class)."""
        return self._resize(self.full.encode(inputs, **kwargs))

    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """`texts` at this output size, as floats (see the class)."""
        return self._resize(self.full.embed(texts, kind, batch_size))

    def _resize(self, vectors: np.ndarray) -> np.ndarray:
        from ipex_embeddings.output import quantize, truncate

        truncate_dim, precision = self.size
        small = quantize(truncate(vectors, truncate_dim, self.full.config.normalize), precision,
                         self.ranges)
        if precision.endswith("binary"):
            # binary is ubinary less 128: adding it back gives the packed bits.
            packed = small if precision == "ubinary" else (small.astype(np.int16) + 128)
            bits = np.unpackbits(packed.astype(np.uint8), axis=1)[:, : self.dimension]
            return bits.astype(np.float32) * 2 - 1
        return small.astype(np.float32)


def output_size_label(truncate_dim: int | None, precision: str) -> str:
    """How a report names an output size: "128-d binary", "full-size float32"."""
    return f"{f'{truncate_dim}-d' if truncate_dim else 'full-size'} {precision}"


_SHARED_MEMO: dict[str, dict[tuple[str, str], np.ndarray]] = {}


def model_digest(folder: Path, config: ModelConfig) -> str:
    """Digest of what computes the vectors: the IR and settings, not how the model was made."""
    settings = {k: v for k, v in vars(config).items() if k not in ("quantization", "source_model")}
    names = (config.model_file, str(Path(config.model_file).with_suffix(".bin")),
             *([config.onnx_file] if config.onnx_file else []))
    return sha256(repr(sorted(settings.items())), [folder / name for name in names])


def encoder_model(folder: str | Path) -> EncoderModel:
    """The folder's model as an mteb encoder. Its vectors are remembered for the process by the
    model's content (IR, settings), not its path: tuning's last candidate and the final folder
    are the same model, and the test split reuses the corpus the train split embedded."""
    encoder = Encoder.load(folder)
    # the engine too: on another CPU the same folder runs another engine's model
    key = f"{model_digest(encoder.folder, encoder.config)}:{encoder.engine.name}"
    if key not in _SHARED_MEMO:
        _SHARED_MEMO.clear()  # one model at a time, like the PyTorch reference
        _SHARED_MEMO[key] = {}
    model = EncoderModel(encoder)
    model._memo = _SHARED_MEMO[key]
    return model


def reference_source(config: ModelConfig, override: str | Path | None = None) -> Path:
    """The local folder of the fp32 source model: `override`, or `config.source_model` found as
    `ipex-embed quantize` found it (the shipped demo, a folder, or the Hub cache)."""
    from .source import inspect_source

    model = str(override) if override else config.source_model
    if not model:
        from .source import SourceModelError

        raise SourceModelError(
            "The model folder does not name its source model (source_model is empty), so there "
            "is no fp32 reference to compare with. Pass --reference SOURCE_FOLDER."
        )
    revision = None if override else (config.source_revision or None)
    return inspect_source(model, revision=revision).path


def source_fingerprint(source: Path, revision: str) -> str:
    """The revision when there is one, else a digest of the source's weights, config and the
    sentence-transformers and tokenizer files `SentenceTransformer(source)` reads."""
    if revision:
        return revision
    files = sorted({*source.glob("*.safetensors"), *source.glob("*.json"),
                    *source.glob("*/config.json"), *source.glob("*/*.safetensors")})
    return "sha256:" + sha256(files=files)[:16]
