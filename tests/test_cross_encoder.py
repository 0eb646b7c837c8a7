"""Cross-encoders: the folder's kind, the runtime `CrossEncoder`, the export, and the rerankers.

Tiny random BERT, XLM-R and ModernBERT sequence classifiers are made here (hidden 64, 2 layers,
initializer_range=0.2 so scores spread); they only show that export, tokenization, padding,
activation and ranking match sentence-transformers, never accuracy.
"""

from __future__ import annotations

import copy
import json
import string
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import WORDS

from ipex_embeddings import (
    CrossEncoder,
    Encoder,
    InvalidTextError,
    ModelConfig,
    ModelFolderError,
    TruncationError,
    TruncationWarning,
)
from ipex_embeddings.cross_encoder import folder_config

FAMILIES = ("bert", "xlm-roberta", "modernbert")
# Per family: the special tokens (cls, sep, pad, unk, mask) and the pair template.
SPECIALS = {
    "bert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
    "xlm-roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "modernbert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"),
}
QUERY = "cancer risk of the gene"
TEXTS = [
    "the gene is a cancer risk",
    "hello world",
    "patients with increased risk of cancer in the study",
    "",
    "protein of the cell",
    "a short text",
    "the model is a test of this vector",
]


def _tokenizer(family: str, folder: Path, max_length: int) -> None:
    """A WordPiece tokenizer with the family's special tokens and pair template, saved with
    transformers (tokenizer.json + tokenizer_config.json) so sentence-transformers loads it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    cls, sep, pad, unk, mask = SPECIALS[family]
    specials = [cls, pad, sep, unk, mask] if family == "xlm-roberta" else [pad, unk, cls, sep, mask]
    letters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab_list = specials + sorted(set(WORDS)) + letters + [f"##{c}" for c in letters]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pair = {
        "bert": f"{cls} $A {sep} $B:1 {sep}:1",
        "xlm-roberta": f"{cls} $A {sep} {sep} $B {sep}",
        "modernbert": f"{cls} $A {sep} $B {sep}",
    }[family]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair,
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    tokenizer.enable_padding(pad_id=vocab[pad], pad_token=pad)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk,
        mask_token=mask, model_max_length=max_length,
        # BERT's tokenizer returns the segment ids; the others' models take none
        model_input_names=["input_ids", "attention_mask"]
        + (["token_type_ids"] if family == "bert" else []),
    ).save_pretrained(folder)


def _model_config(family: str, vocab: dict[str, int], num_labels: int) -> Any:
    import transformers

    cls, sep, pad, _, _ = SPECIALS[family]
    common = {
        "vocab_size": len(vocab), "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "initializer_range": 0.2,
        "num_labels": num_labels, "pad_token_id": vocab[pad], "max_position_embeddings": 128,
    }
    if family == "bert":
        return transformers.BertConfig(**common)
    if family == "xlm-roberta":
        return transformers.XLMRobertaConfig(
            **common, bos_token_id=vocab[cls], eos_token_id=vocab[sep], type_vocab_size=1
        )
    return transformers.ModernBertConfig(
        **common, cls_token_id=vocab[cls], sep_token_id=vocab[sep], bos_token_id=vocab[cls],
        eos_token_id=vocab[sep], global_attn_every_n_layers=2, local_attention=16,
    )


def make_cross_encoder(folder: Path, family: str, num_labels: int = 1, seed: int = 0) -> Path:
    """A randomly initialised 2-layer `<Family>ForSequenceClassification` saved in `folder`."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer(family, folder, max_length=120)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(seed)
    classes = {
        "bert": transformers.BertForSequenceClassification,
        "xlm-roberta": transformers.XLMRobertaForSequenceClassification,
        "modernbert": transformers.ModernBertForSequenceClassification,
    }
    model = classes[family](_model_config(family, vocab, num_labels)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def st_cross_encoder(source: Path) -> Any:
    from sentence_transformers import CrossEncoder as STCrossEncoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return STCrossEncoder(str(source), device="cpu")


def build(source: Path, output: Path, precision: str = "fp32", **kwargs: Any) -> Path:
    from ipex_embeddings_builder.cross_encoder import quantize_cross_encoder

    quantize_cross_encoder(source, output, precision, **kwargs)
    return output


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per family: the transformers folder and the sentence-transformers `CrossEncoder.save`
    folder of the same weights."""
    made = {}
    for family in FAMILIES:
        base = tmp_path_factory.mktemp(family)
        hf = make_cross_encoder(base / "hf", family)
        st_dir = base / "st"
        st_cross_encoder(hf).save(str(st_dir))
        made[family] = (hf, st_dir)
    return made


@pytest.fixture(scope="module")
def fp32_dirs(
    sources: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Per family: the fp32 folder exported from the sentence-transformers save."""
    base = tmp_path_factory.mktemp("fp32")
    return {family: build(st_dir, base / family) for family, (_, st_dir) in sources.items()}


@pytest.fixture(scope="module")
def bert_fp32(fp32_dirs: dict[str, Path]) -> CrossEncoder:
    return CrossEncoder.load(fp32_dirs["bert"], compile_cache=False)


# --- fp32 IR against sentence-transformers ---------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", ["transformers", "sentence-transformers"])
def test_fp32_scores_match_sentence_transformers(
    family: str, layout: str, sources: dict[str, tuple[Path, Path]],
    fp32_dirs: dict[str, Path], tmp_path: Path,
) -> None:
    hf, st_dir = sources[family]
    folder = fp32_dirs[family] if layout == "sentence-transformers" else build(hf, tmp_path / "x")
    ours = CrossEncoder.load(folder, compile_cache=False)
    assert ours.activation == "sigmoid" and ours.num_labels == 1
    expected = st_cross_encoder(st_dir).predict([(QUERY, t) for t in TEXTS], batch_size=3)
    scores = ours.score(QUERY, TEXTS, batch_size=3)
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS),)
    print(f"{family} ({layout}): max |ours - sentence-transformers| =",
          float(np.max(np.abs(scores - expected))))
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    assert [r.index for r in ours.rank(QUERY, TEXTS)] == list(np.argsort(-expected, kind="stable"))
    assert np.array_equal(ours.predict([(QUERY, t) for t in TEXTS]), scores)


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_two_labels_give_the_positive_class_softmax(family: str, tmp_path: Path) -> None:
    import torch

    hf = make_cross_encoder(tmp_path / "hf", family, num_labels=2, seed=1)
    ours = CrossEncoder.load(build(hf, tmp_path / "fp32"), compile_cache=False)
    assert ours.activation == "softmax" and ours.num_labels == 2
    logits = st_cross_encoder(hf).predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity(), convert_to_numpy=True
    )
    positive = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(ours.score(QUERY, TEXTS), positive, atol=1e-4, rtol=0)
    raw = ours.score(QUERY, TEXTS, activation="none")
    np.testing.assert_allclose(raw, logits[:, 1] - logits[:, 0], atol=1e-4, rtol=0)


def test_activation_none_returns_the_logit(
    fp32_dirs: dict[str, Path], sources: dict[str, tuple[Path, Path]]
) -> None:
    import torch

    ours = CrossEncoder.load(fp32_dirs["xlm-roberta"], activation="none", compile_cache=False)
    logits = st_cross_encoder(sources["xlm-roberta"][1]).predict(
        [(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity()
    )
    np.testing.assert_allclose(ours.score(QUERY, TEXTS), logits, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="softmax"):
        CrossEncoder.load(fp32_dirs["bert"], activation="softmax", compile_cache=False)
