"""The products of a layer mapped with an int8 weight format, and their operation counts.

:class:`~spinnaker2_backend.layer_simulator.LayerSimulator` chooses its product functions by
weight format; for ``csr-int8``, ``event-int8`` and ``mac-int8`` they are those of
:class:`Int8Products`, built from the PEs' own encoded blocks
(:func:`~spinnaker2_backend.formats_int8.encode_pe_weights_int8`), put back in the layer's
row order. They compute what :func:`snn_egru.reference.quantized_matvec` computes, bit for
bit (``docs/quantisation.md``):

* ``csr-int8`` (Arm core): each row sums ``float32(code) * x_j`` in float32 in increasing
  column order (scipy's CSR kernel, the order of a row walk), then ``* s_row``.
* ``event-int8`` (Arm core): only the columns of sources that fired are walked (CSC column
  slice); each row still receives its terms in increasing column order, and a skipped term
  is an exact ``+0``, so the sums equal the row walk's; then ``* s_row``.
* ``mac-int8`` (MAC array): the input is quantised, ``e = clip(rint(x / s_x), -127, 127)``,
  the int8 x int8 products accumulate exactly in int32 (order-free), then
  ``float32(acc) * float32(s_row * s_x)``.

Operation counts per PE and step (:data:`~spinnaker2_backend.timing.OPS`): the Arm-core
formats count rows / events / stored codes walked as their float counterparts plus one
``*_rescaled_rows`` per row and product; ``mac-int8`` counts the tiles issued (a stored tile
is skipped when its four input codes are all zero), one set-up per product, one read-out per
row, and one quantisation per non-zero input value.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snn_egru.reference import quantize_codes, quantize_state
from spinnaker2_backend.formats_int8 import MAC_TILE, QUANTIZED_WEIGHT_FORMATS, MACInt8Weights

__all__ = ["Int8Products"]


def _block_csr(block) -> sp.csr_matrix:
    """The int8 codes of one encoded PE block as a scipy CSR matrix (int8, sorted)."""
    fmt = block.format_name
    if fmt == "csr-int8":
        m = sp.csr_matrix(
            (block.codes, block.column_indices.astype(np.int64), block.row_starts.astype(np.int64)),
            shape=block.shape,
        )
    elif fmt == "event-int8":
        m = sp.csc_matrix(
            (block.codes, block.target_rows.astype(np.int64), block.column_starts.astype(np.int64)),
            shape=block.shape,
        ).tocsr()
    else:
        m = sp.csr_matrix(block.decode())
    m.eliminate_zeros()
    m.sort_indices()
    return m


class Int8Products:
    """The two products of one int8 layer over all its PEs.

    Args:
        pe_weights: the PEs' :class:`~spinnaker2_backend.formats.PEWeights` (int8 blocks).
        rows_in_pe_order: the layer rows the blocks hold, PE after PE.
        params: the layer's :class:`~snn_egru.reference.QuantizedEGRUParams` (scales, mode).
    """

    @classmethod
    def for_layer(cls, pe_weights, rows_in_pe_order, params, dtype) -> Int8Products | None:
        """The int8 products of a layer, or ``None`` when its format is a float one."""
        fmt = pe_weights[0].format_name
        if fmt not in QUANTIZED_WEIGHT_FORMATS:
            return None
        if np.dtype(dtype) != np.float32:
            raise ValueError(
                f"the int8 weight format {fmt!r} runs in float32, as the chip does; got "
                f"dtype {np.dtype(dtype)}"
            )
        return cls(pe_weights, rows_in_pe_order, params)

    def __init__(self, pe_weights, rows_in_pe_order: np.ndarray, params) -> None:
        self.format_name = pe_weights[0].format_name
        levels = getattr(params, "state_levels", None)
        self._levels = None if levels is None else np.asarray(levels, dtype=np.float32)
        self._sizes = (params.input_size, params.hidden_size)
        self.num_pes = len(pe_weights)
        order = np.argsort(rows_in_pe_order, kind="stable")
        self.input_scale = params.input_scale
        self.event_scale = params.event_scale
        fmt = self.format_name
        mats, scales = [], []
        for which in ("weight_ih", "weight_hh"):
            blocks = [getattr(pw, which) for pw in pe_weights]
            codes = sp.vstack([_block_csr(b) for b in blocks], format="csr")[order]
            codes.sort_indices()
            scale = np.concatenate([b.scales for b in blocks])[order].astype(np.float32)
            if fmt == "mac-int8":
                mats.append(sp.csr_matrix(codes, dtype=np.int32))
            elif fmt == "csr-int8":
                mats.append(sp.csr_matrix(codes, dtype=np.float32))
            else:
                mats.append(sp.csc_matrix(codes, dtype=np.float32))
            scales.append(scale)
        self._w_ih, self._w_hh = mats
        self._s_ih, self._s_hh = scales
        rows = np.array([3 * pw.num_units for pw in pe_weights], dtype=np.float64)
        self._rows = rows
        if fmt == "event-int8":
            self._count_ih = np.stack(
                [pw.weight_ih.column_lengths() for pw in pe_weights], axis=1
            ).astype(np.int64)
            self._count_hh = np.stack(
                [pw.weight_hh.column_lengths() for pw in pe_weights], axis=1
            ).astype(np.int64)
            self._index_bytes = (
                np.array([pw.weight_ih.target_rows.itemsize for pw in pe_weights], float),
                np.array([pw.weight_hh.target_rows.itemsize for pw in pe_weights], float),
            )
        if fmt == "mac-int8":
            self._tiles_ih = np.stack(
                [_tiles_per_group(pw.weight_ih) for pw in pe_weights], axis=1
            ).astype(np.int64)
            self._tiles_hh = np.stack(
                [_tiles_per_group(pw.weight_hh) for pw in pe_weights], axis=1
            ).astype(np.int64)
            self._combined_ih = (self._s_ih * np.float32(self.input_scale)).astype(np.float32)
            self._combined_hh = (self._s_hh * np.float32(self.event_scale)).astype(np.float32)
        self._bytes = (
            np.array([pw.weight_ih.bytes for pw in pe_weights], dtype=np.float64),
            np.array([pw.weight_hh.bytes for pw in pe_weights], dtype=np.float64),
        )
        self._nnz = (
            np.array([pw.weight_ih.nnz for pw in pe_weights], dtype=np.float64),
            np.array([pw.weight_hh.nnz for pw in pe_weights], dtype=np.float64),
        )

    # ---------------------------------------------------------------- products
    def _arm(self, w, scale: np.ndarray, v: np.ndarray) -> np.ndarray:
        if self.format_name == "event-int8":
            active = np.flatnonzero(v)
            if active.size == 0:
                return np.zeros(w.shape[0], dtype=np.float32)
            acc = np.asarray(w[:, active] @ v[active]).ravel()
        else:
            acc = np.asarray(w @ v).ravel()
        return (acc.astype(np.float32, copy=False) * scale).astype(np.float32, copy=False)

    def _mac(self, w, combined: np.ndarray, codes: np.ndarray) -> np.ndarray:
        acc = np.asarray(w @ codes.astype(np.int32)).ravel()
        return (acc.astype(np.float32) * combined).astype(np.float32, copy=False)

    def products(self, x: np.ndarray, y_prev: np.ndarray, inputs: list, own: list):
        """``(gi, gh)`` for one sample, biases excluded; appends what the products multiplied
        to ``inputs`` / ``own`` (the float32 vectors, or the int8 operands of ``mac-int8``)
        for :meth:`count_ops`."""
        x = np.asarray(x, dtype=np.float32)
        y_prev = np.asarray(y_prev, dtype=np.float32)
        if self.format_name != "mac-int8":
            inputs.append(x)
            own.append(y_prev)
            return self._arm(self._w_ih, self._s_ih, x), self._arm(self._w_hh, self._s_hh, y_prev)
        cx = quantize_codes(x, self.input_scale)
        cy = quantize_codes(y_prev, self.event_scale)
        inputs.append(cx)
        own.append(cy)
        return self._mac(self._w_ih, self._combined_ih, cx), self._mac(
            self._w_hh, self._combined_hh, cy
        )

    def stored_state(self, c: np.ndarray) -> np.ndarray:
        """The cell state as stored: on the layer's level table when it has one."""
        return c if self._levels is None else quantize_state(c, self._levels)

    # ------------------------------------------------------------- operations
    def static_ops(self, ops: np.ndarray, index: dict[str, int]) -> None:
        """The per-step counts that do not depend on the activity (one sample)."""
        rows = self._rows
        fmt = self.format_name
        if fmt == "mac-int8":  # the int8 operand vectors are zeroed each step
            tc = MAC_TILE[1]
            ops[index["words_cleared"]] += sum(-(-n // tc) for n in self._sizes)
        ops[index["input_rescaled_rows"]] = rows
        ops[index["recurrent_rescaled_rows"]] = rows
        if fmt == "csr-int8":
            ops[index["input_rows"]] = rows
            ops[index["recurrent_rows"]] = rows
            ops[index["input_weights"]] = self._nnz[0]
            ops[index["recurrent_weights"]] = self._nnz[1]
            ops[index["macs"]] = self._nnz[0] + self._nnz[1]
            ops[index["weight_bytes_read"]] = self._bytes[0] + self._bytes[1]
        elif fmt == "mac-int8":
            ops[index["input_mac_setups"]] = 1.0
            ops[index["recurrent_mac_setups"]] = 1.0

    def count_ops(
        self,
        ops: np.ndarray,
        index: dict[str, int],
        inputs: list[np.ndarray],
        own: list[np.ndarray],
    ) -> None:
        """Add the activity-dependent counts of a step's samples.

        Args:
            inputs / own: per sample, what the products multiplied: the float32 vectors
                (Arm-core formats) or the int8 operand codes (``mac-int8``).
        """
        fmt = self.format_name
        if fmt == "csr-int8":
            return
        if fmt == "event-int8":
            ev_in = ev_rec = 0.0
            walked_in = np.zeros(self.num_pes)
            walked_rec = np.zeros(self.num_pes)
            for v, u in zip(inputs, own):
                a, b = np.flatnonzero(v), np.flatnonzero(u)
                ev_in += a.size
                ev_rec += b.size
                walked_in += self._count_ih[a].sum(axis=0)
                walked_rec += self._count_hh[b].sum(axis=0)
            ops[index["input_events"]] = ev_in
            ops[index["recurrent_events"]] = ev_rec
            ops[index["input_weights"]] = walked_in
            ops[index["recurrent_weights"]] = walked_rec
            ops[index["macs"]] = walked_in + walked_rec
            # code + target row per weight walked, two column extents per event
            idx_in, idx_rec = self._index_bytes
            ops[index["weight_bytes_read"]] = (
                walked_in * (1 + idx_in) + walked_rec * (1 + idx_rec) + 2 * 4 * (ev_in + ev_rec)
            )
            return
        # mac-int8
        tr, tc = MAC_TILE
        tiles_in = np.zeros(self.num_pes)
        tiles_rec = np.zeros(self.num_pes)
        quant_in = quant_rec = 0.0
        for cx, cy in zip(inputs, own):
            tiles_in += self._tiles_ih[_active_groups(cx)].sum(axis=0)
            tiles_rec += self._tiles_hh[_active_groups(cy)].sum(axis=0)
            quant_in += np.count_nonzero(cx)
            quant_rec += np.count_nonzero(cy)
        ops[index["input_tiles"]] = tiles_in
        ops[index["recurrent_tiles"]] = tiles_rec
        ops[index["input_weights"]] = tiles_in * tr * tc
        ops[index["recurrent_weights"]] = tiles_rec * tr * tc
        ops[index["macs"]] = (tiles_in + tiles_rec) * tr * tc
        ops[index["weight_bytes_read"]] = (tiles_in + tiles_rec) * (tr * tc + 4)
        ops[index["input_quantised"]] = quant_in
        ops[index["recurrent_quantised"]] = quant_rec


def _tiles_per_group(block: MACInt8Weights) -> np.ndarray:
    """``(ceil(C / 4),)`` stored tiles of each 4-column group of a ``mac-int8`` block."""
    groups = -(-block.shape[1] // MAC_TILE[1])
    return np.bincount(block.tile_columns.astype(np.int64), minlength=groups)


def _active_groups(codes: np.ndarray) -> np.ndarray:
    """Indices of the 4-column groups with a non-zero int8 operand."""
    tc = MAC_TILE[1]
    groups = -(-codes.shape[0] // tc)
    padded = np.zeros(groups * tc, dtype=bool)
    padded[: codes.shape[0]] = codes != 0
    return np.flatnonzero(padded.reshape(groups, tc).any(axis=1))
