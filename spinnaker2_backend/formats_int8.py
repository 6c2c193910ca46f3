"""int8 weight formats of a PE, with exact byte counts (``docs/quantisation.md``).

The float formats of :mod:`spinnaker2_backend.formats` store 4-byte words. The int8 formats
store the int8 codes of :func:`snn_egru.reference.quantize_weight` (one byte each), index
arrays in the narrowest unsigned integer that holds their largest value (``uint8`` up to 255,
``uint16`` up to 65,535, else ``uint32``), and one float32 scale per local row. Every array
starts on a word boundary (the Arm core loads words), so each array's bytes are rounded up
to a multiple of 4.

``csr-int8`` (Arm core, "float" product mode)
    ``codes[NZ]`` int8, ``column_indices[NZ]`` (fits ``C - 1``), ``row_starts[R + 1]``
    (fits ``NZ``), ``scales[R]`` float32. A row accumulates ``float32(code) * x_j`` in
    column order, then multiplies by its scale.

``event-int8`` (Arm core, "float" product mode, column-major like ``event``)
    ``codes[NZ]`` int8 grouped by source column, ``target_rows[NZ]`` (fits ``R - 1``),
    ``column_starts[C + 1]`` (fits ``NZ``), ``scales[R]`` float32. Only the runs of sources
    that fired are walked.

``mac-int8`` (the 16 x 4 MAC array, "int8" product mode)
    The local block, padded to a multiple of 16 rows and 4 columns, is cut into tiles of
    16 output rows x 4 input columns (64 int8 MACs, the array's shape); only tiles holding a
    non-zero code are stored, each as 64 bytes, tile row by tile row:
    ``tiles[T, 16, 4]`` int8, ``tile_columns[T]`` (fits ``ceil(C / 4) - 1``),
    ``tile_row_starts[ceil(R / 16) + 1]`` (fits ``T``), ``scales[R]`` float32. The input
    vector is quantised to int8 (its own scale); products accumulate exactly in int32. A tile
    whose four input values are all zero is skipped (no event in its columns).

Every encoded block has ``.nnz``, ``.bytes``, ``.words`` (bytes / 4, rounded up),
``.decode()`` (the int8 codes as a dense array), ``.matvec(x)`` (what the PE computes, bit for
bit equal to :func:`snn_egru.reference.quantized_matvec` on the same rows) and
``.weights_touched(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from snn_egru.reference import INT8_MAX, quantize_codes
from spinnaker2_backend.constants import WORD_BYTES, ChipSpec
from spinnaker2_backend.formats import CompressedBlock, pe_weights_of

__all__ = [
    "QUANTIZED_WEIGHT_FORMATS",
    "CSRInt8Weights",
    "EventInt8Weights",
    "MACInt8Weights",
    "encode_pe_weights_int8",
    "encode_quantized",
    "index_dtype",
    "int8_weight_bytes",
    "mac_tile_count",
    "padded_bytes",
]

#: The int8 weight formats, by name (command line: ``--weight-format``).
QUANTIZED_WEIGHT_FORMATS: tuple[str, ...] = ("csr-int8", "event-int8", "mac-int8")

#: Tile of the MAC layout: (output rows, input columns), the array's 16 x 4 shape [A].
MAC_TILE = ChipSpec().mac_array_shape


def index_dtype(max_value: int) -> np.dtype:
    """The narrowest unsigned integer type holding ``0..max_value``."""
    if max_value < 0:
        raise ValueError(f"an index range needs max_value >= 0, got {max_value}")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit a 32-bit index")


def padded_bytes(count: int, itemsize: int) -> int:
    """Bytes of an array of ``count`` items, rounded up to whole words."""
    return -(-count * itemsize // WORD_BYTES) * WORD_BYTES


def _check_codes(codes, scale) -> tuple[sp.csr_matrix, np.ndarray]:
    if not sp.issparse(codes):
        codes = sp.csr_matrix(np.asarray(codes))
    codes = sp.csr_matrix(codes)
    if codes.dtype != np.int8:
        raise ValueError(
            f"int8 formats store int8 codes, got dtype {codes.dtype}: quantise the weights "
            "first (snn_egru.reference.quantize_weight, or export with --quantize int8)"
        )
    codes.eliminate_zeros()
    codes.sort_indices()
    if codes.nnz and int(np.abs(codes.data.astype(np.int16)).max()) > INT8_MAX:
        raise ValueError(f"int8 codes must lie in [-{INT8_MAX}, {INT8_MAX}] (symmetric)")
    scale = np.asarray(scale, dtype=np.float32)
    if scale.shape != (codes.shape[0],):
        raise ValueError(
            f"scales have shape {scale.shape}, expected ({codes.shape[0]},): one per row"
        )
    return codes, scale


class _Int8Block:
    format_name: str
    shape: tuple[int, int]
    scales: np.ndarray

    @property
    def words(self) -> int:
        """Words of PE data memory (bytes / 4, every array word-aligned)."""
        return self.bytes // WORD_BYTES

    @property
    def scale_bytes(self) -> int:
        return padded_bytes(self.shape[0], 4)


class _ArmInt8Block(CompressedBlock, _Int8Block):
    """The Arm-core int8 formats ("float" product mode): ``codes`` widened to float32, stored
    compressed (CSR for ``csr-int8``, CSC for ``event-int8``) with the narrowest indices."""

    codes: np.ndarray

    @classmethod
    def encode(cls, codes, scale) -> _ArmInt8Block:
        block, scale = _check_codes(codes, scale)
        block = cls._compress(block)
        rows, cols = block.shape
        minor = cols if cls._layout is sp.csr_matrix else rows  # what an index points at
        _, indices, pointers = cls._arrays
        return cls(
            codes=block.data.astype(np.int8),
            scales=scale,
            shape=(int(rows), int(cols)),
            **{
                indices: block.indices.astype(index_dtype(max(minor - 1, 0))),
                pointers: block.indptr.astype(index_dtype(block.nnz)),
            },
        )

    @property
    def bytes(self) -> int:
        _, indices, pointers = (getattr(self, name) for name in self._arrays)
        return (
            padded_bytes(self.nnz, 1)
            + padded_bytes(self.nnz, indices.itemsize)
            + padded_bytes(pointers.shape[0], pointers.itemsize)
            + self.scale_bytes
        )

    def _float_codes(self) -> sp.spmatrix:
        return self._scipy(np.float32)

    def decode(self) -> np.ndarray:
        return self._float_codes().toarray().astype(np.int8)

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """Each row accumulates ``float32(code) * x_j`` in column order (a CSR row walk and an
        ordered column walk add the same terms in the same order), then its row scale."""
        x = np.asarray(x, dtype=np.float32)
        return (np.asarray(self._float_codes() @ x[:, None])[:, 0] * self.scales).astype(np.float32)


@dataclass(frozen=True, eq=False)
class CSRInt8Weights(_ArmInt8Block):
    """int8 compressed sparse rows with per-row float32 scales."""

    codes: np.ndarray
    column_indices: np.ndarray
    row_starts: np.ndarray
    scales: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="csr-int8", init=False)

    _arrays: ClassVar[tuple[str, str, str]] = ("codes", "column_indices", "row_starts")

    def weights_touched(self, x: np.ndarray) -> int:
        return self.nnz


@dataclass(frozen=True, eq=False)
class EventInt8Weights(_ArmInt8Block):
    """int8 per-source-unit synaptic rows (CSC of the block) with per-row float32 scales."""

    codes: np.ndarray
    target_rows: np.ndarray
    column_starts: np.ndarray
    scales: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="event-int8", init=False)

    _layout: ClassVar[type] = sp.csc_matrix
    _arrays: ClassVar[tuple[str, str, str]] = ("codes", "target_rows", "column_starts")

    def column_lengths(self) -> np.ndarray:
        return np.diff(self.column_starts.astype(np.int64))

    def weights_touched(self, x: np.ndarray) -> int:
        return int(self.column_lengths()[np.asarray(x) != 0].sum())


@dataclass(frozen=True, eq=False)
class MACInt8Weights(_Int8Block):
    """Non-empty 16 x 4 tiles of int8 codes for the MAC array, with per-row scales."""

    tiles: np.ndarray
    tile_columns: np.ndarray
    tile_row_starts: np.ndarray
    scales: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="mac-int8", init=False)

    @classmethod
    def encode(cls, codes, scale) -> MACInt8Weights:
        csr, scale = _check_codes(codes, scale)
        rows, cols = csr.shape
        tr, tc = MAC_TILE
        n_tr, n_tc = -(-rows // tr), -(-cols // tc)
        dense = np.zeros((n_tr * tr, n_tc * tc), dtype=np.int8)
        dense[:rows, :cols] = csr.toarray()
        grid = dense.reshape(n_tr, tr, n_tc, tc).transpose(0, 2, 1, 3)  # (n_tr, n_tc, tr, tc)
        stored = np.any(grid != 0, axis=(2, 3))
        tile_rows, tile_cols = np.nonzero(stored)  # row-major: tile row by tile row
        starts = np.concatenate([[0], np.cumsum(stored.sum(axis=1))])
        n_tiles = int(stored.sum())
        return cls(
            tiles=np.ascontiguousarray(grid[tile_rows, tile_cols]),
            tile_columns=tile_cols.astype(index_dtype(max(n_tc - 1, 0))),
            tile_row_starts=starts.astype(index_dtype(n_tiles)),
            scales=scale,
            shape=(int(rows), int(cols)),
        )

    @property
    def num_tiles(self) -> int:
        return int(self.tiles.shape[0])

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.tiles))

    @property
    def bytes(self) -> int:
        return (
            padded_bytes(self.tiles.size, 1)
            + padded_bytes(self.num_tiles, self.tile_columns.itemsize)
            + padded_bytes(self.tile_row_starts.shape[0], self.tile_row_starts.itemsize)
            + self.scale_bytes
        )

    def _tile_row_of(self) -> np.ndarray:
        return np.repeat(
            np.arange(self.tile_row_starts.shape[0] - 1),
            np.diff(self.tile_row_starts.astype(np.int64)),
        )

    def decode(self) -> np.ndarray:
        tr, tc = MAC_TILE
        n_tr = self.tile_row_starts.shape[0] - 1
        n_tc = -(-self.shape[1] // tc)
        dense = np.zeros((n_tr, n_tc, tr, tc), dtype=np.int8)
        dense[self._tile_row_of(), self.tile_columns.astype(np.int64)] = self.tiles
        full = dense.transpose(0, 2, 1, 3).reshape(n_tr * tr, n_tc * tc)
        return full[: self.shape[0], : self.shape[1]].copy()

    def integer_matvec(self, codes: np.ndarray) -> np.ndarray:
        """int32 accumulators ``W_q @ e`` for int8 input codes ``e`` (exact)."""
        tr, tc = MAC_TILE
        codes = np.asarray(codes)
        n_tc = -(-self.shape[1] // tc)
        e = np.zeros(n_tc * tc, dtype=np.int32)
        e[: self.shape[1]] = codes
        e_tiles = e.reshape(n_tc, tc)[self.tile_columns.astype(np.int64)]  # (T, tc)
        partial = np.einsum("trc,tc->tr", self.tiles.astype(np.int32), e_tiles)  # (T, tr)
        n_tr = self.tile_row_starts.shape[0] - 1
        acc = np.zeros((n_tr, tr), dtype=np.int32)
        np.add.at(acc, self._tile_row_of(), partial)
        return acc.reshape(-1)[: self.shape[0]]

    def matvec(self, x: np.ndarray, *, x_scale: float) -> np.ndarray:
        """Quantise ``x`` with ``x_scale``, accumulate in int32, rescale ("int8" mode)."""
        acc = self.integer_matvec(quantize_codes(x, x_scale))
        combined = (self.scales * np.float32(x_scale)).astype(np.float32)
        return (acc.astype(np.float32) * combined).astype(np.float32)

    def tiles_issued(self, x: np.ndarray) -> int:
        """Stored tiles with at least one non-zero input among their four columns."""
        tc = MAC_TILE[1]
        n_tc = -(-self.shape[1] // tc)
        active = np.zeros(n_tc * tc, dtype=bool)
        active[: self.shape[1]] = np.asarray(x) != 0
        return int(active.reshape(n_tc, tc).any(axis=1)[self.tile_columns.astype(np.int64)].sum())

    def weights_touched(self, x: np.ndarray) -> int:
        return self.tiles_issued(x) * MAC_TILE[0] * MAC_TILE[1]


_CLASSES = {
    "csr-int8": CSRInt8Weights,
    "event-int8": EventInt8Weights,
    "mac-int8": MACInt8Weights,
}


def encode_quantized(codes, scale, format_name: str):
    """Encode an int8 code block (CSR or dense int8) and its per-row scales in a format."""
    _check_int8_format(format_name)
    return _CLASSES[format_name].encode(codes, scale)


def _check_int8_format(format_name: str) -> None:
    if format_name not in QUANTIZED_WEIGHT_FORMATS:
        raise ValueError(
            f"unknown int8 weight format {format_name!r}; choose one of "
            f"{', '.join(QUANTIZED_WEIGHT_FORMATS)}"
        )


# ------------------------------------------------------------------ byte counts without encoding
def mac_tile_count(codes: sp.csr_matrix) -> int:
    """Non-empty 16 x 4 tiles of a local block of codes (rows in local order), as
    :meth:`MACInt8Weights.encode` stores them, counted without building the tiles."""
    codes = sp.csr_matrix(codes)
    if not codes.nnz:
        return 0
    tr, tc = MAC_TILE
    rows = np.repeat(np.arange(codes.shape[0], dtype=np.int64), np.diff(codes.indptr))
    nonzero = codes.data != 0
    n_tc = -(-codes.shape[1] // tc)
    keys = (rows[nonzero] // tr) * n_tc + codes.indices[nonzero].astype(np.int64) // tc
    return int(np.unique(keys).size)


def int8_weight_bytes(format_name: str, rows: int, cols: int, nnz: int, tiles: int = 0) -> int:
    """Bytes a ``rows x cols`` block of ``nnz`` non-zero codes takes in an int8 format.

    Equal to ``encode_quantized(...).bytes`` (tested): ``csr-int8`` and ``event-int8`` from
    the counts alone, ``mac-int8`` from the number of non-empty tiles (:func:`mac_tile_count`).
    """
    _check_int8_format(format_name)
    scales = padded_bytes(rows, 4)
    if format_name == "csr-int8":
        col = index_dtype(max(cols - 1, 0)).itemsize
        starts = index_dtype(nnz).itemsize
        index = padded_bytes(nnz, col) + padded_bytes(rows + 1, starts)
        return padded_bytes(nnz, 1) + index + scales
    if format_name == "event-int8":
        row = index_dtype(max(rows - 1, 0)).itemsize
        starts = index_dtype(nnz).itemsize
        index = padded_bytes(nnz, row) + padded_bytes(cols + 1, starts)
        return padded_bytes(nnz, 1) + index + scales
    tr, tc = MAC_TILE  # mac-int8
    col = index_dtype(max(-(-cols // tc) - 1, 0)).itemsize
    starts = index_dtype(tiles).itemsize
    return (
        padded_bytes(tiles * tr * tc, 1)
        + padded_bytes(tiles, col)
        + padded_bytes(-(-rows // tr) + 1, starts)
        + scales
    )


def encode_pe_weights_int8(
    weight_ih, weight_hh, *, unit_start: int, unit_stop: int, format_name: str
):
    """The int8 analogue of :func:`spinnaker2_backend.formats.encode_pe_weights`.

    Args:
        weight_ih, weight_hh: :class:`snn_egru.reference.QuantizedWeight` of the layer.
        unit_start, unit_stop: the PE's units (local row ``g * n + k`` = gate ``g`` of unit
            ``unit_start + k``, as for the float formats).
        format_name: one of :data:`QUANTIZED_WEIGHT_FORMATS`.

    Returns:
        a :class:`spinnaker2_backend.formats.PEWeights` whose blocks are int8 encodings.
    """
    _check_int8_format(format_name)

    def block(qw, rows):
        return encode_quantized(
            sp.csr_matrix(qw.values)[rows], np.asarray(qw.scale)[rows], format_name
        )

    return pe_weights_of(
        (weight_ih, weight_hh), weight_hh.values.shape[1], unit_start, unit_stop, format_name, block
    )
