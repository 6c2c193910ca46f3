"""What crosses chips: events, link packets and bytes per token, per layer and per chip pair.

Counted along the multicast trees the router tables hold (:attr:`~spinnaker2_backend.
mapping.routing.SliceRoute.link_edges`), the same trees the simulator counts its
``chip_link_hops`` and the time model serialises on the links with:

* an event of a source PE *leaves its chip* when its tree has at least one chip link;
* it costs one **link packet** per link of its tree (the routers duplicate the packet where
  the tree branches, so a link carries it once however many QPEs lie beyond);
* a packet is ``packet_key_bits + packet_payload_bits`` bits (32 + 32: the graded value
  travels in the payload), so **bytes** = packets x 8;
* a **chip pair** ``(a, b)`` is one directed link, from chip ``a`` to its neighbour ``b``.

Events per token come from a run (:func:`crossings_from_run`: each PE's ``events``
counter over the run's steps and samples) or are given per PE (:func:`count_crossings`;
:func:`all_fire_events`: every unit fires every step, the most a mapping can send).

Link time per token is the busiest link's packets per token times
``CycleCosts.chip_link_packet_cycles`` [C] at the PE clock (the serialisation the time
model adds when a link is the bottleneck, averaged over the run); link energy is link
packets times ``EnergyCosts.chip_link_energy_j`` [C], as :mod:`~spinnaker2_backend.energy`
charges it.

A *bottleneck* layer (a narrow EGRU layer at a layer boundary, :mod:`snn_egru.bottleneck`)
is marked in the artifact's model config; :func:`bottleneck_layers_of` reads it, and
``map_network(chip_boundaries=...)`` makes the boundary after it a chip boundary.
:func:`check_chip_boundaries` says whether a mapping has the boundaries a caller needs.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spinnaker2_backend.constants import CycleCosts, EnergyCosts
from spinnaker2_backend.mapping.base import MappingError
from spinnaker2_backend.mapping.routing import LINK_DIRECTIONS

__all__ = [
    "Crossings",
    "LayerCrossings",
    "all_fire_events",
    "bottleneck_boundaries",
    "bottleneck_layers_of",
    "check_bottleneck_placement",
    "check_chip_boundaries",
    "count_crossings",
    "crossings_from_run",
]


@dataclass(frozen=True)
class LayerCrossings:
    """One source layer's traffic per token.

    Attributes:
        layer: the layer whose events these are.
        chips: the chips its PEs are on.
        events: events it sends per token.
        events_leaving: of them, events whose multicast tree leaves their chip.
        link_packets: chip-link packets (one per event and link of its tree).
        link_bytes: ``link_packets`` x packet bytes.
        pairs: ``{(from chip, to chip): link packets}`` per directed link.
    """

    layer: int
    chips: tuple[int, ...]
    events: float
    events_leaving: float
    link_packets: float
    link_bytes: float
    pairs: dict[tuple[int, int], float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "chips": list(self.chips),
            "events": self.events,
            "events_leaving": self.events_leaving,
            "link_packets": self.link_packets,
            "link_bytes": self.link_bytes,
            "pairs": [
                {"from_chip": a, "to_chip": b, "link_packets": v}
                for (a, b), v in sorted(self.pairs.items())
            ],
        }


@dataclass(frozen=True)
class Crossings:
    """Chip-to-chip traffic per token of a mapped network (see the module docstring).

    Attributes:
        layers: per source layer, its :class:`LayerCrossings`.
        packet_bytes: bytes of one packet (key + payload).
        link_time_s: busiest link's packets x ``chip_link_packet_cycles`` / clock, per token.
        link_energy_j: link packets x ``chip_link_energy_j``, per token.
        source: where the events came from (``"run"``, ``"all fire"``, ``"given"``).
        chip_boundaries: the mapping's chip boundaries (layers after which one lies).
    """

    layers: tuple[LayerCrossings, ...]
    packet_bytes: int
    link_time_s: float
    link_energy_j: float
    source: str
    chip_boundaries: tuple[int, ...] = ()

    @property
    def events_leaving(self) -> float:
        return sum(x.events_leaving for x in self.layers)

    @property
    def link_packets(self) -> float:
        return sum(x.link_packets for x in self.layers)

    @property
    def link_bytes(self) -> float:
        return sum(x.link_bytes for x in self.layers)

    @property
    def pairs(self) -> dict[tuple[int, int], float]:
        """Link packets per token per directed chip pair, all layers together."""
        out: dict[tuple[int, int], float] = {}
        for layer in self.layers:
            for pair, value in layer.pairs.items():
                out[pair] = out.get(pair, 0.0) + value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "per": "token",
            "source": self.source,
            "packet_bytes": self.packet_bytes,
            "chip_boundaries": list(self.chip_boundaries),
            "events_leaving": self.events_leaving,
            "link_packets": self.link_packets,
            "link_bytes": self.link_bytes,
            "link_time_s": self.link_time_s,
            "link_energy_j": self.link_energy_j,
            "layers": [x.to_dict() for x in self.layers],
            "pairs": [
                {
                    "from_chip": a,
                    "to_chip": b,
                    "link_packets": v,
                    "link_bytes": v * self.packet_bytes,
                }
                for (a, b), v in sorted(self.pairs.items())
            ],
        }

    def table(self) -> str:
        """A plain-text report: per layer, then per chip pair."""
        lines = [
            f"chip-to-chip traffic per token (events: {self.source}; a packet is "
            f"{self.packet_bytes} B; chip boundaries after layers "
            f"{list(self.chip_boundaries) or 'none'})",
            "  layer  chips        events  leaving chip  link packets  link bytes",
        ]
        for x in self.layers:
            chips = ",".join(map(str, x.chips))
            lines.append(
                f"  {x.layer:5d}  {chips:<10s} {x.events:8.2f}  {x.events_leaving:12.2f}  "
                f"{x.link_packets:12.2f}  {x.link_bytes:10.1f}"
            )
        lines.append(
            f"  total{'':23s}{self.events_leaving:12.2f}  {self.link_packets:12.2f}  "
            f"{self.link_bytes:10.1f}"
        )
        lines.append("  chip pair   link packets  link bytes")
        for (a, b), v in sorted(self.pairs.items()):
            lines.append(f"  {a:3d} -> {b:<3d}  {v:12.2f}  {v * self.packet_bytes:10.1f}")
        lines.append(
            f"  link time {self.link_time_s * 1e6:.3f} us/token (busiest link), link energy "
            f"{self.link_energy_j * 1e9:.3f} nJ/token [C]"
        )
        return "\n".join(lines)


def _neighbour(machine: Any, chip: int, link: str) -> int:
    x, y = machine.chip_position(chip)
    dx, dy = LINK_DIRECTIONS[link]
    return (y + dy) * machine.chip_grid[0] + (x + dx)


def count_crossings(
    mapping: Any,
    events: MappingABC[int, float],
    *,
    cycle_costs: CycleCosts | None = None,
    energy_costs: EnergyCosts | None = None,
    clock_hz: float | None = None,
    source: str = "given",
) -> Crossings:
    """Crossings per token when PE ``pe`` sends ``events[pe]`` events per token."""
    spec = mapping.machine.spec
    cycle_costs = cycle_costs or CycleCosts()
    energy_costs = energy_costs or EnergyCosts()
    clock_hz = float(clock_hz or spec.pe_clock_hz)
    packet_bytes = (spec.packet_key_bits + spec.packet_payload_bits) // 8
    loads: dict[tuple[int, str], float] = {}
    layers = []
    for li, layer in enumerate(mapping.placement.layers):
        sent = leaving = packets = 0.0
        pairs: dict[tuple[int, int], float] = {}
        for s in layer:
            count = float(events.get(s.pe, 0.0))
            edges = mapping.routes[s.pe].link_edges
            sent += count
            if not count or not edges:
                continue
            leaving += count
            packets += count * len(edges)
            for chip, link in edges:
                pair = (chip, _neighbour(mapping.machine, chip, link))
                pairs[pair] = pairs.get(pair, 0.0) + count
                loads[(chip, link)] = loads.get((chip, link), 0.0) + count
        layers.append(
            LayerCrossings(
                layer=li,
                chips=mapping.placement.chips_of(li),
                events=sent,
                events_leaving=leaving,
                link_packets=packets,
                link_bytes=packets * packet_bytes,
                pairs=pairs,
            )
        )
    busiest = max(loads.values(), default=0.0)
    total = sum(x.link_packets for x in layers)
    return Crossings(
        layers=tuple(layers),
        packet_bytes=packet_bytes,
        link_time_s=busiest * cycle_costs.chip_link_packet_cycles / clock_hz,
        link_energy_j=total * energy_costs.chip_link_energy_j,
        source=source,
        chip_boundaries=tuple(getattr(mapping.placement, "chip_boundaries", ())),
    )


def all_fire_events(mapping: Any) -> dict[int, float]:
    """Events per token per PE when every unit fires every step (the most it can send)."""
    return {s.pe: float(s.num_units) for s in mapping.placement.slices}


def crossings_from_run(mapping: Any, run: Any) -> Crossings:
    """Crossings per token of ``run`` (a :class:`~spinnaker2_backend.results.Run` of
    ``mapping``): each PE's ``events`` counter over ``steps x batch_size`` tokens."""
    tokens = max(1, int(run.steps) * int(getattr(run, "batch_size", 1) or 1))
    events: dict[int, float] = {}
    for counters in run.counters.layers:
        for pe, count in zip(counters.pes, counters.per_pe("events")):
            events[int(pe)] = float(count) / tokens
    return count_crossings(
        mapping,
        events,
        cycle_costs=run.cycle_costs,
        energy_costs=run.energy_costs,
        clock_hz=run.clock_hz,
        source="run",
    )


def bottleneck_layers_of(artifact: Any) -> tuple[int, ...]:
    """The bottleneck layers an artifact's model config marks (``()`` for none)."""
    metadata = getattr(artifact, "metadata", None) or {}
    config = (metadata.get("model") or {}).get("config") or {}
    fields = config.get("fields", config) if isinstance(config, dict) else {}
    marks = fields.get("bottleneck_layers") or metadata.get("bottleneck_layers") or ()
    return tuple(int(i) for i in marks)


def check_chip_boundaries(mapping: Any, boundaries: Sequence[int]) -> None:
    """Every layer boundary in ``boundaries`` is a chip boundary of ``mapping`` (no chip
    holds layers on both sides of it); ``MappingError`` naming the first that is not."""
    placement = mapping.placement
    last = len(placement.layers) - 1
    for b in sorted(int(b) for b in boundaries):
        if not 0 <= b < last:
            raise MappingError(
                f"no layer boundary after layer {b}: the network has layers 0..{last}"
            )
        before = {c for li in range(b + 1) for c in placement.chips_of(li)}
        after = {c for li in range(b + 1, last + 1) for c in placement.chips_of(li)}
        shared = sorted(before & after)
        if shared:
            raise MappingError(
                f"the boundary after layer {b} is not a chip boundary: chip(s) {shared} hold "
                f"layers on both sides; map with chip_boundaries=[{b}] (--chip-boundaries {b})"
            )


def bottleneck_boundaries(artifact: Any, boundaries: str | Sequence[int]) -> tuple[int, ...]:
    """``boundaries`` as layer indices: ``"bottlenecks"`` is the artifact's bottleneck
    layers (``MappingError`` when it marks none)."""
    if boundaries != "bottlenecks":
        return tuple(int(b) for b in boundaries)
    marks = bottleneck_layers_of(artifact)
    if not marks:
        raise MappingError(
            "chip boundaries 'bottlenecks': the network has no bottleneck layers (its model "
            "config marks none); give layer indices instead"
        )
    return marks


def check_bottleneck_placement(mapping: Any, bottleneck_layers: Sequence[int]) -> None:
    """Each bottleneck layer lies on the chips of the layer before it (so only its output
    crosses the chip boundary after it); ``MappingError`` naming the first that does not."""
    placement = mapping.placement
    for b in bottleneck_layers:
        own, before = set(placement.chips_of(b)), set(placement.chips_of(b - 1))
        if not own <= before:
            fix = (
                f"start layer {b - 1} on a fresh chip too (chip boundaries after layers "
                f"{b - 2} and {b}) or use a narrower bottleneck"
                if b >= 2
                else f"layer {b - 1} and the bottleneck need more PEs than one chip has: use a "
                "narrower bottleneck or fewer PEs for them (another weight format)"
            )
            raise MappingError(
                f"bottleneck layer {b} spills onto chip(s) {sorted(own - before)} beyond the "
                f"chips of layer {b - 1} ({sorted(before)}): the {mapping.layers[b].input_size} "
                f"events of layer {b - 1} would cross chips; {fix}"
            )
