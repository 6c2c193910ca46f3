"""The ``--quantize`` options of the trainers (``train lm``, ``train dvs``): int8
quantisation-aware training (:class:`~snn_egru.quantization.QuantizationConfig`)."""

from __future__ import annotations

import argparse
from typing import Any

from snn_egru.quantization import (
    ACTIVATION_SCALE_MODES,
    QUANTIZE_CHOICES,
    STATE_SCHEMES,
    QuantizationConfig,
)
from snn_egru.reference import PRODUCT_MODES, WEIGHT_GRANULARITIES

__all__ = ["add_quantization_arguments", "quantization_from_args"]


def add_quantization_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """``--quantize int8`` and its options (shared by ``train lm``, ``train dvs``)."""
    group = parser.add_argument_group("quantisation-aware training")
    group.add_argument(
        "--quantize", choices=QUANTIZE_CHOICES, help="train with int8 fake-quantised weights"
    )
    group.add_argument(
        "--quant-granularity", choices=WEIGHT_GRANULARITIES, default="row",
        help="one weight scale per output row or per gate block (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--quant-products", choices=PRODUCT_MODES, default="float",
        help="int8: quantise inputs and events too (MAC array) (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--quant-scales", choices=ACTIVATION_SCALE_MODES, default="learned",
        help="int8 products: learn the input/event scales or keep the calibrated ones",
    )  # fmt: skip
    group.add_argument(
        "--quant-state", choices=STATE_SCHEMES, help="quantise the cell state c (levels)"
    )
    group.add_argument("--quant-state-bits", type=int, default=8, help="state level bits")


#: The :class:`QuantizationConfig` fields set by ``--quant-NAME`` (``weights``: ``--quantize``,
#: ``activation_scales``: ``--quant-scales``).
_QUANT_FLAG_FIELDS = ("granularity", "products", "state", "state_bits")


def quantization_from_args(args: argparse.Namespace) -> QuantizationConfig | None:
    """The :class:`QuantizationConfig` the ``--quant*`` flags describe (``None``: off)."""
    from snn_egru.errors import UserError

    if getattr(args, "quantize", None) is None:
        extras = ("quant_state", "quant_products")
        if (
            getattr(args, "quant_state", None)
            or getattr(args, "quant_products", "float") != "float"
        ):
            raise UserError(
                f"--{extras[0].replace('_', '-')}/--quant-products need --quantize int8"
            )
        return None
    try:
        return QuantizationConfig(
            weights=args.quantize,
            activation_scales=args.quant_scales,
            **{name: getattr(args, f"quant_{name}") for name in _QUANT_FLAG_FIELDS},
        )
    except ValueError as err:
        raise UserError(str(err)) from None
