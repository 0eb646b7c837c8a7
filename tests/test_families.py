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
from conftest import WORDS

from ipex_embeddings import Encoder, ModelConfig
from ipex_embeddings_builder.calibration import CalibrationSet
from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
from ipex_embeddings_builder.source import SourceModelError, inspect_source

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
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
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
        trainer = trainers.UnigramTrainer(
            vocab_size=400, special_tokens=specials, unk_token="<unk>"
        )
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
        "modernbert": ("[CLS]", "[SEP]", "[PAD]"),
        "qwen3": (None, "<|endoftext|>", "<|endoftext|>"),
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
        tie_word_embeddings=False, eos_token_id=0,
        pad_token_id=None,  # a zero (padding_idx) EOS embedding would make "" a zero vector
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
    if kind == "query":
        return model.encode_query(texts, batch_size=8, convert_to_numpy=True)
    # sentence-transformers 6.2 always has a "document" prompt ("" when the model saves none),
    # so its encode_document ignores E5's "passage: "; ipex-embeddings uses it, as E5 asks.
    saved = json.loads((source / "config_sentence_transformers.json").read_text())["prompts"]
    name = next((k for k in ("document", "passage", "corpus") if k in saved), "document")
    return model.encode(texts, prompt_name=name, batch_size=8, convert_to_numpy=True)


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


def test_folder_tokenizer_gives_transformers_ids(family_dir) -> None:
    """The folder's tokenizer.json (what the runtime reads) is the pipeline transformers builds."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    for family in ("xlm-roberta", "qwen3"):
        source, folder = family_dir(family)
        ours = Tokenizer.from_file(str(folder / "tokenizer.json"))
        ours.no_padding()  # as the runtime reads it; the pad id stays in the file
        theirs = AutoTokenizer.from_pretrained(source)
        texts = [p + t for p in ("", *E5.values(), *QWEN3.values()) for t in TEXTS[:16]]
        assert [e.ids for e in ours.encode_batch(texts)] == theirs(texts)["input_ids"], family
    # The bug this guards: transformers 5 rebuilds XLM-R's pipeline, and the source's own
    # tokenizer.json (the file that used to be copied) adds a "▁" around whitespace.
    copied = Tokenizer.from_file(str(family_dir("xlm-roberta")[0] / "tokenizer.json"))
    assert copied.encode(" a ").ids != theirs(" a ")["input_ids"]


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def _copy_source(family_dir, family: str, to: Path) -> Path:
    return Path(shutil.copytree(family_dir(family)[0], to))


def test_include_prompt_false_pools_without_the_prompt(family_dir, tmp_path: Path) -> None:
    source = _copy_source(family_dir, "xlm-roberta", tmp_path / "e5")
    _edit_json(source / "1_Pooling" / "config.json", include_prompt=False)
    folder = build(source, tmp_path / "fp32")
    assert ModelConfig.load(folder).include_prompt is False
    encoder = Encoder.load(folder, compile_cache=False)
    for kind in ("query", "document"):
        ours = encoder.encode(TEXTS, kind, batch_size=5, normalize=False)
        found = cosines(ours, reference(source, kind, TEXTS))
        print(f"include_prompt=false {kind}: mean {found.mean():.6f} min {found.min():.6f}")
        assert found.min() >= 0.9999, np.sort(found)[:3]
        alone = np.concatenate([encoder.encode([t], kind, normalize=False) for t in TEXTS[:10]])
        np.testing.assert_allclose(alone, ours[:10], atol=1e-5)


def test_do_lower_case_is_honoured(family_dir, tmp_path: Path) -> None:
    source = _copy_source(family_dir, "roberta", tmp_path / "cased")  # a case-sensitive BPE
    _edit_json(source / "sentence_bert_config.json", do_lower_case=True)
    encoder = Encoder.load(build(source, tmp_path / "fp32"), compile_cache=False)
    ours = encoder.encode(TEXTS, normalize=False)
    assert cosines(ours, reference(source, "document", TEXTS)).min() >= 0.9999
    np.testing.assert_allclose(*encoder.encode(["UPPER Case", "upper case"]), atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_every_pooling_mode_matches_sentence_transformers(
    family_dir, tmp_path: Path, mode: str
) -> None:
    source = _copy_source(family_dir, "bert", tmp_path / mode)
    (source / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": HIDDEN, "pooling_mode": mode, "include_prompt": True})
    )
    _edit_json(source / "config_sentence_transformers.json", prompts=E5)
    encoder = Encoder.load(build(source, tmp_path / "fp32"), compile_cache=False)
    ours = encoder.encode(TEXTS, "query", normalize=False)
    found = cosines(ours, reference(source, "query", TEXTS))
    print(f"pooling {mode}: mean {found.mean():.6f} min {found.min():.6f}")
    assert found.min() >= 0.9999


def test_pooling_graph_and_numpy_match_sentence_transformers_module() -> None:
    """All modes, with and without prompt exclusion, on random states (no model needed)."""
    import openvino as ov
    import openvino.opset13 as ops
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    from ipex_embeddings.encoder import openvino_core
    from ipex_embeddings.pooling import POOLING_MODES, add_pooling, pool

    states = ops.parameter([-1, -1, 8], ov.Type.f32, name="states")
    mask_in = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    for node, name in ((states, "states"), (mask_in, "attention_mask")):
        node.output(0).get_tensor().set_names({name})
    base = ov.Model([ops.result(ops.relu(states))], [states, mask_in])
    hidden = np.random.default_rng(0).normal(size=(3, 12, 8)).astype(np.float32)
    mask = np.array([[1] * 9 + [0] * 3, [1] * 12, [1] * 5 + [0] * 7])
    for mode in POOLING_MODES:
        for prompt_length in (0, 3):
            features = {"token_embeddings": torch.relu(torch.tensor(hidden)),
                        "attention_mask": torch.tensor(mask), "prompt_length": prompt_length}
            expected = Pooling(8, pooling_mode=mode, include_prompt=not prompt_length)(
                features)["sentence_embedding"].numpy()
            model = add_pooling(base, mode, exclude_prompt=bool(prompt_length))
            inputs = {"states": hidden, "attention_mask": mask}
            if prompt_length:
                inputs["prompt_length"] = np.array(prompt_length)
            graph = openvino_core().compile_model(model, "CPU")(inputs)[0]
            numpy = pool(np.maximum(hidden, 0), mask, mode, prompt_length)
            np.testing.assert_allclose(graph, expected, atol=1e-5, err_msg=mode)
            np.testing.assert_allclose(numpy, expected, atol=1e-5, err_msg=mode)


def test_int8_builds_encode(family_dir, tmp_path: Path) -> None:
    for family in ("xlm-roberta", "qwen3"):
        folder = build(family_dir(family)[0], tmp_path / family, precision="int8")
        vectors = Encoder.load(folder, compile_cache=False).encode(TEXTS, "query")
        assert vectors.shape == (len(TEXTS), HIDDEN) and np.isfinite(vectors).all(), family


def test_max_seq_length_read_where_sentence_transformers_reads_it(tmp_path: Path) -> None:
    """sentence-transformers 6.2 re-saves all-MiniLM-L6-v2 with the length in
    tokenizer_config.json (model_max_length), not in sentence_bert_config.json."""
    from sentence_transformers import SentenceTransformer

    from ipex_embeddings_builder.demo import demo_model_path

    model = SentenceTransformer(str(demo_model_path()), device="cpu")
    model.save(str(tmp_path / "resaved"))
    assert "max_seq_length" not in json.loads(
        (tmp_path / "resaved" / "sentence_bert_config.json").read_text())
    source = inspect_source(str(tmp_path / "resaved"))
    assert source.max_seq_length == model.max_seq_length == 256
    assert (source.pooling, source.normalize) == ("mean", True)


def quantize_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["quantize", *args])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def _refused(source: Path, match: str, **options: object) -> None:
    with pytest.raises(SourceModelError, match=match):
        inspect_source(str(source), **options)


def test_custom_code_is_refused_without_trust_remote_code(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert("jina", pooling="mean")
    _edit_json(source / "config.json", auto_map={"AutoModel": "modeling_bert.JinaBertModel"})
    code, output = quantize_cli(str(source), "--output", str(tmp_path / "out"))
    assert code != 0 and "auto_map" in output and "--trust-remote-code" in output
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_load_stop_the_build(tiny_bert, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    source = tiny_bert("renamed", pooling="mean")
    weights = load_file(source / "model.safetensors")
    save_file({f"jina.{k}": v for k, v in weights.items()}, source / "model.safetensors")
    with pytest.raises(SourceModelError, match=r"missing \['embeddings.*--trust-remote-code"):
        build(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["architectures", "cross-encoder folder", "saved CrossEncoder"])
def test_cross_encoders_are_built_as_such_and_other_heads_refused(
    tiny_bert, tmp_path: Path, how: str
) -> None:
    source = tiny_bert("ce", pooling=None)
    if how == "saved CrossEncoder":  # as sentence-transformers 6.2 saves a 1-label reranker
        from sentence_transformers import CrossEncoder
        from transformers import AutoConfig, BertForSequenceClassification

        config = AutoConfig.from_pretrained(source, num_labels=1)
        BertForSequenceClassification(config).save_pretrained(source)
        CrossEncoder(str(source), device="cpu").save(str(tmp_path / "saved"))
        source = tmp_path / "saved"
    elif how == "architectures":
        _edit_json(source / "config.json", architectures=["BertForSequenceClassification"],
                   id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    else:
        _edit_json(source / "config_sentence_transformers.json", model_type="CrossEncoder")
    if how == "cross-encoder folder":  # says CrossEncoder, but has no classification head
        for extra in ([], ["--pooling", "mean"]):  # the override does not make it a bi-encoder
            code, output = quantize_cli(str(source), "--output", str(tmp_path / "out"), *extra)
            assert code != 0 and "cross-encoder" in output and "builds bi-encoders" in output
            assert "--pooling" not in output
        return
    # A sequence classifier is built as a cross-encoder (tests/test_cross_build.py), never
    # as a bi-encoder: --pooling does not apply to it.
    code, output = quantize_cli(str(source), "--output", str(tmp_path / "out"), "--pooling",
                                "mean")
    assert code == 2 and "--pooling" in output and "cross-encoder" in output
    code, output = quantize_cli(str(source), "--output", str(tmp_path / "out"), "--precision",
                                "fp32")
    assert code == 0 and ModelConfig.load(tmp_path / "out").kind == "cross-encoder"


def test_pooling_override_works_as_the_message_says(tiny_bert) -> None:
    source = tiny_bert("two", pooling="mean")
    _edit_json(source / "1_Pooling" / "config.json", pooling_mode_max_tokens=True)
    _refused(source, r"pooling \['max', 'mean'\].*Pass --pooling MODE")
    assert inspect_source(str(source), pooling="mean").pooling == "mean"
    _edit_json(source / "1_Pooling" / "config.json", pooling_mode_mean_tokens=False)
    assert inspect_source(str(source)).pooling == "max"


@pytest.mark.parametrize(
    ("file", "change", "match"),
    [
        ("config_sentence_transformers.json", {"truncate_dim": 999}, "truncate_dim=999.*from 1 to"),
        ("config_sentence_transformers.json", {"similarity_fn_name": "euclidean"},
         "similarity_fn_name='euclidean'"),
        ("config_sentence_transformers.json", {"default_prompt_name": "nope"},
         "default_prompt_name='nope'"),
        ("config_sentence_transformers.json", {"new_key": 1}, r"\['new_key'\]"),
        ("sentence_bert_config.json", {"strip_accents": True}, "'strip_accents'"),
        ("sentence_bert_config.json", {"model_args": {"rope_theta": 2.0}}, "model_args="),
        ("sentence_bert_config.json", {"max_seq_length": 100}, "exceeds the model's 64"),
        ("1_Pooling/config.json", {"pooling_mode": "mean", "scale": 2}, r"\['scale'\]"),
    ],
)
def test_unknown_or_unsupported_settings_are_refused(
    tiny_bert, file: str, change: dict, match: str
) -> None:
    source = tiny_bert("settings", pooling="mean")
    _edit_json(source / file, **change)
    _refused(source, match)


def _add_dense(source: Path, activation: object, out_features: int = 32) -> None:
    """A sentence-transformers Dense module after pooling, saved by sentence-transformers."""
    import torch
    from sentence_transformers.base.modules import Dense

    torch.manual_seed(1)
    (source / "2_Dense").mkdir()
    Dense(HIDDEN, out_features, activation_function=activation).save(str(source / "2_Dense"))
    modules = json.loads((source / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                       "type": "sentence_transformers.models.Dense"})
    modules[3].update(idx=3, name="3")
    (source / "modules.json").write_text(json.dumps(modules))


@pytest.mark.parametrize(("pooling", "activation"), [("cls", "Tanh"), ("mean", "Identity")])
def test_dense_is_folded_into_the_graph(
    family_dir, tmp_path: Path, pooling: str, activation: str
) -> None:
    """LaBSE-style (cls, Dense tanh) and stella-style (mean, linear Dense) models."""
    import torch

    source = _copy_source(family_dir, "bert", tmp_path / "dense")
    (source / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": HIDDEN, "pooling_mode": pooling, "include_prompt": True}))
    _add_dense(source, getattr(torch.nn, activation)())
    encoder = Encoder.load(build(source, tmp_path / "fp32"), compile_cache=False)
    ours = encoder.encode(TEXTS, normalize=False)
    assert ours.shape == (len(TEXTS), 32)
    found = cosines(ours, reference(source, "document", TEXTS))
    print(f"dense {pooling} {activation}: mean {found.mean():.6f} min {found.min():.6f}")
    assert found.min() >= 0.9999


def test_modules_that_cannot_be_exported_exactly_are_refused(tiny_bert) -> None:
    import torch

    source = tiny_bert("dense", pooling="mean")
    _add_dense(source, torch.nn.Tanh(), out_features=16)
    _refused(source, "Dense layer with activation tanh after mean pooling cannot be folded")
    modules = json.loads((source / "modules.json").read_text())
    modules[2]["type"] = "sentence_transformers.models.LayerNorm"
    (source / "modules.json").write_text(json.dumps(modules))
    _refused(source, "LayerNorm module.*'2_Dense'.*cannot export")


def test_default_prompt_name_is_used_as_sentence_transformers_does(tiny_bert) -> None:
    source = tiny_bert("prompts", pooling="mean")
    _edit_json(source / "config_sentence_transformers.json",
               prompts={"retrieval": "Represent: "}, default_prompt_name="retrieval")
    found = inspect_source(str(source))
    assert (found.query_prompt, found.document_prompt) == ("Represent: ", "Represent: ")


def test_a_tokenizer_that_differs_from_transformers_stops_the_build(family_dir) -> None:
    """The check `source_tokenizer` runs, given the XLM-R file that used to be copied."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from ipex_embeddings_builder.source import _check_fidelity

    source = inspect_source(str(family_dir("xlm-roberta")[0]))
    copied = Tokenizer.from_file(str(source.path / "tokenizer.json"))
    with pytest.raises(SourceModelError, match=r"for ' '.*Re-save the tokenizer"):
        _check_fidelity(source, AutoTokenizer.from_pretrained(source.path), copied)


def test_cli_builds_a_decoder_it_used_to_refuse(family_dir, tmp_path: Path) -> None:
    code, output = quantize_cli(str(family_dir("qwen3")[0]), "--output", str(tmp_path / "out"),
                                "--precision", "fp32")
    assert code == 0, output
    assert "qwen3, lasttoken pooling" in output
    assert ModelConfig.load(tmp_path / "out").pooling == "lasttoken"
