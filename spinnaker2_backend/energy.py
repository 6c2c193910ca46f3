"""The energy model of the simulated chip.

::

    E = P_static(level) * T_wall                       static: whole chip, busy or not
      + P_active(level) * sum_PE T_busy(PE)            PEs while they compute
      + E_packet * packets + E_hop * NoC hops          on-chip network
      + E_link * chip-to-chip link hops                between chips
      + E_dram * DRAM bytes                            inputs (and on-chip readout) by DMA

``level`` is the PE clock (150 or 300 MHz, DVFS): :class:`~spinnaker2_backend.constants.
EnergyCosts` gives each level a supply voltage, and scales static power with ``V^2`` and
active power with ``f V^2``. With ``chips > 1`` the static power counts once per chip in use.

No per-operation energies of SpiNNaker2 are public; every constant is an estimate [C] except
``static_power_w``, which :mod:`spinnaker2_backend.calibration` fits so that the simulated
published LM run takes the measured 0.0653 J (0.39 W) [A]. The figures this module returns
are therefore estimates, anchored to one measured total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from spinnaker2_backend.constants import EnergyCosts

__all__ = ["EnergyEstimate", "estimate_energy"]


@dataclass(frozen=True, kw_only=True)
class EnergyEstimate:
    """Energy of a run, by component (joules), all estimates [C] anchored as described in
    the module docstring.

    Attributes:
        clock_hz: PE clock (the DVFS level). chips: chips powered.
        wall_seconds: duration the static power is paid for.
        busy_pe_seconds: PE busy time summed over PEs.
        static_j, active_j, packet_j, hop_j, chip_link_j, dram_j: components.
    """

    clock_hz: float
    chips: int
    wall_seconds: float
    busy_pe_seconds: float
    static_j: float
    active_j: float
    packet_j: float
    hop_j: float
    chip_link_j: float
    dram_j: float

    @property
    def total_j(self) -> float:
        """Total energy of the run."""
        return (
            self.static_j + self.active_j + self.packet_j + self.hop_j + self.chip_link_j
        ) + self.dram_j

    @property
    def average_power_w(self) -> float:
        """Total energy over the wall time."""
        return self.total_j / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def dynamic_j(self) -> float:
        """Everything but the static part."""
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
    costs: EnergyCosts | None = None,
) -> EnergyEstimate:
    """Energy of a run from its totals (see the module docstring for the equation).

    Args:
        wall_seconds: run duration (static power is paid for all of it).
        busy_cycles: PE cycles spent computing, summed over PEs and steps.
        packets: packets sent. packet_hops: NoC QPE hops of those packets.
        chip_link_hops: chip-to-chip link hops. dram_bytes: bytes moved to/from DRAM.
        clock_hz: PE clock level. chips: chips powered (static power per chip).
        costs: the energy figures (defaults when omitted).
    """
    costs = costs if costs is not None else EnergyCosts()
    if wall_seconds < 0 or busy_cycles < 0 or chips < 1:
        raise ValueError(
            f"energy needs wall_seconds >= 0, busy_cycles >= 0 and chips >= 1, got "
            f"{wall_seconds}, {busy_cycles}, {chips}"
        )
    busy_seconds = busy_cycles / clock_hz
    return EnergyEstimate(
        clock_hz=float(clock_hz),
        chips=int(chips),
        wall_seconds=float(wall_seconds),
        busy_pe_seconds=float(busy_seconds),
        static_j=costs.static_power_at(clock_hz) * chips * wall_seconds,
        active_j=costs.pe_active_power_at(clock_hz) * busy_seconds,
        packet_j=costs.packet_energy_j * packets,
        hop_j=costs.packet_hop_energy_j * packet_hops,
        chip_link_j=costs.chip_link_energy_j * chip_link_hops,
        dram_j=costs.dram_byte_energy_j * dram_bytes,
    )
