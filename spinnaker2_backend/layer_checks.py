"""Argument checks of :class:`~spinnaker2_backend.layer_simulator.LayerSimulator` (and of
:class:`~spinnaker2_backend.simulator.NetworkSimulator`): dtype, tick, mapping and layer,
the layer's slices, overflow action and readout place, and a step's input."""

from __future__ import annotations

import numpy as np

from snn_egru.reference import EGRUState
from spinnaker2_backend.kernels import nonzero_and_bad
from spinnaker2_backend.mapping import Mapping
from spinnaker2_backend.mapping.base import OVERFLOW_ACTIONS

__all__ = [
    "check_chip_readout",
    "check_dtype",
    "check_input",
    "check_mapping",
    "check_options",
    "check_rounding",
    "check_slices",
    "check_state",
    "check_tick",
]


def check_dtype(dtype) -> np.dtype:
    """The simulator's float type (float32 or float64), else ValueError."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(
            f"the simulator runs in float32 (as the chip) or float64 (exactness checks), "
            f"got dtype {dtype}"
        )
    return dtype


def check_tick(tick_us: float | None) -> float | None:
    """A positive tick in microseconds (or None), else ValueError."""
    if tick_us is None:
        return None
    tick_us = float(tick_us)
    if not tick_us > 0:
        raise ValueError(f"tick_us must be a positive duration in microseconds, got {tick_us}")
    return tick_us


def check_mapping(mapping, layer) -> int:
    """The number of layers of ``mapping``, after checking it and the layer index."""
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"LayerSimulator needs a Mapping (from map_network), got {type(mapping).__name__}"
        )
    num_layers = len(mapping.layers)
    if not isinstance(layer, int | np.integer) or not 0 <= layer < num_layers:
        raise IndexError(f"layer {layer!r} out of range 0..{num_layers - 1}")
    return num_layers


def check_options(on_overflow: str, readout: str | None) -> None:
    """``on_overflow`` and ``readout`` are known values, else ValueError."""
    if on_overflow not in OVERFLOW_ACTIONS:
        raise ValueError(
            f"on_overflow must be one of {', '.join(OVERFLOW_ACTIONS)}, got {on_overflow!r}"
        )
    if readout not in (None, "host", "chip"):
        raise ValueError(f"readout must be 'host' or 'chip', got {readout!r}")


def check_chip_readout(layer: int, num_layers: int, artifact) -> None:
    """The on-chip readout runs on the last layer's PEs, of a network with a readout."""
    if layer != num_layers - 1:
        raise ValueError(
            f"the on-chip readout runs on the last layer's PEs (layer "
            f"{num_layers - 1}), not on layer {layer}"
        )
    if artifact.readout_kind == "adaptive":
        raise ValueError(
            "the on-chip readout is one linear layer (tied decoder or linear readout); this "
            "artifact's adaptive softmax runs on the host: use --readout host (readout='host')"
        )
    if artifact.decoder_weight is None:
        raise ValueError(
            "readout='chip' needs a network with a readout (tied decoder or linear); "
            "this artifact has readout_kind='none'"
        )


def check_rounding(round_received: bool | None, receive_policy: str) -> bool:
    """Whether received values are rounded to binary16: by default (None) for
    ``bitmap16``, whose value array is 16 bits wide; never for a policy that keeps float32."""
    if round_received is None:
        return receive_policy == "bitmap16"
    if round_received and receive_policy != "bitmap16":
        raise ValueError(
            f"round_received=True rounds the values of the bitmap16 design's 16-bit value "
            f"array; receive policy {receive_policy!r} keeps float32 values"
        )
    return bool(round_received)


def check_slices(slices, hidden_size: int, layer: int) -> None:
    """The layer's slices cover its units 0..hidden_size exactly once in order."""
    covered = np.concatenate([np.arange(s.unit_start, s.unit_stop) for s in slices])
    if not np.array_equal(covered, np.arange(hidden_size)):
        raise ValueError(
            f"layer {layer}: the mapping's slices do not cover units 0..{hidden_size}"
            " exactly once in order; re-create the mapping with map_network"
        )


def check_input(sim, x) -> tuple[np.ndarray, int]:
    """``x`` in the dtype of the layer simulator ``sim`` and its number of non-zero entries,
    after checking it."""
    x = np.asarray(x)
    b = sim.batch_size
    want = (sim.input_size,) if b == 1 else (b, sim.input_size)
    if x.shape != want:
        raise ValueError(
            f"layer {sim.layer} takes an input of shape {want}"
            + (f" (batch of {b})" if b > 1 else "")
            + f", got {x.shape}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"the layer input must be floating point, got dtype {x.dtype}")
    nonzero, bad = nonzero_and_bad(x.reshape(-1))
    if bad:
        raise ValueError(
            f"layer {sim.layer}: the input of step {sim.counters.steps} has {bad} NaN or "
            f"infinite values; a chip cannot send them as events: clean the inputs"
        )
    return x.astype(sim.dtype, copy=False), nonzero


def check_state(sim, state) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(c, y, trace)`` of an :class:`~snn_egru.reference.EGRUState` (or a tuple) for the
    layer simulator ``sim``, each checked against its state shape and cast to its dtype
    (copies); ``trace`` zeros when ``sim`` keeps a trace and ``state`` has none, else None."""
    if not isinstance(state, EGRUState):
        state = EGRUState(*state)
    shape = sim.state_shape
    for name in ("c", "y", "trace"):
        value = getattr(state, name)
        if (value is not None or name != "trace") and np.shape(value) != shape:
            raise ValueError(
                f"layer {sim.layer}: state.{name} must have shape {shape}, got {np.shape(value)}"
            )
    trace = None
    if state.trace is not None:
        trace = np.array(state.trace, dtype=sim.dtype)
    elif sim.keeps_trace:
        trace = np.zeros(shape, dtype=sim.dtype)
    return np.array(state.c, dtype=sim.dtype), np.array(state.y, dtype=sim.dtype), trace
