"""Chip topology, PE addressing and hop distances (spinnaker2_backend.machine / constants)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinnaker2_backend import ChipSpec, Machine
from spinnaker2_backend.machine import pe_id_from_coordinates, pe_id_to_coordinates

HOLES = {(4, 3), (4, 4), (7, 3), (7, 4)}


def test_chip_has_152_pes_in_38_qpes_at_the_published_coordinates():
    spec = ChipSpec()
    expected = {(qx, qy) for qx in range(1, 8) for qy in range(1, 7)} - HOLES
    assert set(spec.qpe_coordinates) == expected
    assert spec.qpes_per_chip == 38
    assert spec.pes_per_chip == 152
    assert spec.management_cores == 1  # not counted among the 152
    machine = Machine()
    pes = machine.pes()
    assert len(pes) == machine.num_pes == 152
    assert {p.qpe for p in pes} == expected
    assert not HOLES & {p.qpe for p in pes}
    for qpe in expected:
        assert sorted(p.pe_in_qpe for p in pes if p.qpe == qpe) == [0, 1, 2, 3]


def test_published_figures():
    spec = ChipSpec()
    assert spec.pe_clock_hz == 150_000_000
    assert spec.pe_clock_levels_hz == (150_000_000, 300_000_000)
    assert spec.instruction_memory_bytes == 32 * 1024
    assert spec.data_memory_bytes == 96 * 1024
    assert spec.stack_heap_bytes == 4 * 1024
    assert spec.word_bytes == 4
    assert spec.dram_bandwidth_bytes_per_s == 6.4e9
    assert spec.timer_hz == 1_000_000
    assert spec.router_entries_per_chip == 16_384
    assert spec.chip_links == 6
    assert spec.chips_per_board == 48
    assert spec.egru_code_bytes <= spec.instruction_memory_bytes


def test_pe_ids_follow_the_published_formula():
    machine = Machine()
    ids = set()
    for p in machine.pes():
        assert (p.pe_id >> 5) & 7 == p.qpe[0]
        assert (p.pe_id >> 2) & 7 == p.qpe[1]
        assert p.pe_id & 3 == p.pe_in_qpe
        ids.add(p.pe_id)
    assert len(ids) == 152
    # QPE (1,1) core 0 is id 0b001_001_00 = 36; QPE (7,6) core 3 is 0b111_110_11 = 251.
    assert machine.pe(0).pe_id == 36
    assert machine.pe(151).pe_id == 251


@settings(max_examples=60, deadline=None)
@given(qx=st.integers(0, 7), qy=st.integers(0, 7), pe=st.integers(0, 3))
def test_pe_id_coordinates_round_trip(qx, qy, pe):
    pe_id = pe_id_from_coordinates(qx, qy, pe)
    assert 0 <= pe_id <= 255
    assert pe_id_to_coordinates(pe_id) == (qx, qy, pe)


@settings(max_examples=40, deadline=None)
@given(chips=st.integers(1, 60), data=st.data())
def test_global_index_round_trip(chips, data):
    machine = Machine(chips=chips)
    index = data.draw(st.integers(0, machine.num_pes - 1))
    p = machine.pe(index)
    assert p.chip == index // 152
    assert machine.index_of(p.chip, p.pe_id) == index
    assert machine.index_of_qpe(p.chip, p.qpe, p.pe_in_qpe) == index


def test_bad_addresses_raise_clearly():
    machine = Machine()
    with pytest.raises(ValueError, match="does not exist"):
        machine.index_of(0, pe_id_from_coordinates(4, 3, 0))  # a hole
    with pytest.raises(IndexError):
        machine.pe(152)
    with pytest.raises(ValueError, match="8 bits"):
        pe_id_to_coordinates(256)
    with pytest.raises(ValueError, match="at least one chip"):
        Machine(chips=0)


def test_xy_hops_between_qpes():
    assert Machine.qpe_hops((1, 1), (7, 6)) == 11
    assert Machine.qpe_hops((3, 2), (3, 2)) == 0
    route = Machine.xy_route((1, 1), (3, 3))
    assert route == [(1, 1), (2, 1), (3, 1), (3, 2), (3, 3)]  # x first, then y
    assert len(route) == Machine.qpe_hops((1, 1), (3, 3)) + 1
    machine = Machine()
    a = machine.index_of_qpe(0, (1, 1), 0)
    b = machine.index_of_qpe(0, (1, 1), 3)
    c = machine.index_of_qpe(0, (5, 6), 2)
    assert machine.hops(a, b) == (0, 0)
    assert machine.hops(a, c) == (9, 0)


def test_boards_and_chip_hops():
    board = Machine.board()
    assert board.num_chips == 48
    assert board.num_pes == 48 * 152
    assert board.chip_grid == (8, 6)
    assert board.chip_position(9) == (1, 1)
    assert board.chip_hops(0, 1) == 1
    assert board.chip_hops(0, 9) == 1  # diagonal link of the triangular mesh
    assert board.chip_hops(1, 8) == 2  # (1,0) -> (0,1): no link along that diagonal
    assert board.chip_hops(0, 47) == 7  # (0,0) -> (7,5)
    a = board.index_of_qpe(0, (2, 2), 0)
    b = board.index_of_qpe(9, (2, 2), 1)
    assert board.hops(a, b) == (0, 1)
    assert Machine.board(boards=2).num_chips == 96


def test_spec_overrides_change_the_machine():
    spec = ChipSpec(qpe_holes=())
    assert spec.qpes_per_chip == 42
    assert Machine(spec=spec).num_pes == 168
    fast = ChipSpec().with_clock_mhz(300)
    assert fast.pe_clock_hz == 300_000_000
    assert dataclasses.replace(ChipSpec(), data_memory_bytes=64 * 1024).data_memory_bytes == 65536
    with pytest.raises(ValueError, match="150, 300 MHz"):
        ChipSpec().with_clock_mhz(200)
    with pytest.raises(ValueError, match="pes_per_qpe"):
        ChipSpec(pes_per_qpe=5)
    with pytest.raises(ValueError, match="leave no data memory"):
        ChipSpec(stack_heap_bytes=96 * 1024)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChipSpec().data_memory_bytes = 1  # type: ignore[misc]


def test_triangular_mesh_hops_vectorised_matches_scalar():
    import numpy as np

    from spinnaker2_backend.machine import triangular_mesh_hops

    dx, dy = np.meshgrid(np.arange(-4, 5), np.arange(-3, 4))
    vec = triangular_mesh_hops(dx, dy)
    for a, b, h in zip(dx.ravel(), dy.ravel(), vec.ravel()):
        assert triangular_mesh_hops(int(a), int(b)) == h
    assert triangular_mesh_hops(2, 3) == 3 and triangular_mesh_hops(2, -3) == 5
