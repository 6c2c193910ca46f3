"""A long Lava session's host memory grows only by what the user asked to keep.

Measured with ``tracemalloc`` (numpy reports its buffers to it) over a stream consumed chunk
by chunk: without per-PE detail the session keeps the chip report's per-step layer totals
and nothing else; the report of the whole run stays exact (the direct run's).
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from lava_procs.network.process import EGRUNetwork
from lava_procs.run import LavaNetworkSession
from lava_procs.run_configs import SpiNNaker2SimCfg
from spinnaker2_backend import map_network
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.timing import OPS, PHASES
from tests.lava_procs.conftest import token_artifact

pytestmark = [pytest.mark.lava, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("keep_chip_steps", [False, True])
def test_session_memory_per_step_is_what_is_kept(keep_chip_steps, no_leftover_processes):
    artifact = token_artifact(seed=41, layer_sizes=(12, 10, 8)).with_sparse_weights()
    chunk, chunks = 50, 8
    tokens = np.random.default_rng(42).integers(0, 13, size=chunk * chunks)
    network = EGRUNetwork(artifact=artifact, inputs=tokens, record_events=False, name="mem")
    run_cfg = SpiNNaker2SimCfg(max_units_per_pe=4)
    with LavaNetworkSession(
        network, run_cfg, keep_chip_steps=keep_chip_steps, timeout_s=120
    ) as session:
        runs = session.iter_run(chunk_steps=chunk)
        for _ in range(2):  # warm-up: imports, caches, the tables' first allocation
            next(runs)
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            steps_before = session.steps_done
            for outputs in runs:
                assert outputs.logits.shape == (chunk, 13)  # consumed, not kept
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        steps = session.steps_done - steps_before
        kept = session.chip_bytes_per_step
        report = session.chip_run()

    growth = (after - before) / steps
    # per layer and step: cycles, NoC tail, the slowest PE's phases, the operation totals
    layer_totals = 3 * 8 * (2 + len(PHASES) + len(OPS))
    if keep_chip_steps:
        assert kept > layer_totals  # per-PE detail kept on request
    else:
        assert kept == layer_totals
    # the tables grow by doubling (at most twice what is kept) plus a little slack
    assert growth <= 2 * kept + 256, (growth, kept)
    direct = run_mapping(map_network(artifact, max_units_per_pe=4), tokens, record=keep_chip_steps)
    assert report.counters.per_layer() == direct.counters.per_layer()
    assert report.seconds_per_token == direct.seconds_per_token
