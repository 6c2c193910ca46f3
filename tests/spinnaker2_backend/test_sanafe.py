"""NoC packet and hop counts cross-checked with SANA-FE 2.2.9 (skipped when not installed)."""

from __future__ import annotations

import pytest

pytest.importorskip("sanafe")

from spinnaker2_backend.sanafe_check import compare_with_sanafe, small_chip_mapping  # noqa: E402


def test_packets_and_hops_per_destination_pe_equal_sanafe():
    m = small_chip_mapping()
    got = compare_with_sanafe(m, steps=4)
    assert got.events == 4 * 8
    # SANA-FE sends a message per destination core along the XY route: ours per PE, exactly
    assert got.sanafe_packets == got.ours_packets_per_pe > 0
    assert got.sanafe_hops == got.ours_hops_per_pe > 0
    assert got.sanafe_network_energy_j == pytest.approx(got.sanafe_hops * 1e-12)
    # SpiNNaker2 multicasts one packet per QPE (4-bit PE mask) and its tree shares links
    assert got.ours_packets < got.sanafe_packets and got.ours_hops < got.sanafe_hops
    assert got.ours_tree_links <= got.ours_hops
