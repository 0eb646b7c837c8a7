"""The int8 schemes `ipex-embed quantize --scheme` offers: their names, their order, their record.

Static int8 of activations does not hold for every model: decoder embedders (Qwen3-Embedding and
other LLM-based ones) have activation outliers that one int8 range per tensor cannot hold. So
the builder offers, fastest first:

- `static`: int8 weights and activations, NNCF static calibration (transformer model type,
  `mixed` preset), with SmoothQuant at NNCF's own alpha for MatMuls (0.95 in NNCF 3.4);
- `static-sq-ALPHA`: the same with SmoothQuant at another alpha (0 to 1; e.g. `static-sq-0.5`,
  the SmoothQuant paper's default, moves more of the activations' range into the weights);
- `weights-int8`: int8 weights only (`nncf.compress_weights`, INT8_ASYM, per output channel),
  activations stay float; no calibration data.

`auto` is no scheme of its own: it tries `AUTO_ORDER` and keeps the first that passes the gate
(`tuning.tune_to_folder`), which is why it needs a loss limit; `plan_scheme` decides when it runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from .errors import OptionError
from .source import DECODER_MODEL_TYPES

__all__ = [
    "AUTO",
    "AUTO_ORDER",
    "SCHEME_HELP",
    "STATIC",
    "WEIGHTS_INT8",
    "Scheme",
    "candidate_schemes",
    "parse_scheme",
    "plan_scheme",
]

logger = logging.getLogger(__name__)

AUTO = "auto"
STATIC = "static"
WEIGHTS_INT8 = "weights-int8"
SMOOTHQUANT = re.compile(r"static-sq-(\d+(?:\.\d+)?)")
AUTO_ORDER = (STATIC, "static-sq-0.5", WEIGHTS_INT8)
"""What `auto` tries, fastest first (int8 activations before float ones)."""
PRESET = "mixed"
"""NNCF's quantization preset for static int8 (symmetric weights, asymmetric activations)."""
SCHEME_HELP = (
    "auto (default: static for encoders; for decoders such as Qwen3, or with --max-loss, try "
    "static, static-sq-0.5, then sensitive layers kept out of int8, then weights-int8, and keep "
    "the first within the loss limit), static "
    "(int8 weights and activations, SmoothQuant at NNCF's alpha), static-sq-ALPHA (SmoothQuant "
    "alpha 0 to 1, e.g. static-sq-0.5) or weights-int8 (int8 weights, float activations)."
)


@dataclass(frozen=True)
class Scheme:
    """One way to put a model in int8."""

    name: str
    int8_activations: bool
    """Static int8 of activations (calibrated); False: weight-only int8, float activations."""
    smooth_quant_alpha: float | None = None
    """SmoothQuant's alpha for MatMuls; None: NNCF's default (static) or none (weights-int8)."""

    def record(self) -> dict[str, Any]:
        """The scheme's entries in the model JSON's `quantization` block."""
        if not self.int8_activations:
            return {"method": "nncf.compress_weights", "scheme": self.name, "weights": "int8",
                    "activations": "float", "weight_compression": "int8_asym",
                    "preset": None, "smooth_quant_alpha": None}
        import nncf

        alpha = self.smooth_quant_alpha
        return {"method": "nncf.quantize", "scheme": self.name, "weights": "int8",
                "activations": "int8", "preset": PRESET,
                "smooth_quant_alpha": nncf.AdvancedSmoothQuantParameters().matmul
                if alpha is None else alpha}


def parse_scheme(name: str) -> Scheme:
    """The scheme called `name` (`auto` is not one: see `candidate_schemes`).

    Raises:
        OptionError: an unknown name, or an alpha outside 0 to 1.
    """
    if name == STATIC:
        return Scheme(STATIC, True)
    if name == WEIGHTS_INT8:
        return Scheme(WEIGHTS_INT8, False)
    match = SMOOTHQUANT.fullmatch(name)
    if match and 0.0 <= float(match.group(1)) <= 1.0:
        return Scheme(name, True, float(match.group(1)))
    if name == AUTO:
        raise OptionError(
            "--scheme auto picks a scheme by validating each one, so it needs a loss limit: "
            "give --max-loss (or call tuning.tune_to_folder), or name a scheme."
        )
    raise OptionError(
        f"Unknown --scheme {name!r}; use auto, static, static-sq-ALPHA with a SmoothQuant alpha "
        "from 0 to 1 (e.g. static-sq-0.5) or weights-int8."
    )


def candidate_schemes(name: str) -> list[Scheme]:
    """The schemes `name` stands for, in the order to try them: `AUTO_ORDER` for auto.

    Raises:
        OptionError: an unknown name.
    """
    return [parse_scheme(n) for n in (AUTO_ORDER if name == AUTO else (name,))]


def plan_scheme(
    name: str, model_type: str, max_loss: float | None, default_max_loss: float
) -> tuple[str, float | None]:
    """What `--scheme NAME` and `--max-loss` build: (scheme or auto, the loss limit to tune to,
    or None for a plain build without validation).

    `auto` without a limit is `static` for an encoder (as before schemes existed) and, for a
    decoder, a search at `default_max_loss`: static int8 is not trusted there unvalidated.

    Raises:
        OptionError: an unknown scheme name.
    """
    if name != AUTO:
        parse_scheme(name)
        return name, max_loss
    if max_loss is not None:
        return AUTO, max_loss
    if model_type in DECODER_MODEL_TYPES:
        logger.info("A %s decoder: --scheme auto validates each scheme at --max-loss %g",
                    model_type, default_max_loss)
        return AUTO, default_max_loss
    return STATIC, None
