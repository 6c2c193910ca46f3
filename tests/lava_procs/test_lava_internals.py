"""The private parts of Lava that ``lava_procs.lava_internals`` uses still exist.

Fails loudly after a Lava upgrade, naming what changed, before any run can hang on it.
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.run_conditions import RunSteps
from lava.proc.io.source import RingBuffer

from lava_procs import lava_internals
from lava_procs.egru_layer.process import EGRULayer
from lava_procs.run_configs import FloatingPtSimCfg
from tests.lava_procs.conftest import random_layer

pytestmark = [pytest.mark.lava, pytest.mark.timeout(120)]


def test_lava_is_the_version_the_internals_were_read_from():
    installed = lava_internals.installed_lava_version()
    assert installed == lava_internals.TESTED_LAVA_VERSION, (
        f"lava-nc {installed} is installed but lava_procs/lava_internals.py was written "
        f"against {lava_internals.TESTED_LAVA_VERSION}: re-read each private attribute it "
        "uses in the new Lava sources, then update TESTED_LAVA_VERSION"
    )


def test_every_private_attribute_exists_on_a_real_runtime(no_leftover_processes):
    assert callable(getattr(PyLoihiProcessModel, "_host", None)), (
        "PyLoihiProcessModel._host (the HOST phase) is gone: HostPhaseModel.on_run_end "
        "would never be called"
    )
    source = RingBuffer(data=np.ones((3, 20)))
    layer = EGRULayer.from_params(random_layer(np.random.default_rng(0), 3, 4))
    source.s_out.connect(layer.x_in)
    assert not lava_internals.has_runtime_attr(layer)
    layer.create_runtime(run_cfg=FloatingPtSimCfg())
    runtime = layer.runtime
    try:
        for name in lava_internals.RUNTIME_ATTRIBUTES:
            assert hasattr(runtime, name), f"Lava Runtime has no attribute {name!r} any more"
        infra = runtime._messaging_infrastructure
        for name in lava_internals.INFRASTRUCTURE_ATTRIBUTES:
            assert hasattr(infra, name), f"Lava message infrastructure has no {name!r}"
        assert infra.actors, "the message infrastructure lists no actor processes"
        for actor in infra.actors:
            for name in lava_internals.ACTOR_ATTRIBUTES:
                assert hasattr(actor, name), f"Lava actor process has no {name!r}"
        assert lava_internals.has_runtime_attr(layer)
        assert lava_internals.is_started(runtime) is False  # initialised, not started
        layer.run(RunSteps(num_steps=5, blocking=False))
        assert lava_internals.is_started(runtime) is True
        deadline = time.monotonic() + 60
        while not lava_internals.run_finished(runtime):
            assert time.monotonic() < deadline, "run_finished never became True"
            time.sleep(0.01)
        runtime.wait()
        assert lava_internals.model_errors(runtime) == []
        assert int(layer.steps_run.get()[0]) == 5
    finally:
        lava_internals.force_stop(runtime)
    assert not lava_internals.is_started(runtime)
    assert not multiprocessing.active_children()
    lava_internals.force_stop(runtime)  # a second time is harmless
