"""The simulated chip's report of a Lava run: one ``spinnaker2_backend`` Run for all layers.

Each ``spinnaker2`` layer process reports, per step, its ``LayerStepResult`` and its
cumulative ``LayerCounters`` (:class:`~lava_procs.egru_layer.models.ChipStepRecord`).
:func:`assemble_chip_run` composes them the way the backend composes a direct run of the
whole network (``mapping.run(inputs)``): layers one after another per token, readout on the
host, so time per token = sum over layers of each layer's slowest PE (plus the NoC tail of
its last packet). It uses the backend's public pieces (``build_profile``,
``step_offsets``, ``estimate_energy``, ``Run``); the tests check the result against
``mapping.run`` counter by counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from snn_egru.reference import EGRUState

__all__ = ["assemble_chip_run"]


def assemble_chip_run(
    mapping: Any,
    layer_records: Sequence[Sequence[Any]],
    *,
    tick_us: float | None = None,
    record_steps: bool = True,
    layer_events: list[np.ndarray] | None = None,
    logits: np.ndarray | None = None,
    states: list[EGRUState] | None = None,
    dtype: str = "float32",
) -> Any:
    """A ``spinnaker2_backend.run.Run`` from the layer processes' per-step records.

    Args:
        mapping: the network's mapping (the one the layer processes ran).
        layer_records: per layer, the :class:`ChipStepRecord` of every step, in step order
            (all layers the same number of steps).
        tick_us: the tick the layers ran with (deadline checks), or ``None``.
        record_steps: keep per-step per-PE counts (timer view, per-step plots), like the
            backend's ``record=True``.
        layer_events, logits, states: the run's outputs, as the Lava graph computed them.
        dtype: the float type the layers ran in.

    Returns:
        ``spinnaker2_backend.run.Run``: ``.report()`` gives time per token, profile, energy.
    """
    from spinnaker2_backend.constants import CycleCosts, EnergyCosts
    from spinnaker2_backend.energy import estimate_energy
    from spinnaker2_backend.run import NetworkCounters, Run
    from spinnaker2_backend.timing import build_profile, step_offsets

    num_layers = len(mapping.layers)
    if len(layer_records) != num_layers:
        raise ValueError(
            f"got records of {len(layer_records)} layers, the mapping has {num_layers}"
        )
    steps = len(layer_records[0])
    if any(len(records) != steps for records in layer_records):
        counts = [len(records) for records in layer_records]
        raise ValueError(f"layers reported different numbers of steps: {counts}")
    if steps == 0:
        raise ValueError("no steps were recorded")
    for layer, records in enumerate(layer_records):
        pes = records[0].counters.pes
        if any(not np.array_equal(r.counters.pes, pes) for r in records):
            raise ValueError(
                f"layer {layer} was mapped again during the run (its weights were set) and "
                "moved to other PEs: a chip report covers one mapping; start a new run"
            )

    spec = mapping.spec
    clock_hz = spec.pe_clock_hz
    results = [[r.result for r in records] for records in layer_records]
    layer_cycles = np.array([[layer[t].layer_cycles for layer in results] for t in range(steps)])
    tails = np.array([[layer[t].noc_tail_cycles for layer in results] for t in range(steps)])
    critical = np.stack(
        [
            np.stack([r.phase_cycles[:, int(np.argmax(r.busy_cycles))] for r in step_results])
            for step_results in zip(*results)
        ]
    )
    step_totals = np.stack(
        [np.stack([r.ops.sum(axis=1) for r in step_results]) for step_results in zip(*results)]
    )
    # deadline misses measured from each step's start, layers one after another
    missed = [np.zeros(len(layer[0].busy_cycles), dtype=np.int64) for layer in results]
    if tick_us is not None:
        us_per_cycle = 1e6 / clock_hz
        for t in range(steps):
            offsets = step_offsets(layer_cycles[t], tails[t], pipelined=False)
            for i, layer in enumerate(results):
                done = layer[t].busy_cycles * us_per_cycle + offsets[i] * us_per_cycle
                missed[i] += done > tick_us

    counters = NetworkCounters(layers=[records[-1].counters.copy() for records in layer_records])
    step_cycles = step_ops = None
    if record_steps:
        step_cycles = [np.stack([r.phase_cycles for r in layer]) for layer in results]
        step_ops = [np.stack([r.ops for r in layer]) for layer in results]
    profile = build_profile(
        layer_cycles=layer_cycles,
        layer_tails=tails,
        critical_phase_cycles=critical,
        pe_phase_cycles=[c.phase_cycles for c in counters.layers],
        clock_hz=clock_hz,
        timer_hz=spec.timer_hz,
        pipelined=False,
        tick_us=tick_us,
        step_phase_cycles=step_cycles,
        deadline_missed_count=missed,
    )
    chips = max(len({s.chip for layer in mapping.layers for s in layer.slices}), 1)
    energy_costs = EnergyCosts()
    energy = estimate_energy(
        wall_seconds=profile.wall_seconds,
        busy_cycles=float(sum(c.phase_cycles.sum() for c in counters.layers)),
        packets=counters.total("packets_sent"),
        packet_hops=counters.total("packet_hops"),
        chip_link_hops=counters.total("chip_link_hops"),
        dram_bytes=counters.total("dram_bytes") + counters.total("readout_dram_bytes"),
        clock_hz=clock_hz,
        chips=chips,
        costs=energy_costs,
    )
    return Run(
        layer_sizes=[layer.hidden_size for layer in mapping.layers],
        weight_format=mapping.weight_format,
        num_pes=int(sum(len(layer.slices) for layer in mapping.layers)),
        num_chips=chips,
        clock_hz=float(clock_hz),
        dtype=dtype,
        readout="host",
        steps=steps,
        layer_events=layer_events,
        logits=logits,
        states=list(states) if states is not None else [],
        counters=counters,
        step_totals=step_totals,
        step_ops=step_ops,
        profile=profile,
        energy=energy,
        cycle_costs=CycleCosts(),
        energy_costs=energy_costs,
        layer_pes=[c.pes.copy() for c in counters.layers],
    )
