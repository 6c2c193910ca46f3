"""``run --json``, the report table and ``--save-steps`` stay byte-identical: against the
digests ``main`` produced before the fused layer step (``golden_runs.json``, where the numpy
version and BLAS kernel are the same), and the compiled step against the general path."""

import json

import pytest

from spinnaker2_backend.layer_simulator import LayerSimulator

from .golden_runs import CONFIGS, GOLDEN, digests, environment


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_run_outputs_equal_main_byte_for_byte(name):
    if not GOLDEN.exists():
        pytest.skip(f"no {GOLDEN.name}: write it on main with golden_runs.py --write")
    golden = json.loads(GOLDEN.read_text())
    if golden["environment"] != environment():
        pytest.skip(f"digests made with {golden['environment']}, here {environment()}")
    assert digests(CONFIGS[name]) == golden["runs"][name]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["lm-csr-bitmap16", "lm-event-4chips-pipelined-tick", "dvs-event-list-tick"]
)
def test_compiled_step_equals_the_general_path(name, monkeypatch):
    fast = digests(CONFIGS[name])
    monkeypatch.setattr(LayerSimulator, "compiled", False)
    assert digests(CONFIGS[name]) == fast
