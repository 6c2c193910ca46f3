"""Weight formats: how a PE stores the weight rows of its units, with exact word counts.

A PE that computes units ``[a, b)`` of a layer with ``H`` units holds, of each of the
layer's matrices ``weight_ih (3H, I)`` and ``weight_hh (3H, H)``, the rows of its units in
all three gates (order r, z, n)::

    global rows = [a..b) , [H+a .. H+b) , [2H+a .. 2H+b)        (see :func:`slice_rows`)

i.e. a local block ``W`` of ``R = 3 n`` rows (``n = b - a``) and ``C`` columns, whose local row
``g * n + k`` is gate ``g`` of unit ``a + k``. The formats store that block (one word = 4 bytes,
float32 values, int32 indices):

``csr`` (the published deployment)
    ``values[NZ]`` float32, ``column_indices[NZ]`` int32, ``row_starts[R + 1]`` int32.
    Words: ``2 NZ + R + 1``. The PE walks every stored weight every step, whatever the
    activity.

``event`` (event-driven, column-major, one synaptic row per SOURCE unit)
    For each source column ``j`` (a unit of the input vector / of the layer), the targets in
    this PE: ``values[NZ]`` float32 and ``target_rows[NZ]`` int32 (local row ``g * n + k``),
    grouped by column; ``column_starts[C + 1]`` int32 tells where column ``j``'s run starts.
    This is CSC of the local block, the layout of SpiNNaker's synaptic rows (one row per
    source neuron). Words: ``2 NZ + C + 1``. When source ``j`` sent no event (``x_j = 0``),
    its run is skipped: the PE only touches the weights of units that fired.

``dense`` (the DVS deployment)
    ``values[R, C]`` float32, row-major. Words: ``R * C``. No indices.

Every encoded matrix has ``.nnz`` (stored non-zero weights), ``.words``, ``.bytes``,
``.decode()`` (the dense local block), ``.matvec(x)`` (``W @ x`` as the PE computes it) and
``.weights_touched(x)`` (how many stored weights the PE reads for input ``x``).

Values keep the dtype of the source matrix (float32 for deployment, float64 for exactness
checks); the byte counts always assume 4-byte words as on the chip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from spinnaker2_backend.constants import WORD_BYTES

__all__ = [
    "WEIGHT_FORMATS",
    "WORD_BYTES",
    "CSRWeights",
    "DenseWeights",
    "EncodedMatrix",
    "EventWeights",
    "assemble_blocks",
    "PEWeights",
    "WeightFormatName",
    "encode",
    "encode_pe_weights",
    "pe_weights_of",
    "format_class",
    "slice_rows",
    "word_count",
]

WeightFormatName = Literal["csr", "event", "dense"]

#: The weight formats a PE can store, by name.
WEIGHT_FORMATS: tuple[str, ...] = ("csr", "event", "dense")


def _check_format(name: str) -> None:
    if name not in WEIGHT_FORMATS:
        raise ValueError(
            f"unknown weight format {name!r}; choose one of {', '.join(WEIGHT_FORMATS)}"
        )


def word_count(format_name: str, rows: int, cols: int, nnz: int) -> int:
    """Words a ``rows x cols`` block with ``nnz`` stored weights takes in a format.

    ``csr``: ``2 nnz + rows + 1``; ``event``: ``2 nnz + cols + 1``; ``dense``: ``rows * cols``.
    """
    _check_format(format_name)
    if format_name == "csr":
        return 2 * nnz + rows + 1
    if format_name == "event":
        return 2 * nnz + cols + 1
    return rows * cols


def slice_rows(hidden_size: int, start: int, stop: int) -> np.ndarray:
    """Global rows of units ``[start, stop)`` in a ``(3H, .)`` gate matrix, gate-major.

    Returns ``[start..stop) , [H+start..H+stop) , [2H+start..2H+stop)`` as int64.
    """
    if not 0 <= start <= stop <= hidden_size:
        raise ValueError(f"unit range [{start}, {stop}) not inside a layer of {hidden_size} units")
    units = np.arange(start, stop, dtype=np.int64)
    return np.concatenate([units + g * hidden_size for g in range(3)])


def _as_csr(matrix) -> sp.csr_matrix:
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
    else:
        dense = np.asarray(matrix)
        if dense.ndim != 2:
            raise ValueError(f"a weight block must be 2-D, got shape {dense.shape}")
        csr = sp.csr_matrix(dense)  # stores the non-zeros only
    if not csr.has_sorted_indices:
        csr = csr.sorted_indices()
    return csr


def _as_dense(matrix) -> np.ndarray:
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    if dense.ndim != 2:
        raise ValueError(f"a weight block must be 2-D, got shape {dense.shape}")
    return dense


class EncodedMatrix:
    """Common interface of the encoded weight blocks (see the module docstring)."""

    format_name: str
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def words(self) -> int:
        """Words of PE data memory this block takes."""
        return word_count(self.format_name, self.shape[0], self.shape[1], self.nnz)

    @property
    def bytes(self) -> int:
        """Bytes of PE data memory (``words * 4``)."""
        return self.words * WORD_BYTES

    def decode(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def matvec(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def weights_touched(self, x: np.ndarray) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


class CompressedBlock:
    """A block compressed along one axis, as CSR (rows: ``csr``, ``csr-int8``) or CSC (source
    columns: the ``event`` layouts). ``_layout`` is the scipy type; ``_arrays`` names the
    fields that hold the stored values, their indices and the pointers."""

    _layout: ClassVar[type] = sp.csr_matrix
    _arrays: ClassVar[tuple[str, str, str]] = ("values", "column_indices", "row_starts")
    shape: tuple[int, int]

    @classmethod
    def _compress(cls, csr: sp.csr_matrix) -> sp.spmatrix:
        """``csr`` (indices sorted) in this layout, indices sorted."""
        if cls._layout is sp.csr_matrix:
            return csr
        block = sp.csc_matrix(csr)
        return block if block.has_sorted_indices else block.sorted_indices()

    @property
    def nnz(self) -> int:
        return int(getattr(self, self._arrays[0]).shape[0])

    def _scipy(self, dtype=None) -> sp.spmatrix:
        """The block as a scipy matrix of its layout (the stored values cast to ``dtype``)."""
        data, indices, pointers = (getattr(self, name) for name in self._arrays)
        data = data if dtype is None else data.astype(dtype)
        return self._layout((data, indices, pointers), shape=self.shape)


@dataclass(frozen=True, eq=False)
class CSRWeights(CompressedBlock, EncodedMatrix):
    """Compressed sparse rows: ``2 NZ + R + 1`` words.

    Attributes:
        values: ``(NZ,)`` weights, row by row.
        column_indices: ``(NZ,)`` int32 column of each weight (sorted within a row).
        row_starts: ``(R + 1,)`` int32; row ``i`` is ``values[row_starts[i]:row_starts[i+1]]``.
        shape: ``(R, C)``.
    """

    values: np.ndarray
    column_indices: np.ndarray
    row_starts: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="csr", init=False)

    @classmethod
    def encode(cls, matrix) -> CSRWeights:
        """Encode a dense array or scipy.sparse matrix (explicitly stored zeros are kept)."""
        csr = _as_csr(matrix)
        return cls(
            values=csr.data.copy(),
            column_indices=csr.indices.astype(np.int32),
            row_starts=csr.indptr.astype(np.int32),
            shape=(int(csr.shape[0]), int(csr.shape[1])),
        )

    def to_scipy(self) -> sp.csr_matrix:
        """The same block as a scipy CSR matrix (shares the arrays)."""
        return self._scipy()

    def decode(self) -> np.ndarray:
        return self.to_scipy().toarray()

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``W @ x`` row by row in stored order (the reference's CSR product, bit for bit)."""
        x = np.asarray(x)
        return np.asarray(self.to_scipy() @ x[:, None])[:, 0]

    def weights_touched(self, x: np.ndarray) -> int:
        """Every stored weight is read each step, whatever ``x``: ``NZ``."""
        return self.nnz


@dataclass(frozen=True, eq=False)
class EventWeights(CompressedBlock, EncodedMatrix):
    """Per-source-unit synaptic rows (CSC of the local block): ``2 NZ + C + 1`` words.

    Attributes:
        values: ``(NZ,)`` weights, grouped by source column.
        target_rows: ``(NZ,)`` int32 local target row (``gate * n + unit - a``) of each weight.
        column_starts: ``(C + 1,)`` int32; source ``j``'s targets are
            ``[column_starts[j], column_starts[j+1])``.
        shape: ``(R, C)``.
    """

    values: np.ndarray
    target_rows: np.ndarray
    column_starts: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="event", init=False)
    _layout: ClassVar[type] = sp.csc_matrix
    _arrays: ClassVar[tuple[str, str, str]] = ("values", "target_rows", "column_starts")

    @classmethod
    def encode(cls, matrix) -> EventWeights:
        """Encode a dense array or scipy.sparse matrix column by column."""
        csc = cls._compress(_as_csr(matrix))
        return cls(
            values=csc.data.copy(),
            target_rows=csc.indices.astype(np.int32),
            column_starts=csc.indptr.astype(np.int32),
            shape=(int(csc.shape[0]), int(csc.shape[1])),
        )

    def column_lengths(self) -> np.ndarray:
        """``(C,)`` targets per source column (the synaptic row lengths)."""
        return np.diff(self.column_starts)

    def to_scipy(self) -> sp.csc_matrix:
        """The same block as a scipy CSC matrix (shares the arrays)."""
        return self._scipy()

    def decode(self) -> np.ndarray:
        return self.to_scipy().toarray()

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``W @ x`` accumulating source column by source column (columns with ``x_j = 0``
        add nothing, so skipping them, as the PE does, gives the same result)."""
        x = np.asarray(x)
        return np.asarray(self.to_scipy() @ x[:, None])[:, 0]

    def weights_touched(self, x: np.ndarray) -> int:
        """Weights in the runs of the sources that sent an event (``x_j != 0``)."""
        active = np.asarray(x) != 0
        return int(self.column_lengths()[active].sum())


@dataclass(frozen=True, eq=False)
class DenseWeights(EncodedMatrix):
    """Row-major dense block: ``R * C`` words.

    Attributes:
        values: ``(R, C)`` weights.
        shape: ``(R, C)``.
    """

    values: np.ndarray
    shape: tuple[int, int]
    format_name: str = field(default="dense", init=False)

    @classmethod
    def encode(cls, matrix) -> DenseWeights:
        dense = np.ascontiguousarray(_as_dense(matrix))
        return cls(values=dense, shape=(int(dense.shape[0]), int(dense.shape[1])))

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.values))

    def decode(self) -> np.ndarray:
        return self.values.copy()

    def matvec(self, x: np.ndarray) -> np.ndarray:
        return self.values @ np.asarray(x)

    def weights_touched(self, x: np.ndarray) -> int:
        """The whole block is read: ``R * C``."""
        return self.shape[0] * self.shape[1]


_CLASSES: dict[str, type[EncodedMatrix]] = {
    "csr": CSRWeights,
    "event": EventWeights,
    "dense": DenseWeights,
}


def format_class(format_name: str) -> type[EncodedMatrix]:
    """The class that implements a weight format."""
    _check_format(format_name)
    return _CLASSES[format_name]


def encode(matrix, format_name: str) -> EncodedMatrix:
    """Encode a 2-D block (dense or scipy.sparse) in the named format."""
    return format_class(format_name).encode(matrix)  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class PEWeights:
    """The weights one PE stores: its units' rows of ``weight_ih`` and ``weight_hh``.

    Attributes:
        format_name: ``"csr"``, ``"event"`` or ``"dense"``.
        unit_start, unit_stop: the PE's units ``[unit_start, unit_stop)`` of the layer.
        hidden_size: ``H`` of the layer.
        weight_ih: encoded ``(3n, I)`` block (local row ``g * n + k`` = gate g of unit
            ``unit_start + k``).
        weight_hh: encoded ``(3n, H)`` block, same rows.
    """

    format_name: str
    unit_start: int
    unit_stop: int
    hidden_size: int
    weight_ih: EncodedMatrix
    weight_hh: EncodedMatrix

    @property
    def num_units(self) -> int:
        return self.unit_stop - self.unit_start

    @property
    def global_rows(self) -> np.ndarray:
        """Rows of the layer's ``(3H, .)`` matrices these blocks hold, in local order."""
        return slice_rows(self.hidden_size, self.unit_start, self.unit_stop)

    @property
    def nnz(self) -> int:
        return self.weight_ih.nnz + self.weight_hh.nnz

    @property
    def words(self) -> int:
        return self.weight_ih.words + self.weight_hh.words

    @property
    def bytes(self) -> int:
        return self.weight_ih.bytes + self.weight_hh.bytes


def encode_pe_weights(
    weight_ih, weight_hh, *, unit_start: int, unit_stop: int, format_name: str
) -> PEWeights:
    """Cut the rows of units ``[unit_start, unit_stop)`` out of a layer's matrices and encode.

    Args:
        weight_ih: ``(3H, I)`` dense or scipy.sparse.
        weight_hh: ``(3H, H)`` dense or scipy.sparse.
        unit_start, unit_stop: the PE's units.
        format_name: one of :data:`WEIGHT_FORMATS`.
    """
    _check_format(format_name)

    def block(w, rows):
        return encode(
            sp.csr_matrix(w)[rows] if sp.issparse(w) else np.asarray(w)[rows], format_name
        )

    return pe_weights_of(
        (weight_ih, weight_hh), weight_hh.shape[1], unit_start, unit_stop, format_name, block
    )


def pe_weights_of(
    weights, hidden: int, unit_start: int, unit_stop: int, format_name: str, encode_block
) -> PEWeights:
    """:class:`PEWeights` of units ``[unit_start, unit_stop)``: ``encode_block(w, rows)`` of
    each of the layer's ``(weight_ih, weight_hh)`` with the rows :func:`slice_rows` gives
    (the float and the int8 formats cut a PE's blocks alike)."""
    rows = slice_rows(hidden, unit_start, unit_stop)
    weight_ih, weight_hh = (encode_block(w, rows) for w in weights)
    return PEWeights(
        format_name=format_name,
        unit_start=unit_start,
        unit_stop=unit_stop,
        hidden_size=hidden,
        weight_ih=weight_ih,
        weight_hh=weight_hh,
    )


def assemble_blocks(blocks, rows_in_pe_order: np.ndarray, kind: str, dtype) -> object:
    """Stack per-PE encoded blocks and put their rows back in the layer's global order
    (dense array for ``dense``, CSR for ``csr``, CSC for ``event``)."""
    order = np.argsort(rows_in_pe_order, kind="stable")
    if kind == "dense":
        stacked = np.vstack([b.values for b in blocks])
        return np.ascontiguousarray(stacked[order], dtype=dtype)
    stacked = sp.vstack([b.to_scipy() for b in blocks], format="csr")
    matrix = stacked[order].astype(dtype)
    matrix.sort_indices()
    return matrix.tocsc() if kind == "event" else matrix
