"""Every hardware figure of the simulated SpiNNaker2 chip, in one place.

Each figure is a named field with its source and a confidence tag (``../shared/design/
SPINNAKER2.md``):

* **[A]** primary: the chip authors' code, pages or papers;
* **[B]** secondary;
* **[C]** an assumption of this project, to calibrate (never present it as measured).

The chip figures are grouped in the frozen dataclass :class:`ChipSpec`. Override any of them
with keyword arguments or :func:`dataclasses.replace`::

    spec = ChipSpec(pe_clock_hz=300_000_000)
    spec = dataclasses.replace(ChipSpec(), data_memory_bytes=64 * 1024)

Sizes are in bytes, rates in Hz or bytes per second. "KiB" is 1024 bytes.

Source abbreviations used in the comments:

* ``S2-chip``: SPINNAKER2.md, section "The chip" (chip authors' publications and
  py-spinnaker2 code, as summarised there).
* ``S2-EGRU``: SPINNAKER2.md, section "The EGRU deployment that was measured on the chip".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["KIB", "WORD_BYTES", "ChipSpec"]

#: One kibibyte.
KIB = 1024

#: Bytes per word of a PE (32-bit Arm Cortex-M4F; float32 values, int32 indices). S2-chip [A].
WORD_BYTES = 4


def _default_qpe_holes() -> tuple[tuple[int, int], ...]:
    return ((4, 3), (4, 4), (7, 3), (7, 4))


@dataclass(frozen=True, kw_only=True)
class ChipSpec:
    """Figures of one SpiNNaker2 chip (and of its boards), with their sources.

    All fields are keyword-only; the defaults are the published figures. Derived
    quantities (number of QPEs / PEs, the QPE coordinates) are properties, so overriding the
    grid or the holes changes them consistently.

    Attributes (source, confidence tag):
        qpe_x_range: QPE x coordinates ``qx`` present on a chip, 1..7. S2-chip [A].
        qpe_y_range: QPE y coordinates ``qy``, 1..6. S2-chip [A].
        qpe_holes: grid positions with no QPE: (4,3), (4,4), (7,3), (7,4). S2-chip [A].
        pes_per_qpe: processing elements per quad-PE, 4. S2-chip [A].
        management_cores: cores per chip that manage it and run no application, 1.
            S2-chip [A]. Not counted among the application PEs.
        pe_clock_hz: PE clock in use, 150 MHz (the lower performance level). S2-chip [A].
        pe_clock_levels_hz: the two performance levels, 150 and 300 MHz. S2-chip [A].
        instruction_memory_bytes: per-PE instruction memory (code), 32 KiB. S2-chip [A].
        data_memory_bytes: per-PE data memory, 96 KiB. S2-chip [A].
        stack_heap_bytes: part of the data memory kept for heap + stack, about 4 KiB.
            S2-chip [A] ("about": the exact split is set by the linker script).
        word_bytes: bytes per word (Arm Cortex-M4F, float32 / int32), 4. S2-chip [A].
        dram_bytes: in-package LPDDR4 per chip, 2 GB (taken as 2 GiB). S2-chip [A].
        dram_bandwidth_bytes_per_s: sustained DRAM bandwidth at most 6.4 GB/s.
            S2-chip [A] (from a pre-silicon datasheet).
        timer_hz: profiling timer tick rate, 1 MHz. S2-chip [A].
        router_entries_per_chip: multicast routing entries per chip, 16,384. S2-chip [A].
        chip_links: chip-to-chip links per chip, 6. S2-chip [A].
        chips_per_board: chips on one board, 48. S2-chip [A].
        board_chip_grid: how the 48 chips of a board are laid out for hop counts,
            8 x 6. [C] (the board's real link topology is not modelled; chips are placed
            on this grid and connected as a triangular mesh, 6 neighbours each).
        max_chips: largest machine, about 35,000 chips. S2-chip [A] (approximate).
        packet_key_bits: routing key of a NoC packet, 32 bits. S2-chip [A].
        packet_payload_bits: optional payload, 32 bits; EGRU events carry it (the graded
            value). S2-chip [A] for the size / [C] that every event uses it.
        mac_array_shape: per-PE 8-bit MAC accelerator, 16 x 4. S2-chip [A]. Not used by
            the EGRU deployment (float32 on the Arm core, S2-EGRU [A]).
        egru_code_bytes: size of the EGRU PE program in instruction memory, 12 KiB. [C]:
            estimate of a bare-metal Cortex-M4F program: runtime / start-up and packet
            handling (~5 KiB), timer profiling (~0.5 KiB), CSR and column-wise float32
            mat-vec kernels (~1.5 KiB), the point-wise EGRU update with single-precision
            ``expf``/``tanhf`` from a soft libm (~3 KiB), DMA input streaming (~1 KiB),
            slack (~1 KiB). No binary of the published program is public.
        egru_static_data_bytes: static data (.data/.bss) of the EGRU PE program in data
            memory, 1 KiB. [C]: configuration block (layer sizes, key offset, buffer
            addresses, counters), a small outgoing-packet queue and the profiling
            counters.
        profile_words_per_step: timer readings recorded per step when steps are recorded,
            5 words (start, after input product, after recurrent product, after the
            point-wise update, after sending). [C] (the published run read the timer at
            the boundaries of the four phases, S2-EGRU [A]).
    """

    # --- chip topology -------------------------------------------------------------
    qpe_x_range: tuple[int, int] = (1, 7)  # S2-chip [A]: qx 1..7 (inclusive)
    qpe_y_range: tuple[int, int] = (1, 6)  # S2-chip [A]: qy 1..6 (inclusive)
    qpe_holes: tuple[tuple[int, int], ...] = field(default_factory=_default_qpe_holes)  # [A]
    pes_per_qpe: int = 4  # S2-chip [A]
    management_cores: int = 1  # S2-chip [A]: one extra core manages the chip

    # --- processing element --------------------------------------------------------
    pe_clock_hz: int = 150_000_000  # S2-chip [A]: 150 MHz performance level
    pe_clock_levels_hz: tuple[int, ...] = (150_000_000, 300_000_000)  # S2-chip [A]
    instruction_memory_bytes: int = 32 * KIB  # S2-chip [A]
    data_memory_bytes: int = 96 * KIB  # S2-chip [A]
    stack_heap_bytes: int = 4 * KIB  # S2-chip [A]: "about 4 KiB"
    word_bytes: int = WORD_BYTES  # S2-chip [A]: 32-bit Arm Cortex-M4F
    mac_array_shape: tuple[int, int] = (16, 4)  # S2-chip [A]; unused by the EGRU program

    # --- chip memory and timer -----------------------------------------------------
    dram_bytes: int = 2 * KIB**3  # S2-chip [A]: 2 GB LPDDR4 in package
    dram_bandwidth_bytes_per_s: float = 6.4e9  # S2-chip [A]: pre-silicon datasheet
    timer_hz: int = 1_000_000  # S2-chip [A]: 1 MHz profiling timer

    # --- network -------------------------------------------------------------------
    router_entries_per_chip: int = 16_384  # S2-chip [A]
    packet_key_bits: int = 32  # S2-chip [A]
    packet_payload_bits: int = 32  # S2-chip [A] size; [C] that EGRU events always use it
    chip_links: int = 6  # S2-chip [A]
    chips_per_board: int = 48  # S2-chip [A]
    board_chip_grid: tuple[int, int] = (8, 6)  # [C]: layout used for chip hop counts
    max_chips: int = 35_000  # S2-chip [A]: "about 35,000 chips"

    # --- the EGRU PE program (software estimates) -----------------------------------
    egru_code_bytes: int = 12 * KIB  # [C]: estimate, see class docstring
    egru_static_data_bytes: int = 1 * KIB  # [C]: estimate, see class docstring
    profile_words_per_step: int = 5  # [C]: timer reads per recorded step

    def __post_init__(self) -> None:
        for name in (
            "pes_per_qpe",
            "pe_clock_hz",
            "instruction_memory_bytes",
            "data_memory_bytes",
            "word_bytes",
            "dram_bytes",
            "timer_hz",
            "router_entries_per_chip",
            "chips_per_board",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ChipSpec.{name} must be positive, got {getattr(self, name)}")
        for name in ("stack_heap_bytes", "egru_code_bytes", "egru_static_data_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"ChipSpec.{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.pes_per_qpe <= 4:
            raise ValueError(
                f"ChipSpec.pes_per_qpe must be 1..4 (a multicast packet selects PEs with a "
                f"4-bit mask), got {self.pes_per_qpe}"
            )
        (x0, x1), (y0, y1) = self.qpe_x_range, self.qpe_y_range
        if not (0 <= x0 <= x1 <= 7 and 0 <= y0 <= y1 <= 7):
            raise ValueError(
                "ChipSpec.qpe_x_range / qpe_y_range must lie in 0..7 (3-bit fields of the PE "
                f"id), got {self.qpe_x_range} / {self.qpe_y_range}"
            )
        if self.stack_heap_bytes + self.egru_static_data_bytes >= self.data_memory_bytes:
            raise ValueError(
                "ChipSpec: stack_heap_bytes + egru_static_data_bytes leave no data memory "
                f"({self.stack_heap_bytes} + {self.egru_static_data_bytes} >= "
                f"{self.data_memory_bytes})"
            )
        if not self.qpe_coordinates:
            raise ValueError("ChipSpec: the QPE grid minus the holes is empty")

    # ------------------------------------------------------------------ derived
    @property
    def qpe_coordinates(self) -> tuple[tuple[int, int], ...]:
        """The QPEs present on a chip as ``(qx, qy)``, ordered by ``qy`` then ``qx``."""
        holes = set(map(tuple, self.qpe_holes))
        (x0, x1), (y0, y1) = self.qpe_x_range, self.qpe_y_range
        return tuple(
            (qx, qy)
            for qy in range(y0, y1 + 1)
            for qx in range(x0, x1 + 1)
            if (qx, qy) not in holes
        )

    @property
    def qpes_per_chip(self) -> int:
        """QPEs per chip (38 for the real chip)."""
        return len(self.qpe_coordinates)

    @property
    def pes_per_chip(self) -> int:
        """Application PEs per chip (152 for the real chip; the management core excluded)."""
        return self.qpes_per_chip * self.pes_per_qpe

    @property
    def pe_clock_mhz(self) -> float:
        """The PE clock in MHz."""
        return self.pe_clock_hz / 1e6

    @property
    def usable_data_bytes(self) -> int:
        """Data memory left for the network once heap + stack and static data are set aside."""
        return self.data_memory_bytes - self.stack_heap_bytes - self.egru_static_data_bytes

    def with_clock_mhz(self, mhz: float) -> ChipSpec:
        """A copy running the PEs at ``mhz`` (one of the chip's levels, 150 or 300 MHz)."""
        hz = int(round(mhz * 1e6))
        if hz not in self.pe_clock_levels_hz:
            levels = ", ".join(f"{h / 1e6:g}" for h in self.pe_clock_levels_hz)
            raise ValueError(f"the PE clock must be one of {levels} MHz, got {mhz:g} MHz")
        return replace(self, pe_clock_hz=hz)
