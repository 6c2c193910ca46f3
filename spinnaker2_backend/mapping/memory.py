"""Stage 4 of the mapping, and the byte model the partition uses: every byte of a PE's memory.

:class:`LayerMemoryModel` gives the bytes a slice of units ``[a, b)`` needs in each region
of the data memory (weights in the chosen format, per-unit variables, receive buffers of
the chosen receive policy, recordings, static data, the debug log, heap + stack) and the
code in the instruction memory; with a batch of ``B`` samples the per-sample state
(:data:`PER_SAMPLE_WORDS_PER_UNIT` and the receive buffers) is kept ``B`` times;
:func:`layer_memory_models` builds one per layer; :func:`layout_memory` turns a placement
into one :class:`MemoryLayout` per PE (exact byte accounting by region, with addresses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import QuantizedEGRUParams, validate_quantized_params
from spinnaker2_backend.constants import ChipSpec
from spinnaker2_backend.formats import WEIGHT_FORMATS, slice_rows, word_count
from spinnaker2_backend.formats_int8 import (
    MAC_TILE,
    QUANTIZED_WEIGHT_FORMATS,
    index_dtype,
    int8_weight_bytes,
    mac_tile_count,
    padded_bytes,
)
from spinnaker2_backend.mapping.base import CAPPED_RECEIVE_POLICIES as CAPPED
from spinnaker2_backend.mapping.base import (
    HasSlices,
    MappingError,
    check_batch_size,
    check_options,
    check_receive_policy,
)

__all__ = [
    "DATA_REGIONS",
    "PER_SAMPLE_WORDS_PER_UNIT",
    "TABLE_I_COLUMNS",
    "LayerMemoryModel",
    "MemoryLayout",
    "VARIABLE_WORDS_PER_UNIT",
    "check_artifact_format",
    "full_capacity",
    "layer_memory_models",
    "layout_memory",
]


#: Regions of a PE's data memory, in address order (heap + stack at the top).
DATA_REGIONS: tuple[str, ...] = (
    "static_data",
    "weights",
    "variables",
    "receive_buffers",
    "recordings",
    "debug",
    "stack_heap",
)


def _region(name: str) -> property:
    """A read-only attribute: the bytes of one region of :data:`DATA_REGIONS`."""
    return property(lambda self: self.region(name), doc=f"Bytes of the {name} region.")


#: How the model's regions add up to the columns of the published memory table (Table I of
#: S2-EGRU, docs/spinnaker2.md, "Where every byte lives"): ``instruction`` is the code;
#: ``debug`` is the log buffer plus heap + stack (the only published region large enough to
#: hold the 4 KiB heap + stack); ``variables`` is everything else the program keeps that is
#: not a weight: static data, per-unit state, what it keeps of received events, recordings.
TABLE_I_COLUMNS: dict[str, tuple[str, ...]] = {
    "instruction": ("code",),
    "debug": ("debug", "stack_heap"),
    "weights": ("weights",),
    "variables": ("static_data", "variables", "receive_buffers", "recordings"),
}

#: Words of per-unit state a PE keeps (besides weights and buffers): c, y, threshold (1 each),
#: bias_ih, bias_hh (3 each: one per gate), gate buffers gi = W_ih x + b_ih and
#: gh = W_hh y + b_hh (3 each). A unit whose trace is read out adds 1 word.
VARIABLE_WORDS_PER_UNIT: dict[str, int] = {
    "c": 1,
    "y": 1,
    "threshold": 1,
    "bias_ih": 3,
    "bias_hh": 3,
    "gi": 3,
    "gh": 3,
}

#: Of those, the words a PE keeps once per sample of a batch: the state ``c`` and ``y``
#: (and the trace when there is one). The gate buffers are scratch, reused sample after
#: sample; thresholds and biases are shared.
PER_SAMPLE_WORDS_PER_UNIT: dict[str, int] = {"c": 1, "y": 1}


@dataclass(frozen=True)
class MemoryLayout:
    """Exact byte accounting of one PE's memories.

    Data memory regions (bytes, see :data:`DATA_REGIONS`): ``static_data`` (the program's
    .data/.bss), ``weights``, ``variables``, ``receive_buffers``, ``recordings``, ``debug``
    (the log buffer), ``stack_heap``. ``code`` lives in the instruction memory.

    Attributes:
        pe: global PE index.
        layer: layer number.
        unit_start, unit_stop: the PE's units.
        weight_format: the weight format.
        items: ``(region, item, bytes)`` for every buffer (e.g. ``("weights", "weight_hh",
            12345)``); the regions are the sums of their items.
        code: bytes of instruction memory used by the program.
        data_capacity: bytes of data memory (96 KiB).
        code_capacity: bytes of instruction memory (32 KiB).
    """

    pe: int
    layer: int
    unit_start: int
    unit_stop: int
    weight_format: str
    items: tuple[tuple[str, str, int], ...]
    code: int
    data_capacity: int
    code_capacity: int

    def region(self, name: str) -> int:
        """Bytes of one data-memory region."""
        if name not in DATA_REGIONS:
            raise KeyError(f"unknown region {name!r}; regions: {', '.join(DATA_REGIONS)}")
        return sum(b for r, _, b in self.items if r == name)

    def regions(self) -> dict[str, int]:
        """Bytes per data-memory region, in address order."""
        return {name: self.region(name) for name in DATA_REGIONS}

    weights = _region("weights")
    variables = _region("variables")
    receive_buffers = _region("receive_buffers")
    recordings = _region("recordings")
    static_data = _region("static_data")
    stack_heap = _region("stack_heap")
    debug = _region("debug")

    def table_i_columns(self) -> dict[str, int]:
        """Bytes per column of the published memory table (:data:`TABLE_I_COLUMNS`)."""
        regions = self.regions()
        regions["code"] = self.code
        return {col: sum(regions[r] for r in parts) for col, parts in TABLE_I_COLUMNS.items()}

    @property
    def total(self) -> int:
        """Bytes of data memory used (all regions)."""
        return sum(b for _, _, b in self.items)

    @property
    def free(self) -> int:
        """Bytes of data memory left (negative when the PE overflows)."""
        return self.data_capacity - self.total

    @property
    def utilisation(self) -> float:
        """Fraction of the data memory used."""
        return self.total / self.data_capacity

    @property
    def code_free(self) -> int:
        return self.code_capacity - self.code

    @property
    def fits(self) -> bool:
        return self.free >= 0 and self.code_free >= 0

    def address_map(self) -> dict[str, tuple[int, int]]:
        """``region -> (start, stop)`` byte offsets in data memory.

        Regions are laid out from address 0 in :data:`DATA_REGIONS` order, except heap +
        stack, which sits at the top of the memory (the stack grows down from the end).
        """
        out: dict[str, tuple[int, int]] = {}
        address = 0
        for name in DATA_REGIONS:
            size = self.region(name)
            if name == "stack_heap":
                out[name] = (self.data_capacity - size, self.data_capacity)
            else:
                out[name] = (address, address + size)
                address += size
        return out

    def overflow_region(self) -> str | None:
        """The first region (in address order) that runs into heap + stack, if any."""
        top = self.data_capacity - self.stack_heap
        for name, (_, stop) in self.address_map().items():
            if name != "stack_heap" and stop > top:
                return name
        return None

    def largest_region(self) -> str:
        regions = self.regions()
        return max(regions, key=regions.get)


@dataclass(frozen=True)
class LayerMemoryModel:
    """Bytes a PE of one layer needs, as a function of its units ``[a, b)``.

    The data memory of a slice is additive: ``fixed_bytes + sum(unit_bytes[a:b])`` (tested),
    which lets the partition search slices quickly; :meth:`items` gives the exact per-buffer
    account used by :func:`layout_memory`.

    Attributes:
        layer: layer number.
        hidden_size, input_size: ``H`` and ``I``.
        weight_format: ``"csr"``, ``"event"`` or ``"dense"``.
        record_steps: steps of ``y`` (and timer readings) recorded in SRAM.
        keeps_trace: the PE keeps a low-pass trace of ``y`` (read out by the host).
        spec: the chip figures.
        nnz_ih_prefix, nnz_hh_prefix: ``(H + 1,)`` cumulative stored weights of units
            (their three gate rows) in ``weight_ih`` / ``weight_hh``.
        receive_policy: how received events are kept (:data:`~spinnaker2_backend.mapping.
            base.RECEIVE_POLICIES`).
        receive_capacity: entries of the ``event-list`` (events of one product).
        input_by_packets: the layer's input arrives as packets (every layer but a layer 0
            fed from DRAM, whose input vector is a DMA target of ``I`` words).
        batch_size: samples kept per PE.
        quantized: for the int8 formats, the layer's ``(weight_ih, weight_hh)``
            :class:`~snn_egru.reference.QuantizedWeight` (the ``mac-int8`` tiles depend on
            where the non-zeros are, not only on how many there are).

    The int8 formats are not additive: their index arrays widen with the slice (``uint8`` /
    ``uint16`` / ``uint32``), every array is padded to a word, and a ``mac-int8`` tile is
    shared by the 16 rows it spans. :meth:`items` (and so :meth:`data_bytes`, the layout and
    the fit check) is exact for every slice; :meth:`unit_bytes` is then an estimate the
    partition starts from and corrects against :meth:`data_bytes` (:attr:`additive`).
    """

    layer: int
    hidden_size: int
    input_size: int
    weight_format: str
    record_steps: int
    keeps_trace: bool
    spec: ChipSpec
    nnz_ih_prefix: np.ndarray
    nnz_hh_prefix: np.ndarray
    receive_policy: str = "dense"
    receive_capacity: int = 0
    input_by_packets: bool = True
    batch_size: int = 1
    quantized: tuple | None = field(default=None, repr=False, compare=False)
    _tile_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def additive(self) -> bool:
        """``data_bytes(a, b) == fixed_bytes() + sum(unit_bytes()[a:b])`` exactly (float
        formats); ``False`` for the int8 formats, whose :meth:`unit_bytes` is an estimate."""
        return self.weight_format not in QUANTIZED_WEIGHT_FORMATS

    @property
    def sibling_formats(self) -> tuple[str, ...]:
        """The formats this layer's weights can also be stored in (float or int8)."""
        if self.weight_format in QUANTIZED_WEIGHT_FORMATS:
            return QUANTIZED_WEIGHT_FORMATS
        return WEIGHT_FORMATS

    def _tiles(self, which: int, a: int, b: int) -> int:
        key = (which, a, b)
        if key not in self._tile_cache:
            codes = self.quantized[which].values
            rows = slice_rows(self.hidden_size, a, b)
            self._tile_cache[key] = mac_tile_count(codes[rows])
        return self._tile_cache[key]

    def weight_bytes(self, a: int, b: int, format_name: str | None = None) -> tuple[int, int]:
        """Exact bytes of ``(weight_ih, weight_hh)`` of units ``[a, b)`` in a format (default:
        the model's), float32 or int8 (:func:`~spinnaker2_backend.formats_int8.
        int8_weight_bytes`)."""
        fmt = format_name or self.weight_format
        rows = 3 * (b - a)
        nnz_ih, nnz_hh = self.nnz(a, b)
        cols = (self.input_size, self.hidden_size)
        if fmt not in QUANTIZED_WEIGHT_FORMATS:
            wb = self.spec.word_bytes
            return (
                wb * word_count(fmt, rows, cols[0], nnz_ih),
                wb * word_count(fmt, rows, cols[1], nnz_hh),
            )
        if fmt == "mac-int8" and self.quantized is None:
            raise ValueError("mac-int8 byte counts need the layer's int8 weights (quantized=)")
        out = []
        for which, nnz in enumerate((nnz_ih, nnz_hh)):
            tiles = self._tiles(which, a, b) if fmt == "mac-int8" else 0
            out.append(int8_weight_bytes(fmt, rows, cols[which], nnz, tiles))
        return out[0], out[1]

    @property
    def bytes_per_stored_weight(self) -> int:
        """Bytes one more stored weight costs (value + index; 0 when not linear in them)."""
        fmt = self.weight_format
        if fmt == "dense" or fmt == "mac-int8":
            return 0
        if fmt == "csr-int8":
            return 1 + index_dtype(max(self.input_size, self.hidden_size) - 1).itemsize
        if fmt == "event-int8":
            return 1 + index_dtype(3 * self.hidden_size - 1).itemsize
        return 2 * self.spec.word_bytes

    @property
    def variable_words_per_unit(self) -> int:
        """Words of state per unit, the batch's extra samples included."""
        return (
            sum(VARIABLE_WORDS_PER_UNIT.values())
            + (1 if self.keeps_trace else 0)
            + (self.batch_size - 1) * self.sample_words_per_unit
        )

    @property
    def sample_words_per_unit(self) -> int:
        """Words of per-sample state per unit (``c``, ``y``, the trace when kept)."""
        return sum(PER_SAMPLE_WORDS_PER_UNIT.values()) + (1 if self.keeps_trace else 0)

    def receive_items(self) -> list[tuple[str, int]]:
        """``(item, words)`` of the receive buffers of one sample, by receive policy."""
        i, h = self.input_size, self.hidden_size
        policy = self.receive_policy
        if policy == "dense":
            return [("input vector", i), ("y_prev of the layer", h)]
        if policy == "reused":
            return [("input / y_prev vector (shared)", max(i, h))]
        out = [] if self.input_by_packets else [("input vector (DMA target)", i)]
        if policy == "event-list":
            entries = self.spec.receive_list_entry_words * self.receive_capacity
            label = f"received-event list ({self.receive_capacity} entries + count)"
            out.append((label, entries + 1))
        if policy == "bitmap16":  # receive_designs.receive_items("bitmap16"), in words
            bitmap = -(-max(i if self.input_by_packets else 0, h) // 32)
            out.append((f"received bitmap ({bitmap} words)", bitmap))
            out.append(("rank directory (16 bits per bitmap word)", -(-bitmap // 2)))
            cap = self.receive_capacity
            out.append((f"received values ({cap} x binary16)", -(-cap // 2)))
        return out

    def receive_bytes(self) -> int:
        """Bytes of the receive buffers of one sample."""
        return self.spec.word_bytes * sum(w for _, w in self.receive_items())

    def per_sample_bytes(self, a: int, b: int) -> int:
        """Data memory one more sample of a batch adds to a PE holding units ``[a, b)``:
        its state ``c`` and ``y`` (and trace), its receive buffers, its recorded ``y``."""
        wb = self.spec.word_bytes
        n = b - a
        return (
            wb * n * self.sample_words_per_unit + self.receive_bytes() + wb * n * self.record_steps
        )

    def nnz(self, a: int, b: int) -> tuple[int, int]:
        """Stored weights of units ``[a, b)`` in ``(weight_ih, weight_hh)``."""
        return (
            int(self.nnz_ih_prefix[b] - self.nnz_ih_prefix[a]),
            int(self.nnz_hh_prefix[b] - self.nnz_hh_prefix[a]),
        )

    def items(self, a: int, b: int) -> tuple[tuple[str, str, int], ...]:
        """``(region, item, bytes)`` of every buffer of a PE holding units ``[a, b)``."""
        wb = self.spec.word_bytes
        n = b - a
        w_ih, w_hh = self.weight_bytes(a, b)
        out = [
            ("static_data", "program static data", self.spec.egru_static_data_bytes),
            ("weights", "weight_ih", w_ih),
            ("weights", "weight_hh", w_hh),
        ]
        for name, words in VARIABLE_WORDS_PER_UNIT.items():
            out.append(("variables", name, wb * words * n))
        if self.keeps_trace:
            out.append(("variables", "trace", wb * n))
        extra = self.batch_size - 1
        if extra:
            out.append(
                (
                    "variables",
                    f"per-sample state of {extra} more samples (c, y"
                    + (", trace" if self.keeps_trace else "")
                    + ")",
                    wb * extra * n * self.sample_words_per_unit,
                )
            )
        for name, words in self.receive_items():
            label = name if self.batch_size == 1 else f"{name} x {self.batch_size} samples"
            out.append(("receive_buffers", label, wb * words * self.batch_size))
        if self.weight_format == "mac-int8":  # the MAC array reads int8 operands
            operands = padded_bytes(max(self.input_size, self.hidden_size), 1)
            out.append(("receive_buffers", "int8 operand vector (MAC array)", operands))
        out.append(("recordings", "recorded y", wb * n * self.record_steps * self.batch_size))
        out.append(
            (
                "recordings",
                "recorded timer",
                wb * self.spec.profile_words_per_step * self.record_steps,
            )
        )
        out.append(("debug", "log buffer", self.spec.debug_log_bytes))
        out.append(("stack_heap", "heap + stack", self.spec.stack_heap_bytes))
        return tuple(out)

    def data_bytes(self, a: int, b: int) -> int:
        """Data memory used by a PE holding units ``[a, b)``."""
        return sum(size for _, _, size in self.items(a, b))

    def fixed_bytes(self) -> int:
        """Data memory a PE of this layer uses whatever its units (``data_bytes(a, a)``)."""
        return self.data_bytes(0, 0)

    def unit_bytes(self) -> np.ndarray:
        """``(H,)`` data memory each unit adds to its PE (int64).

        Exact for the float formats; for the int8 formats an estimate (see the class
        docstring): ``csr-int8`` / ``event-int8`` count each stored code with the widest
        index the layer can need, ``mac-int8`` shares the tiles of the whole layer (as one
        block) among the units in proportion to their non-empty 4-column groups.
        """
        wb = self.spec.word_bytes
        nnz_ih, nnz_hh = np.diff(self.nnz_ih_prefix), np.diff(self.nnz_hh_prefix)
        nnz = nnz_ih + nnz_hh
        fmt = self.weight_format
        if fmt == "csr":
            weight_bytes = wb * (2 * nnz + 6)  # 3 row starts in each of the two matrices
        elif fmt == "event":
            weight_bytes = wb * 2 * nnz
        elif fmt == "dense":
            weight_bytes = np.full(self.hidden_size, wb * 3 * (self.input_size + self.hidden_size))
        elif fmt == "csr-int8":
            col = [index_dtype(max(c - 1, 0)).itemsize for c in (self.input_size, self.hidden_size)]
            starts = [
                index_dtype(int(p[-1])).itemsize for p in (self.nnz_ih_prefix, self.nnz_hh_prefix)
            ]
            weight_bytes = (
                nnz_ih * (1 + col[0]) + nnz_hh * (1 + col[1]) + 3 * (starts[0] + starts[1]) + 24
            )
        elif fmt == "event-int8":
            row = index_dtype(3 * self.hidden_size - 1).itemsize
            weight_bytes = nnz * (1 + row) + 24
        else:  # mac-int8
            weight_bytes = np.zeros(self.hidden_size, dtype=np.float64)
            for which in (0, 1):
                groups = self._unit_groups(which)
                total = groups.sum()
                if total:
                    tiles = self._tiles(which, 0, self.hidden_size)
                    weight_bytes += tiles * (MAC_TILE[0] * MAC_TILE[1] + 1) * groups / total
            weight_bytes = np.ceil(weight_bytes) + 24
        words = self.variable_words_per_unit + self.record_steps * self.batch_size
        return (np.asarray(weight_bytes) + wb * words).astype(np.int64)

    def _unit_groups(self, which: int) -> np.ndarray:
        """``(H,)`` non-empty (row, 4-column group) pairs of each unit's three rows."""
        codes = sp.csr_matrix(self.quantized[which].values)
        rows = np.repeat(np.arange(codes.shape[0], dtype=np.int64), np.diff(codes.indptr))
        keys = rows * (codes.shape[1] // MAC_TILE[1] + 1) + codes.indices // MAC_TILE[1]
        unique_rows = np.unique(keys) // (codes.shape[1] // MAC_TILE[1] + 1)
        per_row = np.bincount(unique_rows, minlength=codes.shape[0])
        return per_row.reshape(3, self.hidden_size).sum(axis=0).astype(np.float64)

    def layout(self, pe: int, a: int, b: int) -> MemoryLayout:
        """The :class:`MemoryLayout` of PE ``pe`` holding units ``[a, b)``."""
        return MemoryLayout(
            pe=pe,
            layer=self.layer,
            unit_start=a,
            unit_stop=b,
            weight_format=self.weight_format,
            items=self.items(a, b),
            code=self.spec.egru_code_bytes,
            data_capacity=self.spec.data_memory_bytes,
            code_capacity=self.spec.instruction_memory_bytes,
        )


def _nonzero_codes(qw) -> sp.csr_matrix:
    codes = sp.csr_matrix(qw.values, copy=True)
    codes.eliminate_zeros()
    return codes


def check_artifact_format(artifact: DeploymentArtifact, weight_format: str) -> None:
    """Raise :class:`MappingError` unless the artifact's layers can be stored in the format.

    A float32 format needs float layers, an int8 format int8 layers of the matching product
    mode (``csr-int8`` / ``event-int8``: ``"float"``, int8 weights x float32 events on the
    Arm core; ``mac-int8``: ``"int8"``, events quantised for the MAC array); the int8 layers
    must be valid (scales one per row, codes in [-127, 127]). Each message names the fix.
    """
    kinds = [isinstance(layer, QuantizedEGRUParams) for layer in artifact.layers]
    int8_format = weight_format in QUANTIZED_WEIGHT_FORMATS
    if not int8_format:
        if any(kinds):
            raise MappingError(
                f"the artifact has int8 layers (version 2) but weight format {weight_format!r} "
                "stores float32 weights: map with --weight-format csr-int8 or event-int8 "
                "(int8 weights x float32 events) or mac-int8 (int8 products), or map "
                "artifact.dequantized() (weights code * scale) with a float format"
            )
        return
    if not all(kinds):
        floats = [i for i, q in enumerate(kinds) if not q]
        raise MappingError(
            f"weight format {weight_format!r} stores int8 codes but layer(s) "
            f"{', '.join(map(str, floats))} of the artifact are float32: quantise it first "
            "(`snn-egru export --quantize int8`, or the PTQ API "
            "snn_egru.quantization.quantize_artifact), or map it with csr, event or dense"
        )
    for i, layer in enumerate(artifact.layers):
        try:
            validate_quantized_params(layer, name=f"layer {i}")
        except ValueError as err:
            raise MappingError(
                f"{err}: re-quantise the layer (snn_egru.reference.quantize_weight, or "
                "`snn-egru export --quantize int8`)"
            ) from None
        mode = layer.product_mode
        if weight_format == "mac-int8" and mode != "int8":
            raise MappingError(
                f"layer {i} has product mode 'float' (int8 weights x float32 events) but the "
                "MAC array of mac-int8 multiplies int8 x int8: quantise the events too "
                "(`snn-egru export --quantize int8 --quant-products int8 --calibration X.npy`, "
                "quantize_artifact(..., mode='int8')) or map with csr-int8 / event-int8"
            )
        if weight_format != "mac-int8" and mode != "float":
            raise MappingError(
                f"layer {i} has product mode 'int8' (events quantised for the MAC array) but "
                f"{weight_format!r} multiplies int8 weights by float32 events on the Arm core: "
                "map with --weight-format mac-int8, or export with --quant-products float"
            )


def _unit_nnz(weight, hidden: int) -> np.ndarray:
    """``(H,)`` stored weights of each unit's three gate rows."""
    if sp.issparse(weight):
        row_nnz = np.diff(sp.csr_matrix(weight).indptr)
    else:
        row_nnz = np.count_nonzero(np.asarray(weight), axis=1)
    return row_nnz.reshape(3, hidden).sum(axis=0).astype(np.int64)


def layer_memory_models(
    artifact: DeploymentArtifact,
    *,
    spec: ChipSpec,
    weight_format: str,
    record_steps: int = 0,
    receive_policy: str = "dense",
    receive_capacity: int | Sequence[int] | None = None,
    input_source: str = "dram",
    batch_size: int = 1,
) -> list[LayerMemoryModel]:
    """One :class:`LayerMemoryModel` per layer of ``artifact``.

    Args:
        receive_policy: how PEs keep received events (``RECEIVE_POLICIES``).
        receive_capacity: entries of the ``event-list`` per layer (one int for every layer,
            or one per layer); default: room for every source (it never overflows).
        input_source: ``"dram"`` (layer 0's input is a DMA target) or ``"host"`` (packets).
        batch_size: samples kept per PE.

    For the int8 formats each model holds the layer's quantized weights (its ``mac-int8``
    tiles depend on where the non-zeros are); their bytes are exact per slice and only
    estimated per unit (:class:`LayerMemoryModel`, :attr:`~LayerMemoryModel.additive`).
    """
    check_options(weight_format, record_steps, input_source)
    check_receive_policy(receive_policy, weight_format)
    check_artifact_format(artifact, weight_format)
    batch_size = check_batch_size(batch_size)
    capacities = _capacities(artifact, receive_capacity, input_source)
    models = []
    last = artifact.num_layers - 1
    quantized_format = weight_format in QUANTIZED_WEIGHT_FORMATS
    for i, layer in enumerate(artifact.layers):
        hidden = layer.hidden_size
        w_ih, w_hh = layer.weight_ih, layer.weight_hh
        quantized = None
        if quantized_format:
            quantized = (w_ih, w_hh)
            w_ih, w_hh = (_nonzero_codes(w) for w in quantized)
        models.append(
            LayerMemoryModel(
                layer=i,
                hidden_size=hidden,
                input_size=layer.input_size,
                weight_format=weight_format,
                record_steps=int(record_steps),
                keeps_trace=artifact.readout_source == "trace" and i == last,
                spec=spec,
                nnz_ih_prefix=np.concatenate([[0], np.cumsum(_unit_nnz(w_ih, hidden))]),
                nnz_hh_prefix=np.concatenate([[0], np.cumsum(_unit_nnz(w_hh, hidden))]),
                receive_policy=receive_policy,
                receive_capacity=capacities[i] if receive_policy in CAPPED else 0,
                input_by_packets=i > 0 or input_source != "dram",
                batch_size=batch_size,
                quantized=quantized,
            )
        )
    return models


def full_capacity(artifact: DeploymentArtifact, layer: int, input_source: str = "dram") -> int:
    """Entries an ``event-list`` needs so that it can never overflow: every source of the
    larger of the two products (the layer's own units; its inputs when they come as packets)."""
    params = artifact.layers[layer]
    by_packets = layer > 0 or input_source != "dram"
    return max(params.hidden_size, params.input_size if by_packets else 0)


def _capacities(artifact, receive_capacity, input_source) -> list[int]:
    n = artifact.num_layers
    if receive_capacity is None:
        return [full_capacity(artifact, i, input_source) for i in range(n)]
    if isinstance(receive_capacity, int | np.integer):
        values = [int(receive_capacity)] * n
    else:
        values = [int(v) for v in receive_capacity]
        if len(values) != n:
            raise MappingError(
                f"receive_capacity has {len(values)} entries but the network has {n} layers"
            )
    for i, v in enumerate(values):
        if v < 0:
            raise MappingError(f"receive_capacity must be >= 0 entries, got {v} for layer {i}")
    return values


def layout_memory(
    models: Sequence[LayerMemoryModel], placement: HasSlices
) -> dict[int, MemoryLayout]:
    """Per PE (global index, in placement order), its :class:`MemoryLayout`."""
    out = {}
    for s in placement.slices:
        out[s.pe] = models[s.layer].layout(s.pe, s.unit_start, s.unit_stop)
    return out


# ============================================================================== check
