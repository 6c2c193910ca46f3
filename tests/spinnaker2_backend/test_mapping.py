"""Mapping pipeline: partition -> place -> route -> memory layout -> fit check."""

from __future__ import annotations

import csv
import io
import json
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUParams
from spinnaker2_backend import ChipSpec, Machine, MappingError, map_network, synthetic_network
from spinnaker2_backend.formats import WEIGHT_FORMATS
from spinnaker2_backend.mapping import (
    DATA_REGIONS,
    PESlice,
    layer_memory_models,
    partition_network,
)
from spinnaker2_backend.mapping.placement import _pe_order, _traffic_cost

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def small_net():
    return synthetic_network(layer_sizes=(37, 23, 11), input_size=13, sparsity=0.7, seed=3)


def _tiny_artifact(readout_source: str = "y") -> DeploymentArtifact:
    """One layer, H=2, I=3, with hand-countable non-zeros (rows r0 r1 z0 z1 n0 n1)."""
    w_ih = np.array(
        [[1, 0, 0], [0, 0, 0], [0, 2, 0], [1, 1, 0], [0, 0, 0], [0, 0, 3]], dtype=np.float32
    )  # unit 0 (rows 0, 2, 4): 2 non-zeros; unit 1 (rows 1, 3, 5): 3
    w_hh = np.array([[1, 1], [0, 0], [0, 0], [0, 1], [1, 0], [0, 0]], dtype=np.float32)
    # unit 0: 3 non-zeros; unit 1: 1
    zeros = np.zeros(6, dtype=np.float32)
    layer = EGRUParams(w_ih, w_hh, zeros, zeros.copy(), np.full(2, 0.1, dtype=np.float32))
    return DeploymentArtifact(layers=[layer], input_kind="features", readout_source=readout_source)


# ======================================================================= memory layout


def test_memory_layout_hand_computed_csr():
    mapping = map_network(_tiny_artifact(), max_units_per_pe=1, record_steps=2)
    first, second = mapping.layers[0].slices
    mem = mapping.memory[first.pe]
    assert mem.regions() == {
        "static_data": 256,
        "weights": 4 * ((2 * 2 + 3 + 1) + (2 * 3 + 3 + 1)),  # ih 8 words + hh 10 words = 72 B
        "variables": 4 * 15,  # c, y, theta, 3+3 biases, 3+3 gate buffers
        "receive_buffers": 4 * (2 + 3),  # y_prev of the layer (H) + input vector (I)
        "recordings": 4 * (1 * 2 + 5 * 2),  # y of 1 unit x 2 steps + 5 timer words x 2 steps
        "debug": 1024,
        "stack_heap": 4096,
    }
    assert mem.total == 256 + 72 + 60 + 20 + 48 + 1024 + 4096 == 5576
    assert mem.free == 98_304 - 5576
    assert mem.code == 18_330  # sum of EGRU_CODE_ESTIMATE: Table I's 17.9 KB
    assert mapping.memory[second.pe].weights == 4 * ((2 * 3 + 4) + (2 * 1 + 4))  # 64 B
    # the address map is contiguous from 0 with the stack at the top
    amap = mem.address_map()
    assert amap["static_data"] == (0, 256)
    assert amap["weights"] == (256, 328)
    assert amap["debug"] == (256 + 72 + 60 + 20 + 48, 256 + 72 + 60 + 20 + 48 + 1024)
    assert amap["stack_heap"] == (98_304 - 4096, 98_304)
    assert mem.overflow_region() is None


def test_memory_layout_hand_computed_event_dense_and_trace():
    event = map_network(_tiny_artifact(), weight_format="event", max_units_per_pe=1)
    pe0 = event.layers[0].slices[0].pe
    assert event.memory[pe0].weights == 4 * ((2 * 2 + 3 + 1) + (2 * 3 + 2 + 1))  # 68 B
    dense = map_network(_tiny_artifact("trace"), weight_format="dense", max_units_per_pe=1)
    mem = dense.memory[dense.layers[0].slices[0].pe]
    assert mem.weights == 4 * (3 * 3 + 3 * 2)  # 60 B
    assert mem.variables == 4 * 16  # the traced last layer keeps one more word per unit


def test_memory_model_is_additive_and_matches_encoded_weights(small_net):
    for fmt in WEIGHT_FORMATS:
        models = layer_memory_models(small_net, spec=ChipSpec(), weight_format=fmt, record_steps=3)
        for model in models:
            unit = model.unit_bytes()
            rng = np.random.default_rng(model.layer)
            for _ in range(5):
                a, b = sorted(rng.integers(0, model.hidden_size + 1, size=2))
                assert model.data_bytes(a, b) == model.fixed_bytes() + int(unit[a:b].sum())
        mapping = map_network(small_net, weight_format=fmt, max_units_per_pe=5, record_steps=3)
        for lp in mapping.layers:
            for s in lp.slices:
                encoded = mapping.pe_weights(lp.layer, s)
                assert mapping.memory[s.pe].weights == encoded.bytes
                assert mapping.pe_weights(lp.layer, s.index_in_layer) is encoded  # cached


def test_every_stored_weight_is_on_exactly_one_pe(small_net):
    mapping = map_network(small_net, weight_format="csr", max_units_per_pe=4)
    total = sum(
        w.count_nonzero() for layer in small_net.layers for w in (layer.weight_ih, layer.weight_hh)
    )
    stored = sum(mapping.pe_weights(s.layer, s).nnz for s in mapping.slices)
    assert stored == total
    for lp in mapping.layers:
        params = small_net.layers[lp.layer]
        rebuilt = np.zeros((3 * lp.hidden_size, lp.input_size), dtype=np.float32)
        for s in lp.slices:
            rebuilt[mapping.pe_rows(lp.layer, s)] = mapping.pe_weights(
                lp.layer, s
            ).weight_ih.decode()
        np.testing.assert_array_equal(rebuilt, params.weight_ih.toarray())


# ============================================================== partition / placement


def _check_invariants(mapping):
    machine = mapping.machine
    pes = [s.pe for s in mapping.slices]
    assert len(pes) == len(set(pes)), "a PE holds two slices"
    assert all(0 <= p < machine.num_pes for p in pes)
    for lp in mapping.layers:
        covered = np.zeros(lp.hidden_size, dtype=int)
        prev_stop = 0
        for i, s in enumerate(lp.slices):
            assert s.index_in_layer == i and s.layer == lp.layer
            assert s.unit_start == prev_stop < s.unit_stop  # contiguous, non-empty
            prev_stop = s.unit_stop
            covered[s.unit_start : s.unit_stop] += 1
            where = machine.pe(s.pe)
            assert (where.chip, where.pe_id, where.qpe) == (s.chip, s.pe_id, s.qpe)
        assert np.all(covered == 1), "every unit placed exactly once"
    # layers are contiguous along the placement path
    position = {pe: k for k, pe in enumerate(_pe_order(machine, mapping.placement.path))}
    flat = [position[s.pe] for s in mapping.slices]
    assert flat == list(range(flat[0], flat[0] + len(flat)))
    # memory
    if mapping.fit.ok:
        assert all(m.free >= 0 for m in mapping.memory.values())
    # routes reach every consumer: own layer (others) + next layer
    for li, lp in enumerate(mapping.layers):
        expected_next = set(mapping.layers[li + 1].pes) if li + 1 < len(mapping.layers) else set()
        for s in lp.slices:
            route = mapping.routes[s.pe]
            assert set(route.destinations) == (set(lp.pes) - {s.pe}) | expected_next
            for t in route.targets:
                assert t.pe_mask == sum(1 << machine.pe(p).pe_in_qpe for p in t.pes)
                assert all(
                    machine.pe(p).qpe == t.qpe and machine.pe(p).chip == t.chip for p in t.pes
                )
                assert t.noc_hops == Machine.qpe_hops(s.qpe, t.qpe)
            # every key of the slice matches its entry and no other PE's
            last_key = s.key_offset + s.num_units - 1
            assert last_key & route.key_mask == s.key_offset & route.key_mask
    offsets = [s.key_offset & mapping.routes[s.pe].key_mask for s in mapping.slices]
    assert len(set(offsets)) == len(offsets)
    entries = mapping.routes.router_entries
    assert all(n <= mapping.spec.router_entries_per_chip for n in entries.values())
    # key/mask tables: every key of every source reaches each destination QPE through an
    # entry of that chip whose route covers it; at most one entry per source and chip
    for route in mapping.routes:
        for key in (route.key, route.key + route.source.num_units - 1):
            for t in route.targets:
                entry = mapping.routes.lookup(t.chip, key)
                assert entry is not None and (t.qpe, t.pe_mask) in entry.qpes
                assert route.source.pe in entry.sources
    for chip, table in mapping.routes.tables.items():
        assert entries[chip] == len(table) <= len(mapping.slices)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    max_units=st.one_of(st.none(), st.integers(1, 15)),
    fmt=st.sampled_from(WEIGHT_FORMATS),
    record_steps=st.integers(0, 50),
)
def test_partition_and_placement_invariants(small_net, max_units, fmt, record_steps):
    mapping = map_network(
        small_net, weight_format=fmt, max_units_per_pe=max_units, record_steps=record_steps
    )
    _check_invariants(mapping)
    if max_units is not None:
        assert all(s.num_units <= max_units for s in mapping.slices)


def test_invariants_on_two_chips():
    net = synthetic_network(layer_sizes=(100, 80), input_size=10, sparsity=0.5, seed=1)
    mapping = map_network(net, machine=Machine(chips=2), max_units_per_pe=1)
    assert mapping.num_pes_used == 180
    assert {s.chip for s in mapping.slices} == {0, 1}
    _check_invariants(mapping)
    assert any(r.chip_to_chip for r in mapping.routes)
    cross = next(t for r in mapping.routes for t in r.targets if t.chip_to_chip)
    assert cross.chip_hops == 1
    with pytest.raises(MappingError, match=r"needs 180 PEs .* chips=2"):
        map_network(net, max_units_per_pe=1)


def test_auto_partition_uses_the_fewest_pes_and_balances_bytes(paper_lm):
    mapping = map_network(paper_lm)  # csr, automatic
    counts = [lp.num_pes for lp in mapping.layers]
    for layer in range(3):
        fewer = list(counts)
        fewer[layer] -= 1
        worse = map_network(paper_lm, pes_per_layer=fewer, check=False)
        assert not worse.fit.ok, f"layer {layer} also fits on {fewer[layer]} PEs"
    for lp, model in zip(mapping.partition.layers, mapping.memory_models):
        spread = max(lp.data_bytes) - min(lp.data_bytes)
        assert spread <= 3 * int(model.unit_bytes().max())
        assert max(lp.data_bytes) <= mapping.spec.data_memory_bytes


def test_placement_beats_plain_pe_index_order(paper_lm):
    mapping = map_network(paper_lm)
    machine = mapping.machine
    raster = []
    k = 0
    for layer in mapping.placement.layers:
        row = []
        for s in layer:
            where = machine.pe(k)
            row.append(
                PESlice(s.layer, s.index_in_layer, k, where.chip, where.pe_id, where.qpe,
                        s.unit_start, s.unit_stop, s.key_offset)
            )  # fmt: skip
            k += 1
        raster.append(row)
    assert mapping.placement.traffic_hops < _traffic_cost(machine, raster)


def test_pes_per_layer_and_max_units_modes(small_net):
    mapping = map_network(small_net, pes_per_layer=(4, 3, 2))
    assert [lp.num_pes for lp in mapping.layers] == [4, 3, 2]
    mapping = map_network(small_net, pes_per_layer=3)
    assert [lp.num_pes for lp in mapping.layers] == [3, 3, 3]
    mapping = map_network(small_net, max_units_per_pe=10)
    assert [s.num_units for s in mapping.layers[0].slices] == [10, 10, 10, 7]  # like py-spinnaker2
    part = partition_network(small_net, max_units_per_pe=10)
    assert "layer 0: 37 units on 4 PEs" in part.table()


# ========================================================== published deployments fit


def test_paper_lm_csr_fits_one_chip(paper_lm):
    mapping = map_network(paper_lm, weight_format="csr")
    assert mapping.fits
    assert mapping.num_pes_used <= 152
    report = mapping.report()
    logger.info(
        "paper-lm 0.95 csr: %d PEs (%s), fullest %.1f %% (the published run used 150 PEs)",
        mapping.num_pes_used,
        [lp.num_pes for lp in mapping.layers],
        100 * report.fullest.utilisation,
    )
    assert report.pes_used == mapping.num_pes_used
    assert report.fullest.utilisation == max(m.utilisation for m in mapping.memory.values())
    assert report.fullest.utilisation <= 1.0
    assert max(mapping.routes.router_entries.values()) <= 16_384
    # a published-like split of about 24 units per PE also fits, on 146 PEs
    assert map_network(paper_lm, max_units_per_pe=24).num_pes_used == 146


def test_paper_lm_event_format_fits_one_chip(paper_lm):
    mapping = map_network(paper_lm, weight_format="event")
    assert mapping.fits and mapping.num_pes_used <= 152


def test_paper_dvs_dense_fits():
    dvs = synthetic_network("paper-dvs")
    mapping = map_network(dvs, weight_format="dense")
    assert mapping.fits
    assert mapping.num_pes_used <= 152
    assert [lp.hidden_size for lp in mapping.layers] == [256, 256]


# ==================================================================== errors that help


def test_dense_paper_lm_needs_more_chips(paper_lm):
    with pytest.raises(MappingError) as err:
        map_network(paper_lm, weight_format="dense")
    message = str(err.value)
    assert "the network needs" in message and "PEs" in message
    assert "152 PEs on 1 chip" in message
    assert "--chips" in message and "prune more" in message


def test_overfull_pe_message_names_pe_region_bytes_and_fixes(paper_lm):
    with pytest.raises(MappingError) as err:
        map_network(paper_lm, max_units_per_pe=40)
    message = str(err.value)
    assert message.startswith("PE ")
    assert "QPE (" in message and "layer" in message
    assert "data memory needs" in message and "98,304 are available" in message
    assert "largest region: weights" in message
    assert "max_units_per_pe=" in message
    assert "prune more" in message and "sparsity >=" in message
    assert "more chips" not in message  # a PE's memory does not grow with the machine
    assert "more PE problems" in message
    kinds = {a.kind for a in err.value.advice}
    assert {"max_units_per_pe", "sparsity"} <= kinds


def test_recordings_that_do_not_fit_suggest_fewer_steps(paper_lm):
    with pytest.raises(MappingError, match=r"record fewer steps \(record_steps <= \d+\)"):
        map_network(paper_lm, max_units_per_pe=24, record_steps=100)
    mapping = map_network(paper_lm, max_units_per_pe=24, record_steps=100, check=False)
    assert not mapping.fit.ok
    assert not mapping.report().fits
    over = [m for m in mapping.memory.values() if m.free < 0]
    assert over and all(m.recordings > 0 for m in over)


def test_a_unit_that_cannot_fit_any_pe():
    rng = np.random.default_rng(0)
    layer = EGRUParams(
        rng.standard_normal((3, 9000)).astype(np.float32),
        np.ones((3, 1), dtype=np.float32),
        np.zeros(3, dtype=np.float32),
        np.zeros(3, dtype=np.float32),
        np.full(1, 0.5, dtype=np.float32),
    )
    net = DeploymentArtifact(layers=[layer])
    with pytest.raises(MappingError, match="even a PE holding only unit 0 needs"):
        map_network(net, weight_format="dense")
    with pytest.raises(MappingError, match="prune more"):
        map_network(net.with_sparse_weights(), weight_format="csr")


def test_router_capacity_is_checked(small_net):
    spec = ChipSpec(router_entries_per_chip=10)
    with pytest.raises(MappingError, match="router entries"):
        map_network(small_net, spec=spec, max_units_per_pe=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_format": "coo"}, "unknown weight format"),
        ({"record_steps": -1}, "record_steps"),
        ({"input_source": "sram"}, "unknown input_source"),
        ({"max_units_per_pe": 0}, "max_units_per_pe"),
        ({"max_units_per_pe": 4, "pes_per_layer": 2}, "not both"),
        ({"pes_per_layer": (1, 2)}, "3 layers"),
        ({"pes_per_layer": 30}, "pes_per_layer must be 1..23"),
    ],
)
def test_bad_options_raise(small_net, kwargs, match):
    with pytest.raises(MappingError, match=match):
        map_network(small_net, **kwargs)


# ============================================================== outputs and delegation


def test_placement_table_saves_as_csv_and_json(small_net, tmp_path):
    mapping = map_network(small_net, max_units_per_pe=6)
    rows = list(csv.DictReader(io.StringIO(mapping.placement.to_csv())))
    assert len(rows) == mapping.num_pes_used
    assert {int(r["pe"]) for r in rows} == {s.pe for s in mapping.slices}
    path = mapping.save_placement(tmp_path / "placement.json")
    data = json.loads(path.read_text())
    assert data["slices"][0]["unit_start"] == 0 and data["chips"] == 1
    with pytest.raises(MappingError, match=r"\.csv or \.json"):
        mapping.save_placement(tmp_path / "placement.txt")


def test_report_dict_json_and_table(small_net):
    mapping = map_network(small_net, record_steps=5)
    report = mapping.report()
    data = json.loads(report.to_json())
    assert data["pes_used"] == mapping.num_pes_used
    assert len(data["pes"]) == mapping.num_pes_used
    row = data["pes"][0]
    assert row["total"] == sum(row[r] for r in DATA_REGIONS)
    assert len(DATA_REGIONS) == 7 and {"weights", "stack_heap"} <= set(DATA_REGIONS)
    assert sum(lr["nnz"] for lr in data["layers"]) == sum(r["nnz"] for r in data["pes"])
    text = report.table()
    assert "fullest PE" in text and "layer  units" in text
    assert len(report.table(max_pe_rows=0).splitlines()) < len(text.splitlines())


def test_map_network_accepts_a_path_and_dram_use(small_net, tmp_path):
    path = small_net.save(tmp_path / "net.npz")
    mapping = map_network(str(path))
    assert mapping.artifact.layer_sizes == [37, 23, 11]
    assert mapping.dram_bytes_per_step == 13 * 4
    lm = synthetic_network(layer_sizes=(8,), input_size=8, input_kind="embedding", vocab_size=50)
    assert map_network(lm).dram_table_bytes == 50 * 8 * 4
    assert map_network(lm, input_source="host").dram_table_bytes == 0


def test_a_mapping_is_data_and_running_it_is_the_simulators(small_net):
    from spinnaker2_backend.simulator import NetworkSimulator, run_mapping

    mapping = map_network(small_net)
    for name in ("run", "simulator", "layer_simulator"):
        assert not hasattr(mapping, name), name
    xs = np.random.default_rng(0).standard_normal((4, small_net.layers[0].input_size))
    direct = run_mapping(mapping, xs, record=False)
    stepped = NetworkSimulator(mapping).run(xs)
    assert direct.report().to_dict() == stepped.report().to_dict()


def test_machine_and_spec_options(small_net):
    fast = ChipSpec().with_clock_mhz(300)
    mapping = map_network(small_net, spec=fast)
    assert mapping.spec.pe_clock_hz == 300_000_000 and mapping.machine.spec == fast
    assert mapping.report().clock_mhz == 300
    small_memory = ChipSpec(data_memory_bytes=32 * 1024)
    assert (
        map_network(small_net, spec=small_memory).num_pes_used
        >= map_network(small_net).num_pes_used
    )
