"""Issue 11: every popular embedding family, imported faithfully or refused clearly.

Each family is a tiny random model (hidden 64, 2 layers, initializer_range=0.2, so a wrong
pooling or a dropped prompt is visible) carrying that family's sentence-transformers files. Its
fp32 folder must give the vectors `SentenceTransformer(source)` gives, on short, long, over-long,
empty, whitespace-only and unicode texts, as queries and as documents.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ipex_embeddings import Encoder, ModelConfig
from ipex_embeddings_builder.calibration import CalibrationSet
from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
from ipex_embeddings_builder.source import SourceModelError, inspect_source

from conftest import WORDS

HIDDEN = 64
MAX_SEQ_LENGTH = 40
E5 = {"query": "query: ", "passage": "passage: "}
NOMIC = {"query": "search_query: ", "document": "search_document: "}
QWEN3 = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the "
    "query\nQuery:",
    "document": "",
}
SENTENCES = [
    " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(3 + i % 9)) for i in range(300)
]
TEXTS = [
    "", " ", "  a  ", " leading space", "trailing space ", "\n\ttabbed\n", "a", "ok?", "Hi",
    "Héllo wörld, café!", "日本語のテキスト", "emoji 🙂 test", "naïve façade — “quoted”",
    "UPPER case Text", "query: cell protein", "passage: gene risk",
    "the " * 60, " ".join(WORDS) * 2, "x" * 300,
    *[SENTENCES[i] for i in range(0, 300, 9)],
]
assert len(TEXTS) >= 50


def _st_files(folder: Path, pooling: dict, prompts: dict, **transformer: object) -> None:
    """The sentence-transformers files, as the Hub's models carry them."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": HIDDEN, **pooling})
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False, **transformer})
    )
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "__version__": {"sentence_transformers": "3.0.1"}, "prompts": prompts,
        "default_prompt_name": None, "similarity_fn_name": "cosine",
    }))


def _legacy(mode: str) -> dict:
    keys = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
            "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken",
            "weightedmean": "pooling_mode_weightedmean_tokens",
            "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens"}
    return {key: key == keys[mode] for key in keys.values()}


def _bert_tokenizer(folder: Path) -> int:
    """The shipped all-MiniLM-L6-v2's WordPiece tokenizer (BERT-likes); its vocabulary size."""
    from ipex_embeddings_builder.demo import demo_model_path

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        if (demo_model_path() / name).is_file():
            shutil.copyfile(demo_model_path() / name, folder / name)
    return 30522


def _trained_tokenizer(folder: Path, kind: str, tokenizer_class: str) -> int:
    """A small tokenizer trained here on SENTENCES, saved as transformers saves one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "unigram":  # XLM-R, CamemBERT: SentencePiece-style
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>")
    else:  # RoBERTa, ModernBERT, Qwen3: byte-level BPE
        specials = {
            "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            "modernbert": ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
            "qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        }[kind]
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    tokenizer.train_from_iterator(SENTENCES + TEXTS, trainer)
    ids = {t: tokenizer.token_to_id(t) for t in specials}
    first, last, pad = {
        "unigram": ("<s>", "</s>", "<pad>"), "roberta": ("<s>", "</s>", "<pad>"),
        "modernbert": ("[CLS]", "[SEP]", "[PAD]"), "qwen3": (None, "<|endoftext|>", "<|endoftext|>"),
    }[kind]
    template = f"{first} $A {last}" if first else f"$A {last}"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, ids[t]) for t in (first, last) if t]
    )
    extra = {"bos_token": first, "eos_token": last, "pad_token": pad}
    if kind != "qwen3":
        extra.update(unk_token=specials[3] if kind != "modernbert" else "[UNK]",
                     mask_token=specials[4])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **extra)
    wrapped.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = tokenizer_class
    config["model_max_length"] = 512
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return tokenizer.get_vocab_size()


def _small(**extra: object) -> dict:
    return {"hidden_size": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "initializer_range": 0.2, **extra}


def _roberta_like(vocab: int) -> dict:
    return _small(vocab_size=vocab, max_position_embeddings=130, type_vocab_size=1,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2)


FAMILIES: dict[str, Callable[[Path], tuple[object, str, dict]]] = {}
"""family -> writes tokenizer files into a folder and returns (model config, pooling, prompts)."""


def _family(name: str) -> Callable:
    def register(make: Callable) -> Callable:
        FAMILIES[name] = make
        return make

    return register


@_family("bert")  # bge-small: CLS, no prompts
def _bert(folder: Path) -> tuple:
    from transformers import BertConfig

    return BertConfig(**_small(vocab_size=_bert_tokenizer(folder), max_position_embeddings=128)), \
        "cls", {}


@_family("distilbert")
def _distilbert(folder: Path) -> tuple:
    from transformers import DistilBertConfig

    return DistilBertConfig(vocab_size=_bert_tokenizer(folder), dim=HIDDEN, n_layers=2, n_heads=4,
                            hidden_dim=128, max_position_embeddings=128,
                            initializer_range=0.2), "mean", {}


@_family("electra")
def _electra(folder: Path) -> tuple:
    from transformers import ElectraConfig

    return ElectraConfig(**_small(vocab_size=_bert_tokenizer(folder), embedding_size=HIDDEN,
                                  max_position_embeddings=128)), "mean", {}


@_family("mpnet")  # all-mpnet-base-v2: mean
def _mpnet(folder: Path) -> tuple:
    from transformers import MPNetConfig

    return MPNetConfig(**_small(vocab_size=_bert_tokenizer(folder), max_position_embeddings=130,
                                pad_token_id=1)), "mean", {}


@_family("roberta")
def _roberta(folder: Path) -> tuple:
    from transformers import RobertaConfig

    vocab = _trained_tokenizer(folder, "roberta", "RobertaTokenizer")
    return RobertaConfig(**_roberta_like(vocab)), "mean", {}


@_family("xlm-roberta")  # multilingual-e5-small: mean, "query: " / "passage: "
def _xlm_roberta(folder: Path) -> tuple:
    from transformers import XLMRobertaConfig

    vocab = _trained_tokenizer(folder, "unigram", "XLMRobertaTokenizer")
    return XLMRobertaConfig(**_roberta_like(vocab)), "mean", E5


@_family("camembert")
def _camembert(folder: Path) -> tuple:
    from transformers import CamembertConfig

    vocab = _trained_tokenizer(folder, "unigram", "CamembertTokenizer")
    return CamembertConfig(**_roberta_like(vocab)), "mean", {}


@_family("modernbert")  # nomic-embed-text-v1.5 style prompts; a 16-token sliding window
def _modernbert(folder: Path) -> tuple:
    from transformers import ModernBertConfig

    vocab = _trained_tokenizer(folder, "modernbert", "PreTrainedTokenizerFast")
    return ModernBertConfig(**_small(
        vocab_size=vocab, max_position_embeddings=128, local_attention=16,
        global_attn_every_n_layers=2, pad_token_id=3, cls_token_id=1, sep_token_id=2,
        bos_token_id=1, eos_token_id=2,
    )), "mean", NOMIC


@_family("qwen3")  # Qwen3-Embedding: last token, instruction prompt for queries
def _qwen3(folder: Path) -> tuple:
    from transformers import Qwen3Config

    vocab = _trained_tokenizer(folder, "qwen3", "Qwen2Tokenizer")
    return Qwen3Config(**_small(
        vocab_size=vocab, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=0,
    )), "lasttoken", QWEN3


def make_family(folder: Path, family: str, seed: int = 0) -> Path:
    """A random tiny model of `family` with its sentence-transformers files in `folder`."""
    import torch
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    config, pooling, prompts = FAMILIES[family](folder)
    torch.manual_seed(seed)
    AutoModel.from_config(config).eval().save_pretrained(folder, safe_serialization=True)
    _st_files(folder, _legacy(pooling), prompts)
    return folder


def build(source: Path, output: Path, precision: str = "fp32", **options: object) -> Path:
    """The model folder `ipex-embed quantize` writes, through its library call."""
    texts = SENTENCES[:24]
    calibration = CalibrationSet(texts, "test sentences", "0" * 64)
    quantize_to_folder(inspect_source(str(source), **options), calibration, output,
                       QuantizeOptions(precision=precision))
    return output


def reference(source: Path, kind: str, texts: list[str]) -> np.ndarray:
    """What sentence-transformers itself makes of `texts` (queries or documents)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    encode = model.encode_query if kind == "query" else model.encode_document
    return encode(texts, batch_size=8, convert_to_numpy=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """family -> (source folder, fp32 model folder), each made once per module."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in made:
            root = tmp_path_factory.mktemp(family)
            source = make_family(root / "source", family)
            made[family] = (source, build(source, root / "fp32"))
        return made[family]

    return get


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_sentence_transformers(family_dir, family: str) -> None:
    source, folder = family_dir(family)
    encoder = Encoder.load(folder, compile_cache=False)
    for kind in ("query", "document"):
        ours = encoder.encode(TEXTS, kind, batch_size=7, normalize=False)
        theirs = reference(source, kind, TEXTS)
        found = cosines(ours, theirs)
        print(f"{family} {kind}: mean {found.mean():.6f} min {found.min():.6f}")
        assert np.isfinite(ours).all()
        assert found.mean() >= 0.9999 and found.min() >= 0.9999, (
            family, kind, [TEXTS[i] for i in np.argsort(found)[:3]], np.sort(found)[:3])
        alone = np.concatenate([encoder.encode([t], kind, normalize=False) for t in TEXTS[:20]])
        np.testing.assert_allclose(alone, ours[:20], atol=1e-5)
