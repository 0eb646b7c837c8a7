"""The cross-encoder intake: the bi-encoder intake's safety checks hold for it too, and its
activation is read from every key sentence-transformers reads, in its order (6.2,
`CrossEncoder._parse_model_config` and `get_default_activation_fn`). Before, a model saved by
sentence-transformers < 4 asking for raw logits (`sbert_ce_default_activation_function`) was
built with a sigmoid, and scores differed from sentence-transformers' by up to 1.3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipex_embeddings_builder.cross_encoder import inspect_cross_encoder

IDENTITY = "torch.nn.modules.linear.Identity"
SIGMOID = "torch.nn.modules.activation.Sigmoid"


def _source(tmp_path: Path, num_labels: int = 1, st_config: dict | None = None,
            **config: object) -> Path:  # keys given in `config` replace the BERT defaults
    """A folder with the files `inspect_cross_encoder` reads before any weights are loaded."""
    if st_config is not None:
        (tmp_path / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    labels = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    body = {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
            "id2label": labels, "max_position_embeddings": 512}
    body.update(config)
    (tmp_path / "config.json").write_text(json.dumps(body))
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(("config", "expected"), [
    ({}, "sigmoid"),  # sentence-transformers' default for one logit
    ({"sentence_transformers": {"activation_fn": IDENTITY}}, "none"),  # v4 and later
    ({"sentence_transformers": {"activation_fn": "torch.nn.Identity"}}, "none"),
    ({"sentence_transformers": {"activation_fn": SIGMOID}}, "sigmoid"),
    ({"sbert_ce_default_activation_function": IDENTITY}, "none"),  # before v4: was sigmoid
    ({"sbert_ce_default_activation_function": "torch.nn.Sigmoid"}, "sigmoid"),
    # the newer key wins, as in sentence-transformers
    ({"sentence_transformers": {"activation_fn": SIGMOID},
      "sbert_ce_default_activation_function": IDENTITY}, "sigmoid"),
    # not imported without trust_remote_code there: its default stands
    ({"sentence_transformers": {"activation_fn": "my_pkg.Scale"}}, "sigmoid"),
])
def test_one_logit_activation_follows_sentence_transformers(
    tmp_path: Path, config: dict, expected: str
) -> None:
    assert inspect_cross_encoder(_source(tmp_path, **config)).activation == expected


def test_the_v5_file_comes_first(tmp_path: Path) -> None:
    source = _source(tmp_path, st_config={"activation_fn": IDENTITY},
                     sentence_transformers={"activation_fn": SIGMOID})
    assert inspect_cross_encoder(source).activation == "none"


def test_an_activation_the_runtime_lacks_is_refused_by_name(tmp_path: Path) -> None:
    source = _source(tmp_path, sbert_ce_default_activation_function="torch.nn.Tanh")
    with pytest.raises(ValueError, match=r"activation_fn='torch.nn.Tanh'.*activation="):
        inspect_cross_encoder(source)


def test_two_logits_give_the_positive_class(tmp_path: Path) -> None:
    assert inspect_cross_encoder(_source(tmp_path, num_labels=2)).activation == "softmax"


def test_custom_code_is_refused_for_a_cross_encoder_too(tmp_path: Path) -> None:
    from ipex_embeddings_builder.errors import SourceModelError

    source = _source(tmp_path, auto_map={"AutoModelForSequenceClassification": "m.Ranker"})
    with pytest.raises(SourceModelError, match=r"auto_map.*--trust-remote-code"):
        inspect_cross_encoder(source)


def test_an_unsupported_family_is_refused_for_a_cross_encoder_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'qwen3' model, not a supported cross-encoder family"):
        inspect_cross_encoder(_source(tmp_path, model_type="qwen3"))
