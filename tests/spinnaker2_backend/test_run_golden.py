"""``run --json``, the report table and ``--save-steps`` stay byte-identical: against the
digests ``main`` produced before the fused layer step (``golden_runs.json``, where the numpy
version and BLAS kernel are the same), and the compiled step against the general path."""

import json
from pathlib import Path

import pytest

from spinnaker2_backend.layer_simulator import LayerSimulator
from tests.fresh_python import run_python

from .golden_runs import CONFIGS, GOLDEN, digests, environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden() -> dict:
    if not GOLDEN.exists():
        pytest.skip(f"no {GOLDEN.name}: write it on main with golden_runs.py --write")
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def with_golden_kernel(golden) -> dict:
    """Every configuration's digests from a child process with OpenBLAS held at the golden
    kernel (``OPENBLAS_CORETYPE``): for a machine where OpenBLAS picks another one (measured:
    an AVX-512 EPYC picks ``Haswell``, the digests were made with ``Zen``; forced to ``Zen``
    it gives every golden digest)."""
    kernel = golden["environment"]["blas"].partition(":")[2]
    code = "import sys\nsys.argv[1:] = ['--with-environment']\n"
    code += "from tests.spinnaker2_backend.golden_runs import main\nmain()"
    env = {"OPENBLAS_CORETYPE": kernel, "PYTHONPATH": str(REPO)}
    done = run_python(code, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_run_outputs_equal_main_byte_for_byte(name, golden, request):
    if golden["environment"] == environment():
        assert digests(CONFIGS[name]) == golden["runs"][name]
        return
    child = request.getfixturevalue("with_golden_kernel")
    if child["environment"] != golden["environment"]:
        pytest.skip(
            f"digests made with {golden['environment']}, here {environment()}, and "
            f"{child['environment']} with OPENBLAS_CORETYPE set"
        )
    assert child["runs"][name] == golden["runs"][name]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["lm-csr-bitmap16", "lm-event-4chips-pipelined-tick", "dvs-event-list-tick"]
)
def test_compiled_step_equals_the_general_path(name, monkeypatch):
    fast = digests(CONFIGS[name])
    monkeypatch.setattr(LayerSimulator, "compiled", False)
    assert digests(CONFIGS[name]) == fast
