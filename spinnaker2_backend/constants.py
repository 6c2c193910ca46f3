"""Every hardware figure of the simulated SpiNNaker2 chip, in one place.

Each figure is a named field with its source and a confidence tag (``docs/spinnaker2.md``):

* **[A]** primary: the chip authors' code, pages or papers;
* **[B]** secondary;
* **[C]** an assumption of this project, to calibrate (never present it as measured).

The chip figures are grouped in the frozen dataclass :class:`ChipSpec`. Override any of them
with keyword arguments or :func:`dataclasses.replace`::

    spec = ChipSpec(pe_clock_hz=300_000_000)
    spec = dataclasses.replace(ChipSpec(), data_memory_bytes=64 * 1024)

Sizes are in bytes, rates in Hz or bytes per second. "KiB" is 1024 bytes.

Source abbreviations used in the comments:

* ``S2-chip``: docs/spinnaker2.md, section "The chip" (chip authors' publications and
  py-spinnaker2 code, as summarised there).
* ``S2-EGRU``: docs/spinnaker2.md, section "The EGRU deployment that was measured on the chip".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["EGRU_CODE_ESTIMATE", "KIB", "WORD_BYTES", "ChipSpec"]

#: One kibibyte.
KIB = 1024

#: Instruction memory of the EGRU PE program, part by part, in bytes. [C] estimates of a
#: bare-metal Arm Cortex-M4F (Thumb-2) program built with the chip's runtime; no binary of
#: the published program is public. Their sum (18,330 bytes = 17.9 KiB) is
#: ``ChipSpec.egru_code_bytes``; Table I of S2-EGRU [A] publishes 17.9 KB.
EGRU_CODE_ESTIMATE: tuple[tuple[str, int], ...] = (
    ("start-up, vector table, interrupt handlers of the runtime", 2_560),  # [C]
    ("NoC / packet, DMA and timer drivers of the runtime", 4_608),  # [C]
    ("io_printf-style log formatting (the debug region's writer)", 2_560),  # [C]
    ("soft-float libm: expf, tanhf, their tables", 3_072),  # [C]
    ("memcpy / memset / integer division helpers", 922),  # [C]
    ("CSR, event and dense mat-vec kernels, list merge", 1_536),  # [C]
    ("point-wise EGRU update and event bookkeeping", 1_024),  # [C]
    ("receive handlers (dense store, list append, accumulate)", 512),  # [C]
    ("DMA input streaming of layer-0 vectors", 1_024),  # [C]
    ("phase profiling with the 1 MHz timer", 512),  # [C]
)
#: The sum of :data:`EGRU_CODE_ESTIMATE`. [C]
EGRU_CODE_BYTES = sum(size for _, size in EGRU_CODE_ESTIMATE)

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
            the published EGRU deployment (float32 on the Arm core, S2-EGRU [A]); the
            ``mac-int8`` weight format feeds it 16 x 4 tiles of int8 codes.
        egru_code_bytes: size of the EGRU PE program in instruction memory, the sum of
            :data:`EGRU_CODE_ESTIMATE` (18,330 bytes = 17.9 KiB). [C]: an estimate per part of
            a bare-metal Cortex-M4F program built with the chip's runtime (no binary of the
            published program is public); Table I of S2-EGRU [A] gives 17.9 KB in total,
            which this sum matches.
        egru_static_data_bytes: static data (.data/.bss) of the EGRU PE program in data
            memory, 256 bytes. [C]: configuration block (layer sizes, key offset, buffer
            addresses: 16 words), counters of received / dropped events and packets
            (8 words), the outgoing-packet queue (32 words), slack. Counted under Table I's
            "variables" column.
        debug_log_bytes: the program's log / debug buffer in data memory (io_printf-style
            text buffer and the last step's timer readings), 1 KiB. [C]. Table I of S2-EGRU
            [A] publishes a 5 KB "debug" region; the only published region large enough to
            hold the 4 KiB heap + stack [A] is that one, so the model reads Table I's
            "debug" as heap + stack + this log buffer (docs/spinnaker2.md, "Where every byte
            lives").
        receive_list_entry_words: words per entry of the compact received-event list
            (receive policy ``event-list``): the source index and the float32 value, 2. [C].
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
    mac_array_shape: tuple[int, int] = (16, 4)  # S2-chip [A]; used by mac-int8 only

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
    egru_code_bytes: int = EGRU_CODE_BYTES  # [C]: sum of EGRU_CODE_ESTIMATE; Table I 17.9 KB [A]
    egru_static_data_bytes: int = 256  # [C]: estimate, see class docstring
    debug_log_bytes: int = 1 * KIB  # [C]: log buffer; with heap + stack = Table I "debug" 5 KB [A]
    receive_list_entry_words: int = 2  # [C]: index + float32 value per received event
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
        for name in (
            "stack_heap_bytes",
            "egru_code_bytes",
            "egru_static_data_bytes",
            "debug_log_bytes",
        ):
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
        if self.receive_list_entry_words < 1:
            raise ValueError(
                "ChipSpec.receive_list_entry_words must be >= 1, got "
                f"{self.receive_list_entry_words}"
            )
        reserved = self.stack_heap_bytes + self.egru_static_data_bytes + self.debug_log_bytes
        if reserved >= self.data_memory_bytes:
            raise ValueError(
                "ChipSpec: stack_heap_bytes + egru_static_data_bytes + debug_log_bytes leave no "
                f"data memory ({reserved} >= {self.data_memory_bytes})"
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
        return (
            self.data_memory_bytes
            - self.stack_heap_bytes
            - self.egru_static_data_bytes
            - self.debug_log_bytes
        )

    def with_clock_mhz(self, mhz: float) -> ChipSpec:
        """A copy running the PEs at ``mhz`` (one of the chip's levels, 150 or 300 MHz)."""
        hz = int(round(mhz * 1e6))
        if hz not in self.pe_clock_levels_hz:
            levels = ", ".join(f"{h / 1e6:g}" for h in self.pe_clock_levels_hz)
            raise ValueError(f"the PE clock must be one of {levels} MHz, got {mhz:g} MHz")
        return replace(self, pe_clock_hz=hz)


# ======================================================================================
# Running costs: cycles per operation and energies (appended by the simulator's authors;
# used by timing.py, energy.py and calibration.py).
#
# Source abbreviations, in addition to S2-chip / S2-EGRU above:
#
# * ``M4-TRM``: Arm Cortex-M4 technical reference manual, instruction timings (a load is
#   2 cycles, 1 when pipelined behind another load; VFMA.F32 / VMLA.F32 3 cycles;
#   VDIV.F32 14 cycles; a taken branch 2-4 cycles; 12-cycle interrupt entry and exit).
#   Tag [B]: these are the core's documented timings, the PE's memory system may add.
# * ``calibrated``: fitted by :mod:`spinnaker2_backend.calibration` so that the simulated
#   published LM deployment reproduces the measured anchor (S2-EGRU [A]: 170.25 ms per
#   70-token sequence, 0.0653 J). The fitted value itself is [C]: it absorbs every effect
#   the model leaves out. ``benchmarks/calibrate_timing.py`` recomputes it and a test checks
#   that the value shipped here equals what it computes.
# ======================================================================================

__all__ += ["CycleCosts", "EnergyCosts"]


@dataclass(frozen=True, kw_only=True)
class CycleCosts:
    """PE clock cycles per operation of the EGRU PE program (a float32 program on the Arm
    Cortex-M4F core, no MAC accelerator, S2-EGRU [A]).

    Per PE and step, the cycles of a phase are ``sum over operations of count x cycles``
    (:mod:`spinnaker2_backend.timing`). Override any figure with keyword arguments or
    :func:`dataclasses.replace`; all are keyword-only.

    Attributes (source, tag):
        csr_nonzero_cycles: one stored non-zero walked by the CSR row kernel, everything but
            the multiply-accumulate: load the value and its column index, load ``x[col]``
            (``bitmap16``: test the source's bit), advance and loop. **calibrated** to
            170.25 ms per 70-token sequence of the published LM at 150 MHz (S2-EGRU [A]
            anchor; the value is [C]) on the published mapping (50 PEs per layer, receive
            policy bitmap16, the stand-in firing 20 % per layer): 7.9; a weight whose source
            fired adds the MAC and ``bitmap_hit_cycles``.
        mac_cycles: one float32 multiply-accumulate (VFMA.F32), 3. M4-TRM [B].
        csr_row_cycles: one CSR row: load the two row extents, clear the accumulator, add
            the bias, store the gate pre-activation; about 10 instructions. [C].
        event_nonzero_extra_cycles: extra cycles per non-zero of the event (column-major)
            kernel over the CSR one: it loads, updates and stores the target row's
            accumulator in SRAM instead of keeping it in a register (+1 load, +1 store,
            one input load saved), 2. [C] from M4-TRM [B] timings.
        event_column_cycles: one event processed by the event kernel (per product): read the
            event's source index and value from the event list, load the column's two extents,
            set up the loop; 12. [C].
        dense_element_saved_cycles: cycles a dense row-major kernel saves per weight over
            the CSR one (no column-index load, affine addressing), 2. [C] from M4-TRM [B].
        pointwise_unit_cycles: the point-wise update of one unit: two sigmoids and a tanh
            (each one ``exp`` on the PE's exp accelerator plus a VDIV.F32, ~30 cycles),
            about 20 float operations, loads and stores of six gate values, the state and the
            threshold, the threshold test and event bookkeeping; 150. [C] from M4-TRM [B].
        trace_unit_cycles: the optional low-pass trace update of one unit (2 multiplies, an
            add, a load and a store), 8. [C].
        packet_send_cycles: one multicast packet sent (key and payload written to the NoC
            interface of the PE, loop), 16. [C].
        packet_receive_cycles: one packet received (interrupt entry and exit, 2 x 12 cycles
            M4-TRM [B]; read key and payload, subtract the key offset, store the value, append
            to the event list), 40. [C].
        clear_word_cycles: clearing one word of a dense input vector each step (the csr and
            dense kernels read ``x`` and ``y_{t-1}`` as dense vectors that must be zeroed
            where no event arrived; the event kernel resets its event list instead), 1. [C].
        tick_interrupt_cycles: the systick interrupt that starts a step (12-cycle entry and
            12-cycle exit, M4-TRM [B], and a handler that reads the tick count and flags the
            step), 60. [C] from M4-TRM [B]. Paid in both execution modes (as fast as
            possible, the step's start is signalled the same way).
        host_wait_cycles: waiting per step for the host to hand over inputs, 0: the
            published deployment streams its inputs from DRAM (S2-EGRU [A]). [C].
        sync_cycles: a barrier between PEs per step, 0: py-spinnaker2 apps have no barrier
            beyond the tick (S2-chip [A]); the wait for the last packet is the NoC tail.
        step_overhead_cycles: fixed per PE and step besides the three above: the profiling
            timer reads, swapping event buffers, loop set-up of the phases; 340. [C].
        dma_setup_cycles: one DMA transfer from DRAM: program the descriptor and take the
            completion interrupt, 200. [C].
        dma_bytes_per_cycle: most bytes one PE's DMA moves per PE clock cycle (one 32-bit
            word), 4. [C]. The chip-wide DRAM bandwidth (ChipSpec, 6.4 GB/s, S2-chip [A]) is
            shared by the PEs that read at the same time; the slower of the two limits counts.
        noc_hop_cycles: latency of a packet per QPE hop of the NoC (router plus wires), in PE
            clock cycles, 8. [C] (per-hop latency unknown, S2-chip).
        chip_link_cycles: latency of a packet per chip-to-chip link hop, 300 (2 us at
            150 MHz). [C] (link latency unknown, S2-chip).
        chip_link_packet_cycles: time one 64-bit packet occupies a chip-to-chip link (its
            serialisation), 5 PE cycles at 150 MHz (33 ns: about 2 Gbit/s). [C] (link
            bandwidth unknown, S2-chip). A step's events that cross one link queue on it:
            the layer's NoC tail is at least the busiest link's packets times this.
        noc_link_packet_cycles: time one 64-bit packet occupies one QPE-to-QPE link of the
            on-chip NoC, 1 PE cycle: one 64-bit flit per clock and direction, the NoC clocked
            at least as fast as the PE. [C] (the NoC's link width and clock are not
            published, S2-chip). A step's events that cross one on-chip link queue on it
            like those of a chip link (:func:`spinnaker2_backend.timing.link_cycles`).
        list_append_cycles: one entry written to the compact received-event list (receive
            policy ``event-list``): store the source index and the value, bump the count,
            compare it with the capacity, and the entry's share of the counting-sort pass that
            orders the list by source index before the products; 8. [C] from M4-TRM [B].
        merge_step_cycles: one step of the merge of a CSR row's sorted column indices with
            the sorted event list (``event-list`` with CSR weights: compare two indices,
            branch, advance one cursor), 3. [C] from M4-TRM [B].
        readout_mac_cycles: one multiply-accumulate of the on-chip readout (a dense column
            walk of the decoder over the fired units, weights streamed from DRAM), 5. [C].
        int8_convert_cycles: extra cycles per stored code of the Arm-core int8 kernels
            (``csr-int8``, ``event-int8``) over the float32 ones: the code is loaded with
            LDRSB (same cost as the LDR of a float32 value) and widened with VMOV S, R (1)
            and VCVT.F32.S32 (1) before the VFMA; 2. M4-TRM [B].
        int8_row_scale_cycles: one row's scale on the Arm core after its int8 product: VLDR
            of the scale (2) and a VMUL.F32 (1) of the accumulator; 3. [C] from M4-TRM [B].
        mac_tile_cycles: one 16 x 4 tile of int8 codes issued to the MAC array (64
            multiply-accumulates). The array's 64 MAC units would take one cycle; its 64
            bytes of codes come from SRAM over a 128-bit port, 4 cycles. [C] (the array's
            throughput is not published for this use).
        mac_setup_cycles: set-up of one product on the MAC array: programme the operand and
            accumulator addresses, the tile count and the mode, start it and take its done
            interrupt; 60. [C].
        mac_row_readout_cycles: one output row read back from the MAC array: LDR of the int32
            accumulator (2), VMOV (1), VCVT.F32.S32 (1), VMUL.F32 by ``s_row * s_x`` (1), a
            load of that combined scale (2) and the store (1); 8. [C] from M4-TRM [B].
        half_convert_cycles: one binary16 received value widened to float32 before its MAC
            (``VCVTB.F32.F16``, receive designs that keep 16 bits per source), 1. M4-TRM [B].
        bitmap_hit_cycles: one stored weight whose source's bit is set (receive design
            ``bitmap16``): the value's rank (the bitmap word's 16-bit running count plus a
            popcount of the masked word by byte-table look-ups, the M4 has no popcount
            instruction), the ``LDRH`` of the binary16 value and its ``VCVTB``; 14. [C] from
            M4-TRM [B]. The bit test itself is part of the fitted walk. With float32 values
            (``bitmap32``) the ``VCVTB`` (``half_convert_cycles``) is not needed.
        rank_word_cycles: building one entry of the rank directory per step (popcount of a
            bitmap word by byte-table look-ups, add, store), 12. [C] from M4-TRM [B].
        weight_load_cycles: the part of a stored weight's walk that loads its value and
            column index (LDR 2 + LDR 1 pipelined), 3. M4-TRM [B]. With a batch and
            ``batch_shares_weight_loads``, a weight is loaded once per step and applied to
            every sample (the weight loop outside the sample loop); otherwise every sample
            walks the weights again (the step function called once per sample).
        batch_shares_weight_loads: the program's loop order for a batch, False (samples
            outside: nothing is shared but the fixed per-step work). [C]: the published
            program's batch loop is not described; the paper says its time "scales linearly
            with batch size" (S2-EGRU [A]).
        extent_load_cycles: one more row extent read when CSR rows are split by sender block
            (receive design ``dma-pull``), 2. [C] from M4-TRM [B].
        event_quantise_cycles: one input value quantised to int8 for the MAC array
            (``clip(rint(x / s_x))``): VMUL.F32 by ``1 / s_x`` (1), VCVTR.S32.F32 (1), VMOV
            (1), SSAT (1), STRB into the operand vector (2); 6. [C] from M4-TRM [B].
    """

    csr_nonzero_cycles: float = 7.9  # calibrated [C] to the S2-EGRU [A] anchor, 150 MHz
    mac_cycles: float = 3.0  # M4-TRM [B]: VFMA.F32
    csr_row_cycles: float = 10.0  # [C]
    event_nonzero_extra_cycles: float = 2.0  # [C] from M4-TRM [B]
    event_column_cycles: float = 12.0  # [C]
    dense_element_saved_cycles: float = 2.0  # [C] from M4-TRM [B]
    pointwise_unit_cycles: float = 150.0  # [C] from M4-TRM [B]
    trace_unit_cycles: float = 8.0  # [C]
    packet_send_cycles: float = 16.0  # [C]
    packet_receive_cycles: float = 40.0  # [C] (interrupt entry/exit M4-TRM [B])
    clear_word_cycles: float = 1.0  # [C]
    tick_interrupt_cycles: float = 60.0  # [C] from M4-TRM [B]
    host_wait_cycles: float = 0.0  # [C]: inputs stream from DRAM (S2-EGRU [A])
    sync_cycles: float = 0.0  # S2-chip [A]: no barrier beyond the tick
    step_overhead_cycles: float = 340.0  # [C]
    dma_setup_cycles: float = 200.0  # [C]
    dma_bytes_per_cycle: float = 4.0  # [C]
    noc_hop_cycles: float = 8.0  # [C]
    chip_link_cycles: float = 300.0  # [C]
    chip_link_packet_cycles: float = 5.0  # [C]: link bandwidth unknown (S2-chip)
    noc_link_packet_cycles: float = 1.0  # [C]: NoC link width and clock unknown (S2-chip)
    readout_mac_cycles: float = 5.0  # [C]
    list_append_cycles: float = 8.0  # [C] from M4-TRM [B]
    merge_step_cycles: float = 3.0  # [C] from M4-TRM [B]
    int8_convert_cycles: float = 2.0  # M4-TRM [B]: VMOV + VCVT.F32.S32
    int8_row_scale_cycles: float = 3.0  # [C] from M4-TRM [B]
    mac_tile_cycles: float = 4.0  # [C]: 64 B of codes over a 128-bit SRAM port
    mac_setup_cycles: float = 60.0  # [C]
    mac_row_readout_cycles: float = 8.0  # [C] from M4-TRM [B]
    event_quantise_cycles: float = 6.0  # [C] from M4-TRM [B]
    half_convert_cycles: float = 1.0  # M4-TRM [B]: VCVTB.F32.F16
    bitmap_hit_cycles: float = 14.0  # [C] from M4-TRM [B]
    rank_word_cycles: float = 12.0  # [C] from M4-TRM [B]
    extent_load_cycles: float = 2.0  # [C] from M4-TRM [B]
    weight_load_cycles: float = 3.0  # M4-TRM [B]: LDR value + LDR index (pipelined)
    batch_shares_weight_loads: bool = False  # [C]: the batch loop is not published

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not value >= 0:
                raise ValueError(f"CycleCosts.{name} must be >= 0, got {value!r}")
        if self.dma_bytes_per_cycle <= 0:
            raise ValueError(
                f"CycleCosts.dma_bytes_per_cycle must be > 0, got {self.dma_bytes_per_cycle}"
            )
        if self.dense_element_saved_cycles > self.csr_nonzero_cycles:
            raise ValueError(
                "CycleCosts.dense_element_saved_cycles cannot exceed csr_nonzero_cycles "
                f"({self.dense_element_saved_cycles} > {self.csr_nonzero_cycles})"
            )

    @property
    def fixed_step_cycles(self) -> float:
        """Fixed cycles per PE and step: tick interrupt, host wait, barrier, set-up."""
        return (
            self.tick_interrupt_cycles
            + self.host_wait_cycles
            + self.sync_cycles
            + self.step_overhead_cycles
        )

    @property
    def event_nonzero_cycles(self) -> float:
        """Walk cost per non-zero of the event kernel (MAC excluded)."""
        return self.csr_nonzero_cycles + self.event_nonzero_extra_cycles

    @property
    def dense_element_cycles(self) -> float:
        """Walk cost per weight of the dense kernel (MAC excluded)."""
        return self.csr_nonzero_cycles - self.dense_element_saved_cycles


@dataclass(frozen=True, kw_only=True)
class EnergyCosts:
    """Power and energy figures of the simulated chip (:mod:`spinnaker2_backend.energy`).

    A performance level is a PE clock with its supply voltage ``V`` (``level_voltages_v``).
    The model follows CMOS physics::

        E = P_chip * T_wall * chips                       chip baseline, not per PE level
          + P_leak(V) * PEs powered * T_wall               every PE leaks, busy or idle
          + E_cycle(V) * busy PE cycles                    dynamic, ~ C V^2 per cycle
          + E_packet * packets + E_hop * hops + E_link * chip-link hops + E_dram * bytes

    with ``P_leak(V) = pe_leakage_power_w * V / V_base`` (leakage ~ V at a given threshold
    voltage) and ``E_cycle(V) = pe_cycle_energy_j * (V / V_base)^2``. A faster level
    shortens the busy part only: at a fixed wall time (timer-driven runs) it always costs
    more; run as fast as possible it saves baseline and leakage time and can cost less
    (:meth:`~spinnaker2_backend.energy.EnergyEstimate.terms` says which term does it).
    No per-operation energies of SpiNNaker2 are public (S2-chip): every figure is [C] or
    [B] except what the calibration ties to the measured 0.0653 J / 0.39 W (S2-EGRU [A]).

    Attributes (source, tag):
        static_power_w: whole-chip power that does not depend on the PEs' level (DRAM
            refresh and interface, chip I/O, the management core, clock distribution),
            W per chip. **calibrated** so that the published LM run takes 0.0653 J, S2-EGRU
            [A] anchor; value [C]. The same 0.39 W with 150 and 128 busy PEs (S2-EGRU) says
            this part dominates.
        pe_leakage_power_w: leakage of one PE at the base level (0.50 V), 0.1 mW. [C].
        pe_cycle_energy_j: dynamic energy of one busy PE cycle at the base level (core,
            SRAM, exp accelerator), 6.7 pJ (1 mW at 150 MHz). [C].
        level_voltages_v: supply per PE clock level: about 0.50 V at 150 MHz and 0.80 V at
            300 MHz. [B] (secondary sources citing the chip papers, S2-chip: 22FDX with
            adaptive body biasing, near-threshold operation down to 0.5 V).
        packet_energy_j: one packet through the source and destination routers, 10 pJ. [C].
        packet_hop_energy_j: one 64-bit packet (key + payload) over one QPE hop, 5 pJ. [C].
        chip_link_energy_j: one 64-bit packet over one chip-to-chip link, 320 pJ (5 pJ per
            bit, a typical figure for a short off-chip serial link). [C].
        dram_byte_energy_j: one byte read from or written to the LPDDR4 DRAM, 40 pJ. [C].
    """

    static_power_w: float = 0.3168  # calibrated [C] to the S2-EGRU [A] anchor
    pe_leakage_power_w: float = 1.0e-4  # [C]
    pe_cycle_energy_j: float = 6.7e-12  # [C]
    level_voltages_v: tuple[tuple[int, float], ...] = (
        (150_000_000, 0.50),  # [B] secondary sources citing the chip papers
        (300_000_000, 0.80),  # [B] secondary sources citing the chip papers
    )
    packet_energy_j: float = 10e-12  # [C]
    packet_hop_energy_j: float = 5e-12  # [C]
    chip_link_energy_j: float = 320e-12  # [C]
    dram_byte_energy_j: float = 40e-12  # [C]

    def __post_init__(self) -> None:
        for name in (
            "static_power_w",
            "pe_leakage_power_w",
            "pe_cycle_energy_j",
            "packet_energy_j",
            "packet_hop_energy_j",
            "chip_link_energy_j",
            "dram_byte_energy_j",
        ):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"EnergyCosts.{name} must be >= 0, got {value!r}")
        if not self.level_voltages_v or any(v <= 0 for _, v in self.level_voltages_v):
            raise ValueError(
                "EnergyCosts.level_voltages_v must list (clock_hz, volts > 0) pairs, got "
                f"{self.level_voltages_v!r}"
            )
        ordered = sorted(self.level_voltages_v)
        if any(b[1] < a[1] for a, b in zip(ordered, ordered[1:])):
            raise ValueError(
                "EnergyCosts.level_voltages_v: a faster level needs at least the voltage of "
                f"a slower one, got {self.level_voltages_v!r}"
            )

    @property
    def base_clock_hz(self) -> int:
        """The level the per-PE figures are given for (the slowest level, 150 MHz)."""
        return min(hz for hz, _ in self.level_voltages_v)

    def voltage(self, clock_hz: float) -> float:
        """Supply voltage of the level running at ``clock_hz``.

        Raises:
            ValueError: no such performance level (names the known ones).
        """
        for hz, volts in self.level_voltages_v:
            if hz == int(round(clock_hz)):
                return volts
        levels = ", ".join(f"{hz / 1e6:g}" for hz, _ in self.level_voltages_v)
        raise ValueError(
            f"unknown performance level: no supply voltage known for a {clock_hz / 1e6:g} MHz "
            f"PE clock; known levels: {levels} MHz (add one with EnergyCosts(level_voltages_v="
            "...))"
        )

    def _ratio(self, clock_hz: float) -> float:
        return self.voltage(clock_hz) / self.voltage(self.base_clock_hz)

    def leakage_power_at(self, clock_hz: float) -> float:
        """Leakage of one PE at a level, W (``~ V``)."""
        return self.pe_leakage_power_w * self._ratio(clock_hz)

    def cycle_energy_at(self, clock_hz: float) -> float:
        """Dynamic energy of one busy PE cycle at a level, J (``~ C V^2``)."""
        return self.pe_cycle_energy_j * self._ratio(clock_hz) ** 2

    def pe_active_power_at(self, clock_hz: float) -> float:
        """Dynamic power of one busy PE at a level, W (``E_cycle(V) * f``)."""
        return self.cycle_energy_at(clock_hz) * clock_hz
