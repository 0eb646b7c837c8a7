"""mteb model wrappers: our OpenVINO `Encoder`, and the fp32 PyTorch reference it is judged by.

Both map mteb's `prompt_type` to the model folder's query and document prompts, read the same
max_seq_length, pooling and normalisation from the folder's config, and score with cosine, so
that the only difference between them is the runtime and the precision.
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
    "TorchReferenceModel",
    "encoder_model",
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


def _meta(name: str, revision: str, config: ModelConfig, framework: list[str]) -> ModelMeta:
    return ModelMeta.create_empty(
        overwrites={
            "name": name,
            "revision": revision or "unknown",
            "embed_dim": config.dimension,
            "max_tokens": config.max_seq_length,
            "similarity_fn_name": ScoringFunction.COSINE,
            "framework": framework,
            "open_weights": True,
            "use_instructions": bool(config.query_prompt or config.document_prompt),
        }
    )


class _TextModel(AbsEncoder):
    """Collects the texts of mteb's dataloader and embeds them in one call, longest first.

    Each distinct (prompt, text) is embedded once per model: the reranking task's documents are
    the retrieval task's, and encoding them again would only cost time.
    """

    config: ModelConfig
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
            self._embed_with_progress(missing, kind, int(kwargs.get("batch_size", 32)))
        if not texts:
            return np.empty((0, self.config.dimension), dtype=np.float32)
        return np.stack([memo[(kind, t)] for t in texts])

    def _embed_with_progress(self, texts: list[str], kind: str, batch_size: int) -> None:
        """Embed into the memo in chunks of similar length, with a bar (texts/s) on stderr."""
        from tqdm.auto import tqdm

        ordered = sorted(texts, key=len, reverse=True)  # chunks keep the core's length sorting
        memo = self._memo if self._memo is not None else {}
        label = f"{self.mteb_model_meta.name.split('/')[-1]}: {kind.replace('y', 'ie')}s"
        with tqdm(total=len(ordered), desc=label, unit="text", mininterval=2.0,
                  disable=len(ordered) < PROGRESS_CHUNK) as bar:
            for start in range(0, len(ordered), PROGRESS_CHUNK):
                chunk = ordered[start : start + PROGRESS_CHUNK]
                memo.update(zip([(kind, t) for t in chunk], self.embed(chunk, kind, batch_size)))
                bar.update(len(chunk))

    @abstractmethod
    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """float32 vectors of `texts`, one row each."""


class EncoderModel(_TextModel):
    """An ipex-embeddings model folder (int8, bf16 or fp32 IR) as an mteb encoder."""

    def __init__(self, encoder: Encoder, name: str | None = None) -> None:
        self.model = encoder
        self.config = encoder.config
        label = name or f"ipex-embeddings/{encoder.folder.name}"
        self.mteb_model_meta = _meta(
            label,
            f"{self.config.precision}:{self.config.calibration_digest[:12]}",
            self.config,
            ["OpenVINO"],
        )

    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """Texts longer than max_seq_length are cut, exactly as the reference cuts them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            return self.model.encode(texts, kind, batch_size=batch_size)  # type: ignore[arg-type]


class TorchReferenceModel(_TextModel):
    """The source model in fp32 PyTorch (sentence-transformers), set up as the folder says."""

    def __init__(self, source: Path, config: ModelConfig, revision: str = "") -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )

        transformers.utils.logging.disable_progress_bar()
        modules: list[torch.nn.Module] = [
            Transformer(
                str(source),
                max_seq_length=config.max_seq_length,
                model_kwargs={"use_safetensors": True, "dtype": torch.float32},
            ),
            Pooling(config.dimension, pooling_mode=config.pooling,
                    include_prompt=config.include_prompt),
        ]
        if config.normalize:
            modules.append(Normalize())
        self.model = SentenceTransformer(modules=modules, device="cpu").eval()
        self.config = config
        self.mteb_model_meta = _meta(
            config.source_model or str(source),
            revision,
            config,
            ["PyTorch", "Sentence Transformers"],
        )

    def embed(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        """fp32 vectors; sentence-transformers sorts by length and truncates like the core."""
        prompt = self.config.prompt(kind) or None
        vectors = self.model.encode(
            texts,
            prompt=prompt,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_SHARED_MEMO: dict[str, dict[tuple[str, str], np.ndarray]] = {}


def _model_digest(folder: Path, config: ModelConfig) -> str:
    # What computes the vectors: the IR and the settings, not the records of how it was made.
    settings = {k: v for k, v in vars(config).items() if k not in ("quantization", "source_model")}
    names = (config.model_file, str(Path(config.model_file).with_suffix(".bin")))
    return sha256(repr(sorted(settings.items())), [folder / name for name in names])


def encoder_model(folder: str | Path) -> EncoderModel:
    """The folder's model as an mteb encoder. Its vectors are remembered for the process by the
    model's content (IR, settings), not its path: tuning's last candidate and the final folder
    are the same model, and the test split reuses the corpus the train split embedded."""
    encoder = Encoder.load(folder)
    key = _model_digest(encoder.folder, encoder.config)
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
    """The revision when there is one, else a digest of the source's weights and config."""
    if revision:
        return revision
    files = sorted([*source.glob("*.safetensors"), source / "config.json"])
    return "sha256:" + sha256(files=files)[:16]
