"""Cross-check of the NoC packet and hop counts with SANA-FE (``pip install sanafe``).

SANA-FE (Boyle et al., "SANA-FE: Simulating Advanced Neuromorphic Architectures for Fast
Exploration", IEEE TCAD 2025) simulates a mesh of tiles, each with cores; a spike leaves its
core as one message per destination *core* and travels the XY route between tiles, each hop
costing ``energy_*_hop``. This module builds one SpiNNaker2 chip's QPEs as SANA-FE tiles (4
cores each), the network's PEs as neuron groups on those cores and the edges each of our
multicast routes holds (:attr:`~spinnaker2_backend.mapping.routing.SliceRoute.
destinations`), lets the first layer fire every step, and compares SANA-FE's packets and
hops (read from its message trace) with ours:

* **per destination PE** (what SANA-FE counts): ``sum_d qpe_hops(source, d)`` over the
  destination PEs; must equal SANA-FE's exactly (same XY mesh, same placement).
* **per destination QPE** (our ``packets_sent``, ``packet_hops``): one packet per QPE with a
  4-bit PE mask, as SpiNNaker2's NoC delivers it; fewer by the PEs sharing a QPE.
* **per tree link** (:func:`~spinnaker2_backend.timing.noc_link_edges`): the links of the
  multicast tree, each crossed once per event.

Energy per spike is not compared: SANA-FE's energies are inputs of its architecture file
(here 1 pJ per hop so that its network energy counts hops); it has no SpiNNaker2 figures.

Run ``python -m spinnaker2_backend.sanafe_check`` to print the comparison.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

__all__ = ["NocComparison", "compare_with_sanafe", "small_chip_mapping"]

_HOP_J = 1e-12  # SANA-FE hop energy in the generated architecture: network energy = hops pJ


@dataclass(frozen=True)
class NocComparison:
    """Counts of one run of the small case (every first-layer unit fires every step)."""

    steps: int
    events: int
    sanafe_packets: int
    sanafe_hops: int
    sanafe_network_energy_j: float
    ours_packets_per_pe: int
    ours_hops_per_pe: int
    ours_packets: int
    ours_hops: int
    ours_tree_links: int

    def table(self) -> str:
        rows = [
            ("SANA-FE 2.2.9 (message per destination core)", self.sanafe_packets, self.sanafe_hops),
            ("ours, per destination PE", self.ours_packets_per_pe, self.ours_hops_per_pe),
            (
                "ours, per destination QPE (packets_sent, packet_hops)",
                self.ours_packets,
                self.ours_hops,
            ),  # fmt: skip
            ("ours, multicast tree links (link serialisation)", "", self.ours_tree_links),
        ]
        lines = [
            f"{self.events} events ({self.steps} steps, every layer-0 unit fires)",
            f"{'':58s} {'packets':>8s} {'hops':>8s}",
        ]
        lines += [f"{name:58s} {p!s:>8s} {h!s:>8s}" for name, p, h in rows]
        lines.append(
            f"SANA-FE network energy {self.sanafe_network_energy_j * 1e12:.1f} pJ at "
            f"{_HOP_J * 1e12:g} pJ per hop"
        )
        return "\n".join(lines)


def small_chip_mapping():
    """One chip of 3 x 2 QPEs (24 PEs), one unit per PE: layer 0 (8 units) on two QPEs,
    layer 1 (16 units) on the other four (a grid that is not square, so that a wrong tile
    numbering would show in the hops)."""
    from spinnaker2_backend import ChipSpec, map_network
    from spinnaker2_backend.machine import Machine
    from spinnaker2_backend.synthetic import synthetic_network

    spec = ChipSpec(qpe_x_range=(1, 3), qpe_y_range=(1, 2), qpe_holes=())
    net = synthetic_network(layer_sizes=(8, 16), input_size=3, sparsity=0.0, seed=0)
    return map_network(net, machine=Machine(chips=1, spec=spec), max_units_per_pe=1)


def _arch_yaml(width: int, height: int) -> str:
    hop = "".join(
        f"        energy_{d}_hop: {_HOP_J}\n        latency_{d}_hop: 1.0e-9\n"
        for d in ("north", "east", "south", "west")
    )
    zero = "0.0"
    return f"""architecture:
  name: spinnaker2_chip
  attributes: {{link_buffer_size: 16, width: {width}, height: {height}}}
  tile:
    - name: qpe[0..{width * height - 1}]
      attributes:
{hop}      core:
        - name: pe[0..3]
          attributes: {{buffer_position: soma, max_neurons_supported: 256}}
          axon_in:
            - name: ain
              attributes: {{energy_message_in: {zero}, latency_message_in: {zero}}}
          synapse:
            - name: syn
              attributes: {{model: current_based, energy_process_spike: {zero},
                            latency_process_spike: {zero}}}
          dendrite:
            - name: den
              attributes: {{model: accumulator, energy_update: {zero}, latency_update: {zero}}}
          soma:
            - name: soma
              attributes: {{model: leaky_integrate_fire, energy_access_neuron: {zero},
                            latency_access_neuron: {zero}, energy_update_neuron: {zero},
                            latency_update_neuron: {zero}, energy_spike_out: {zero},
                            latency_spike_out: {zero}}}
          axon_out:
            - name: aout
              attributes: {{energy_message_out: {zero}, latency_message_out: 1.0e-9}}
"""


def compare_with_sanafe(mapping=None, *, steps: int = 5) -> NocComparison:
    """Run the small case in SANA-FE and count ours (see the module docstring).

    Args:
        mapping: a one-chip mapping with one unit per PE (default :func:`small_chip_mapping`).
        steps: steps simulated; every layer-0 unit fires in each.

    Raises:
        ImportError: SANA-FE is not installed. ValueError: a mapping it cannot mirror.
    """
    import csv

    import sanafe

    from spinnaker2_backend.machine import Machine
    from spinnaker2_backend.timing import noc_link_edges

    mapping = mapping if mapping is not None else small_chip_mapping()
    slices = list(mapping.slices)
    if {s.chip for s in slices} != {0} or any(s.num_units != 1 for s in slices):
        raise ValueError("the cross-check mirrors one chip with one unit per PE")
    spec = mapping.spec
    x0, x1 = spec.qpe_x_range
    y0, y1 = spec.qpe_y_range
    width, height = x1 - x0 + 1, y1 - y0 + 1
    with tempfile.TemporaryDirectory() as tmp:
        arch_path = os.path.join(tmp, "arch.yaml")
        with open(arch_path, "w", encoding="utf-8") as f:
            f.write(_arch_yaml(width, height))
        arch = sanafe.load_arch(arch_path)
        net = sanafe.Network()
        groups = {}
        for s in slices:
            fires = s.layer == 0
            attrs = {"threshold": 1.0, "bias": 2.0 if fires else 0.0, "reset": 0.0}
            if not fires:
                attrs["threshold"] = 1e9
            g = net.create_neuron_group(f"pe{s.pe}", 1, attrs)
            qx, qy = s.qpe
            # SANA-FE numbers tiles column by column: tile = x * height + y
            g.map_to_core(arch.tiles[(qx - x0) * height + (qy - y0)].cores[s.pe_in_qpe])
            groups[s.pe] = g
        sources = [s for s in slices if s.layer == 0]
        for s in sources:
            for d in mapping.routes[s.pe].destinations:
                groups[s.pe].connect_neurons_sparse(groups[d], {"weight": [0.0]}, [(0, 0)])
        chip = sanafe.SpikingChip(arch)
        chip.load(net)
        trace = os.path.join(tmp, "messages.csv")
        result = chip.sim(steps, message_trace=trace)
        with open(trace, encoding="utf-8") as f:
            messages = [m for m in csv.DictReader(f) if int(m["spikes"]) > 0]
    events = steps * len(sources)
    by_pe = {s.pe: s for s in slices}
    per_pe_packets = per_pe_hops = packets = hops = links = 0
    for s in sources:
        route = mapping.routes[s.pe]
        per_pe_packets += steps * len(route.destinations)
        per_pe_hops += steps * sum(
            Machine.qpe_hops(s.qpe, by_pe[d].qpe) for d in route.destinations
        )
        packets += steps * route.packets_per_event
        hops += steps * route.noc_hops_per_event
        links += steps * len(noc_link_edges(route))
    return NocComparison(
        steps=steps,
        events=events,
        sanafe_packets=len(messages),
        sanafe_hops=sum(int(m["hops"]) for m in messages),
        sanafe_network_energy_j=float(result["energy"]["network"]),
        ours_packets_per_pe=per_pe_packets,
        ours_hops_per_pe=per_pe_hops,
        ours_packets=packets,
        ours_hops=hops,
        ours_tree_links=links,
    )


def main() -> int:
    try:
        import sanafe  # noqa: F401
    except ImportError:
        print("SANA-FE is not installed: pip install sanafe==2.2.9")
        return 2
    print(compare_with_sanafe().table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
