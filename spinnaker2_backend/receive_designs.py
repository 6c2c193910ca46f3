"""Receive designs: what a PE keeps of the events it receives, accounted byte by byte and
costed cycle by cycle, so that the published memory table can choose between them.

A PE needs, per step, the events of its layer input (the previous layer's ``y``, or layer
0's input vector streamed from DRAM) and of its own layer's ``y_{t-1}``. Table I of the
published run gives the room left for that: "variables" 2.6 KB beside 88.3 KB of CSR
weights on the fullest PE. The candidates (:data:`RECEIVE_DESIGNS`):

``dense``
    a float32 vector per input, ``I + H`` words; the CSR walk reads ``x[col]`` for every
    stored weight (one MAC each); both vectors zeroed every step.
``reused``
    one float32 vector of ``max(I, H)`` words: the recurrent product runs as soon as the
    layer's own events are in (end of the previous step), then the vector is zeroed and
    takes the input.
``reused16``
    the same vector with 16 bits per source (a binary16 value, ``max(I, H) x 2`` bytes:
    1350 sources give 2,700 B, Table I's "2.6 KB" read as KiB); one ``VCVTB.F32.F16`` per
    stored weight walked.
``event-list``
    a list of ``(source index, float32 value)`` entries, 2 words each, of a capacity (the
    most events of one product in one step), reused by the two products; a CSR row's
    sorted column indices are merged with the sorted list (one merge step per row and
    entry).
``event-list16``
    the same list with a 16-bit index and a binary16 value per entry (1 word each).
``bitmap16``
    one bit per source (``ceil(S / 32)`` words), a 16-bit running count per bitmap word (the
    rank directory, built once per step) and the binary16 values of the sources that fired,
    in source order (``capacity`` half-words); reused by the two products as ``reused``.
    The CSR walk tests the source's bit for every stored weight (part of the fitted walk);
    only a set bit costs the MAC, the rank lookup and the value load
    (``bitmap_hit_cycles``).
``bitmap32``
    the same with float32 values (``capacity`` words): the chip's numbers stay float32.
``dma-pull``
    nothing is sent: each PE keeps its own ``y`` and, before each product, DMA-reads every
    sender's block of ``y`` into a double buffer (2 x the largest block). The CSR rows must
    then be split by sender block (one more row extent per row and sender), which costs
    weight memory.

:func:`receive_items` gives each candidate's buffers in bytes (tested by hand);
:func:`design_study` runs the realistic stand-in at several activities, records its
operation counts once per activity (a ``dense`` run: every event kept), and for every
candidate computes the fullest PE's Table I "variables" column, whether the PE fits, and
whether the published 170.25 ms can be reached by fitting the walk per stored weight (the
other costs of the candidate alone may already exceed it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spinnaker2_backend.constants import ChipSpec, CycleCosts

__all__ = [
    "RECEIVE_DESIGNS",
    "DesignOutcome",
    "design_study",
    "receive_bytes",
    "receive_items",
]

#: The candidates, in the order the study prints them (module docstring).
RECEIVE_DESIGNS: tuple[str, ...] = (
    "dense",
    "reused",
    "reused16",
    "event-list",
    "event-list16",
    "bitmap16",
    "bitmap32",
    "dma-pull",
)
#: The designs whose size depends on a capacity (the most events of one product).
CAPPED_DESIGNS: tuple[str, ...] = ("event-list", "event-list16", "bitmap16", "bitmap32")


def _words(nbytes: int, word: int) -> int:
    return -(-int(nbytes) // word)


def receive_items(
    design: str,
    *,
    input_size: int,
    hidden_size: int,
    input_by_packets: bool,
    capacity: int = 0,
    spec: ChipSpec | None = None,
    block_units: int = 0,
) -> list[tuple[str, int]]:
    """``(buffer, bytes)`` a PE keeps for the events of one sample under ``design``.

    Args:
        design: one of :data:`RECEIVE_DESIGNS`.
        input_size, hidden_size: ``I`` and ``H`` of the layer.
        input_by_packets: the layer input arrives as packets (every layer but a layer 0 fed
            from DRAM, whose input is a float32 DMA target of ``I`` words in every design).
        capacity: entries of a capped design (most events of one product in a step).
        spec: word size (default :class:`ChipSpec`).
        block_units: ``dma-pull``: units of the largest sender block.

    Raises:
        ValueError: unknown design, or a negative capacity.
    """
    if design not in RECEIVE_DESIGNS:
        raise ValueError(f"unknown receive design {design!r}; choose one of {RECEIVE_DESIGNS}")
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    word = (spec or ChipSpec()).word_bytes
    i, h = int(input_size), int(hidden_size)
    out: list[tuple[str, int]] = []
    if not input_by_packets:
        out.append(("input vector (DMA target, float32)", word * i))
        i = 0  # the packets carry only the layer's own events
    if design == "dense":
        if i:
            out.append(("input vector (float32)", word * i))
        out.append(("y_prev vector (float32)", word * h))
    elif design == "reused":
        out.append(("input / y_prev vector (float32, shared)", word * max(i, h)))
    elif design == "reused16":
        out.append(("input / y_prev vector (binary16, shared)", word * _words(2 * max(i, h), word)))
    elif design == "event-list":
        out.append((f"event list ({capacity} x index + float32, count)", word * (2 * capacity + 1)))
    elif design == "event-list16":
        out.append(
            (f"event list ({capacity} x 16-bit index + binary16, count)", word * (capacity + 1))
        )
    elif design in ("bitmap16", "bitmap32"):
        bitmap = _words(max(i, h), 32)
        out.append((f"bitmap ({max(i, h)} sources)", word * bitmap))
        out.append(("rank directory (16 bits per bitmap word)", word * _words(2 * bitmap, word)))
        size, kind = (2, "binary16") if design == "bitmap16" else (4, "float32")
        out.append((f"values ({capacity} x {kind})", word * _words(size * capacity, word)))
    else:  # dma-pull
        out.append((f"staging buffers (2 x {block_units} float32)", word * 2 * block_units))
    return out


def receive_bytes(design: str, **kwargs) -> int:
    """Total bytes of :func:`receive_items`."""
    return sum(b for _, b in receive_items(design, **kwargs))


@dataclass(frozen=True)
class DesignOutcome:
    """One candidate at one activity on the published mapping (fullest PE, one sequence).

    Attributes:
        design: the candidate. activity: target fraction of units firing per step.
        capacity: per layer, entries of a capped design (0 otherwise).
        receive_bytes: the fullest PE's receive buffers.
        variables_bytes: its Table I "variables" column (static data, per-unit state,
            receive buffers). weights_bytes: its "weights" column.
        total_bytes, capacity_bytes: its data memory used and available.
        floor_ms: the sequence's time with the walk per stored weight at its floor: the
            candidate's other costs alone (``> 170.25`` ms: the anchor cannot be reached).
        walk_cycles: the walk per stored weight (MAC excluded) that gives 170.25 ms, or None.
    """

    design: str
    activity: float
    capacity: tuple[int, ...]
    receive_bytes: int
    variables_bytes: int
    weights_bytes: int
    total_bytes: int
    capacity_bytes: int
    floor_ms: float
    walk_cycles: float | None

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @property
    def variables_error(self) -> float:
        """Relative error of the variables column against Table I's 2.6 KB (KiB reading)."""
        return self.variables_bytes / (2.6 * 1024) - 1.0


def _column_counts(block, sources: int) -> np.ndarray:
    """``(sources,)`` stored weights of a PE's CSR block in each source column."""
    return np.bincount(np.asarray(block.column_indices), minlength=sources).astype(np.float64)


def _layer_extra_cycles(design, ops, hits, info, costs: CycleCosts, capacity: int) -> np.ndarray:
    """``(T, P)`` cycles of one layer's PEs that depend on the design (the walk excluded)."""
    from spinnaker2_backend.timing import OP_INDEX as I

    walked = ops[:, I["input_weights"]] + ops[:, I["recurrent_weights"]]
    rows = ops[:, I["input_rows"]] + ops[:, I["recurrent_rows"]]
    entries = ops[:, I["packets_received"]]
    sources = max(info["sources"], 1)
    bitmap_words = -(-sources // 32)
    if design == "dense":
        return walked * costs.mac_cycles + info["dense_words"] * costs.clear_word_cycles
    if design == "reused":
        return walked * costs.mac_cycles + sources * costs.clear_word_cycles
    if design == "reused16":
        per_weight = costs.mac_cycles + costs.half_convert_cycles
        return walked * per_weight + -(-sources // 2) * costs.clear_word_cycles
    if design in ("event-list", "event-list16"):
        merge = rows / 2 * entries  # each product's rows merge with its own events
        return (
            walked * costs.mac_cycles
            + entries * costs.list_append_cycles
            + merge * costs.merge_step_cycles
        )
    if design in ("bitmap16", "bitmap32"):
        words = bitmap_words + -(-bitmap_words // 2)
        convert = costs.half_convert_cycles if design == "bitmap32" else 0.0
        return (
            hits * (costs.mac_cycles + costs.bitmap_hit_cycles - convert)
            + entries * costs.list_append_cycles
            + words * costs.clear_word_cycles
            + bitmap_words * costs.rank_word_cycles
        )
    # dma-pull: one DMA per sender block and product, the senders' y read, one more row
    # extent per row and sender block
    blocks = info["blocks"]
    pulled = info["pulled_bytes"]
    no_packets = (
        ops[:, I["packets_received"]] * costs.packet_receive_cycles
        + ops[:, I["packets_sent"]] * costs.packet_send_cycles
    )
    return (
        walked * costs.mac_cycles
        - no_packets
        + blocks * costs.dma_setup_cycles
        + pulled / costs.dma_bytes_per_cycle
        + rows * blocks / 2 * costs.extent_load_cycles
    )


@dataclass
class _LayerRecord:
    """What one layer of the recorded run gives the study."""

    walked: np.ndarray  # (T, P) stored weights walked
    rest: np.ndarray  # (T, P) cycles that do not depend on the design or the walk
    ops: np.ndarray  # (T, OPS, P)
    hits: np.ndarray  # (T, P) stored weights whose source fired
    info: dict
    capacity: int
    layouts: list  # MemoryLayout of each PE (mapped with the dense policy)


def _peak(events: np.ndarray) -> int:
    return int(np.count_nonzero(events, axis=1).max(initial=0)) if events.size else 0


def _record_layers(mapping, run, inputs, costs: CycleCosts) -> list[_LayerRecord]:
    from spinnaker2_backend.timing import OP_INDEX as I
    from spinnaker2_backend.timing import cost_matrix, phase_cycles

    bare = dataclasses.replace(
        costs,
        csr_nonzero_cycles=0.0,
        mac_cycles=0.0,
        clear_word_cycles=0.0,
        dense_element_saved_cycles=0.0,
    )
    artifact = mapping.artifact
    x_in = np.asarray(artifact.layer_inputs(inputs))
    out = []
    for layer, (ops, info) in enumerate(zip(run.step_ops, run.timing_infos)):
        ops = np.asarray(ops, dtype=np.float64)
        rest = phase_cycles(ops, cost_matrix(info, costs=bare, spec=mapping.spec)).sum(axis=1)
        params = artifact.layers[layer]
        by_packets = layer > 0 or mapping.input_source != "dram"
        x = x_in if layer == 0 else run.layer_events[layer - 1]
        y = run.layer_events[layer]
        y_prev = np.vstack([np.zeros((1, y.shape[1]), y.dtype), y[:-1]])
        slices = mapping.layers[layer].slices
        pe_w = [mapping.pe_weights(layer, s) for s in slices]
        c_in = np.stack([_column_counts(w.weight_ih, params.input_size) for w in pe_w], axis=1)
        c_rec = np.stack([_column_counts(w.weight_hh, params.hidden_size) for w in pe_w], axis=1)
        hits = (x != 0).astype(np.float64) @ c_in + (y_prev != 0).astype(np.float64) @ c_rec
        prev_pes = len(mapping.layers[layer - 1].slices) if layer > 0 else 0
        i_packets = params.input_size if by_packets else 0
        record = _LayerRecord(
            walked=ops[:, I["input_weights"]] + ops[:, I["recurrent_weights"]],
            rest=rest,
            ops=ops,
            hits=hits,
            info={
                "sources": max(i_packets, params.hidden_size),
                "dense_words": params.input_size + params.hidden_size,
                "blocks": (prev_pes if by_packets else 0) + len(slices),
                "pulled_bytes": mapping.spec.word_bytes * (i_packets + params.hidden_size),
                "by_packets": by_packets,
                "input_size": params.input_size,
                "hidden_size": params.hidden_size,
                "block_units": max(
                    s.num_units
                    for s in (
                        list(slices) + (list(mapping.layers[layer - 1].slices) if layer else [])
                    )
                ),
            },
            capacity=max(_peak(y), _peak(x) if by_packets else 0),
            layouts=[mapping.memory[s.pe] for s in slices],
        )
        out.append(record)
    return out


def _sequence_ms(records, extras, walk: float, tails: float, clock_hz: float, scale: float):
    total = tails
    for rec, extra in zip(records, extras):
        total += float(np.max(walk * rec.walked + rec.rest + extra, axis=1).sum())
    return 1e3 * total / clock_hz / scale


def _outcome(design, activity, records, tails, costs, spec, scale, target_ms) -> DesignOutcome:
    capped = design in CAPPED_DESIGNS
    extras, fullest = [], None
    for rec in records:
        cap = rec.capacity if capped else 0
        info = rec.info
        extras.append(_layer_extra_cycles(design, rec.ops, rec.hits, info, costs, cap))
        buffers = receive_bytes(
            design,
            input_size=info["input_size"],
            hidden_size=info["hidden_size"],
            input_by_packets=info["by_packets"],
            capacity=cap,
            spec=spec,
            block_units=info["block_units"],
        )
        for layout in rec.layouts:
            extra_weights = 0
            if design == "dma-pull":  # one more row extent per row and sender block
                rows = 3 * (layout.unit_stop - layout.unit_start)
                extra_weights = spec.word_bytes * rows * info["blocks"]
            total = layout.total - layout.receive_buffers + buffers + extra_weights
            if fullest is None or total > fullest[0]:
                columns = layout.table_i_columns()
                variables = columns["variables"] - layout.receive_buffers + buffers
                fullest = (total, variables, columns["weights"] + extra_weights, buffers, layout)
    floor = costs.dense_element_saved_cycles
    floor_ms = _sequence_ms(records, extras, floor, tails, spec.pe_clock_hz, scale)
    walk = None
    if floor_ms <= target_ms:
        low, high = floor, 1000.0
        while high - low > 1e-6:
            mid = 0.5 * (low + high)
            if _sequence_ms(records, extras, mid, tails, spec.pe_clock_hz, scale) < target_ms:
                low = mid
            else:
                high = mid
        walk = 0.5 * (low + high)
    total, variables, weights, buffers, layout = fullest
    return DesignOutcome(
        design=design,
        activity=activity,
        capacity=tuple(r.capacity if capped else 0 for r in records),
        receive_bytes=int(buffers),
        variables_bytes=int(variables),
        weights_bytes=int(weights),
        total_bytes=int(total),
        capacity_bytes=int(layout.data_capacity),
        floor_ms=float(floor_ms),
        walk_cycles=walk,
    )


def design_study(
    activities: Sequence[float] = (0.15, 0.20, 0.25, 0.30),
    *,
    designs: Sequence[str] = RECEIVE_DESIGNS,
    costs: CycleCosts | None = None,
    spec: ChipSpec | None = None,
) -> list[DesignOutcome]:
    """Every design at every activity on the published mapping (module docstring).

    For each activity the ``paper-lm`` stand-in is tuned to it (every layer), mapped 50 / 50
    / 50 with dense receive buffers (so that every event is kept; the mapping need not fit)
    and run once on the calibration tokens with every step recorded.
    """
    from spinnaker2_backend.calibration import (
        TARGET_SEQUENCE_SECONDS,
        calibration_inputs,
        calibration_mapping,
        record_calibration_run,
    )
    from spinnaker2_backend.results import SEQUENCE_TOKENS
    from spinnaker2_backend.synthetic import synthetic_network

    costs = costs if costs is not None else CycleCosts()
    spec = spec if spec is not None else ChipSpec()
    out = []
    for activity in activities:
        artifact = synthetic_network("paper-lm", activity=activity)
        tokens = calibration_inputs(artifact)
        mapping = calibration_mapping(
            artifact, receive_policy="dense", spec=spec, inputs=tokens, check=False
        )
        run = record_calibration_run(mapping, tokens)
        records = _record_layers(mapping, run, tokens, costs)
        tails = float(run.profile.layer_tails.sum())
        scale = run.steps / SEQUENCE_TOKENS
        for design in designs:
            out.append(
                _outcome(
                    design,
                    activity,
                    records,
                    tails,
                    costs,
                    spec,
                    scale,
                    TARGET_SEQUENCE_SECONDS * 1e3,
                )
            )
    return out
