"""The energy model of the simulated chip: CMOS physics per performance level.

::

    E = P_chip * T_wall * chips                       chip baseline (DRAM, I/O, management)
      + P_leak(V) * PEs powered * T_wall              leakage ~ V, every PE, busy or idle
      + E_cycle(V) * sum_PE busy cycles               dynamic ~ C V^2 per cycle
      + E_packet * packets + E_hop * NoC hops         on-chip network
      + E_link * chip-to-chip link hops               between chips
      + E_dram * DRAM bytes                           inputs (and on-chip readout) by DMA

A performance level is a PE clock ``f`` with its supply ``V``
(:class:`~spinnaker2_backend.constants.EnergyCosts`: about 0.50 V at 150 MHz, 0.80 V at
300 MHz). The cycles of a run do not depend on the level, so a faster level multiplies the
dynamic energy by ``(V_fast / V_slow)^2`` and only shortens the busy part of the time:

* **timer-driven** (a step per tick of a fixed period): the wall time is the ticks, the same
  at every level while the work fits the tick, so the faster level always costs more
  (dynamic ``~ V^2``, leakage ``~ V`` over the same time);
* **as fast as possible**: the wall time is the work, halved at twice the clock, so the
  baseline and the leakage are paid for half as long; when they dominate, the faster level
  costs less. :meth:`EnergyEstimate.terms` gives each term, so a comparison says which
  term made the difference (:func:`level_difference`).

No per-operation energies of SpiNNaker2 are public; every constant is an estimate [C] (the
voltages [B]) except ``static_power_w``, which :mod:`spinnaker2_backend.calibration` fits
so that the simulated published LM run takes the measured 0.0653 J (0.39 W) [A].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from spinnaker2_backend.constants import ChipSpec, EnergyCosts

__all__ = ["TERMS", "EnergyEstimate", "estimate_energy", "level_difference"]

#: The terms of the energy, in the order the reports print them.
TERMS: tuple[str, ...] = (
    "baseline_j",
    "leakage_j",
    "active_j",
    "packet_j",
    "hop_j",
    "chip_link_j",
    "dram_j",
)


@dataclass(frozen=True, kw_only=True)
class EnergyEstimate:
    """Energy of a run, by term (joules), all estimates [C] anchored as described in the
    module docstring.

    Attributes:
        clock_hz: PE clock (the performance level). voltage_v: its supply.
        chips: chips powered. pes_powered: PEs that leak (every PE of those chips).
        wall_seconds: duration the baseline and the leakage are paid for.
        busy_pe_seconds: PE busy time summed over PEs.
        baseline_j, leakage_j: the chip baseline and the PEs' leakage;
        static_j: their sum (what does not depend on the work);
        active_j, packet_j, hop_j, chip_link_j, dram_j: the rest.
    """

    clock_hz: float
    voltage_v: float
    chips: int
    pes_powered: int
    wall_seconds: float
    busy_pe_seconds: float
    baseline_j: float
    leakage_j: float
    static_j: float
    active_j: float
    packet_j: float
    hop_j: float
    chip_link_j: float
    dram_j: float

    def terms(self) -> dict[str, float]:
        """Each term of :data:`TERMS`, joules."""
        return {name: float(getattr(self, name)) for name in TERMS}

    @property
    def total_j(self) -> float:
        """Total energy of the run."""
        return float(sum(self.terms().values()))

    @property
    def average_power_w(self) -> float:
        """Total energy over the wall time."""
        return self.total_j / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def dynamic_j(self) -> float:
        """Everything but the static part (baseline and leakage)."""
        return self.total_j - self.static_j

    def to_dict(self) -> dict[str, float]:
        out = asdict(self)
        out["total_j"] = self.total_j
        out["average_power_w"] = self.average_power_w
        return out


def estimate_energy(
    *,
    wall_seconds: float,
    busy_cycles: float,
    packets: float,
    packet_hops: float,
    chip_link_hops: float,
    dram_bytes: float,
    clock_hz: float,
    chips: int = 1,
    pes_powered: int | None = None,
    costs: EnergyCosts | None = None,
) -> EnergyEstimate:
    """Energy of a run from its totals (see the module docstring for the equation).

    Args:
        wall_seconds: run duration (baseline and leakage are paid for all of it).
        busy_cycles: PE cycles spent computing, summed over PEs and steps.
        packets: packets sent. packet_hops: NoC QPE hops of those packets.
        chip_link_hops: chip-to-chip link hops. dram_bytes: bytes moved to/from DRAM.
        clock_hz: PE clock of the performance level (150 or 300 MHz).
        chips: chips powered (baseline per chip).
        pes_powered: PEs that leak; default every PE of the powered chips (152 each).
        costs: the energy figures (defaults when omitted).

    Raises:
        ValueError: negative durations or counts, no chip, or an unknown performance level.
    """
    costs = costs if costs is not None else EnergyCosts()
    if wall_seconds < 0 or busy_cycles < 0 or chips < 1:
        raise ValueError(
            f"energy needs wall_seconds >= 0, busy_cycles >= 0 and chips >= 1, got "
            f"{wall_seconds}, {busy_cycles}, {chips}"
        )
    pes = int(pes_powered) if pes_powered is not None else chips * ChipSpec().pes_per_chip
    baseline = costs.static_power_w * chips * wall_seconds
    leakage = costs.leakage_power_at(clock_hz) * pes * wall_seconds
    return EnergyEstimate(
        clock_hz=float(clock_hz),
        voltage_v=float(costs.voltage(clock_hz)),
        chips=int(chips),
        pes_powered=pes,
        wall_seconds=float(wall_seconds),
        busy_pe_seconds=float(busy_cycles / clock_hz),
        baseline_j=baseline,
        leakage_j=leakage,
        static_j=baseline + leakage,
        active_j=costs.cycle_energy_at(clock_hz) * busy_cycles,
        packet_j=costs.packet_energy_j * packets,
        hop_j=costs.packet_hop_energy_j * packet_hops,
        chip_link_j=costs.chip_link_energy_j * chip_link_hops,
        dram_j=costs.dram_byte_energy_j * dram_bytes,
    )


def level_difference(slow: EnergyEstimate, fast: EnergyEstimate) -> dict[str, float]:
    """Per term, ``fast - slow`` joules, largest change first: which term makes a faster
    performance level cost more (dynamic ``~ V^2``) or less (baseline and leakage paid for
    a shorter run)."""
    a, b = slow.terms(), fast.terms()
    diff = {name: b[name] - a[name] for name in TERMS}
    return dict(sorted(diff.items(), key=lambda kv: -abs(kv[1])))
