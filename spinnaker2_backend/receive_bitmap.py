"""The ``bitmap16`` receive policy's operation counts for one layer's PEs.

A PE keeps one bit per source, a 16-bit running count per bitmap word (the rank directory)
and the binary16 values of the sources that fired (``docs/spinnaker2.md``, "Receive
policies"; the candidates and the evidence in :mod:`spinnaker2_backend.receive_designs`).
Per step and sample the PE zeroes the bitmap and the directory, appends one value per
received event, builds the directory (one entry per bitmap word), walks every stored
weight of its CSR rows testing its source's bit, and multiplies only the weights whose
source fired (a *hit*: the MAC, the value's rank and load). :class:`BitmapReceive` counts
those operations; :mod:`spinnaker2_backend.timing` costs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BitmapReceive", "round_received"]


def round_received(values: np.ndarray) -> np.ndarray:
    """Received event values as the ``bitmap16`` design keeps them: rounded to binary16
    (IEEE 754 half precision, round to nearest even: at most 2^-11 relative error in the
    normal range), returned in their own dtype (the products run in float32).

    A packet carries a 32-bit payload; the PE stores the value in its 16-bit value array on
    receipt, and the products read it back from there (VCVTB.F32.F16,
    ``CycleCosts.half_convert_cycles``). A value under binary16's smallest subnormal
    (2^-24) becomes 0.

    Raises:
        ValueError: a value beyond binary16's range (|v| > 65504): the design cannot keep it.
    """
    values = np.asarray(values)
    if values.dtype == np.float32 and values.ndim == 1 and values.flags.c_contiguous:
        from spinnaker2_backend.kernels_half import round_binary16

        out = np.empty_like(values)
        _, largest = round_binary16(values, out)  # the same bits, compiled
        if largest < 0:
            return out
    with np.errstate(over="ignore", invalid="ignore"):
        half = values.astype(np.float16)
    if not np.all(np.isfinite(half)):
        worst = float(np.max(np.abs(values)))
        raise ValueError(
            f"a received event value of magnitude {worst:g} is beyond binary16's range "
            "(65504): the bitmap16 design cannot keep it; run with round_received=False "
            "(float32 values) or scale the network's inputs"
        )
    return half.astype(values.dtype)


def _column_counts(block, sources: int) -> np.ndarray:
    return np.bincount(np.asarray(block.column_indices), minlength=sources).astype(np.float64)


class BitmapReceive:
    """Counts of the ``bitmap16`` policy on the PEs of one layer (CSR weights).

    Args:
        pe_weights: each PE's encoded weights (``weight_ih`` / ``weight_hh`` CSR blocks).
        input_size, hidden_size: ``I`` and ``H`` of the layer.
        input_by_packets: the layer input arrives as packets (else it is a dense DMA target
            and every input weight is multiplied).
    """

    def __init__(
        self,
        pe_weights: Sequence,
        *,
        input_size: int,
        hidden_size: int,
        input_by_packets: bool,
    ) -> None:
        self.count_ih = np.stack(
            [_column_counts(pw.weight_ih, input_size) for pw in pe_weights], axis=1
        )
        self.count_hh = np.stack(
            [_column_counts(pw.weight_hh, hidden_size) for pw in pe_weights], axis=1
        )
        self.input_by_packets = input_by_packets
        sources = max(input_size if input_by_packets else 0, hidden_size)
        self.bitmap_words = -(-sources // 32)
        #: words zeroed per step and sample: the bitmap and the 16-bit rank directory
        self.cleared_words = self.bitmap_words + -(-self.bitmap_words // 2)

    def static_ops(self, static: np.ndarray, index: dict[str, int]) -> None:
        """Per-step counts that do not depend on the events (``static`` updated)."""
        static[index["words_cleared"]] = self.cleared_words
        static[index["rank_words"]] = self.bitmap_words

    def step_ops(
        self,
        ops: np.ndarray,
        index: dict[str, int],
        xs: np.ndarray,
        ys_prev: np.ndarray,
    ) -> None:
        """The counts of one step (``ops`` updated): hits of both products and the appended
        events, summed over the batch.

        Args:
            xs: ``(B, I)`` the layer input the products used (events kept).
            ys_prev: ``(B, H)`` the layer's own ``y_{t-1}`` the products used.
        """
        fired_in = (np.asarray(xs) != 0).astype(np.float64)
        fired_rec = (np.asarray(ys_prev) != 0).astype(np.float64)
        hits_in = (fired_in @ self.count_ih).sum(axis=0)
        hits_rec = (fired_rec @ self.count_hh).sum(axis=0)
        ops[index["input_hits"]] = hits_in
        ops[index["recurrent_hits"]] = hits_rec
        ops[index["macs"]] = hits_in + hits_rec
        appended = fired_rec.sum() + (fired_in.sum() if self.input_by_packets else 0.0)
        ops[index["list_entries"]] = appended
