"""The torch-free parts of snn_egru must not import torch (the chip side relies on it)."""

from __future__ import annotations

from tests.fresh_python import run_python


def test_reference_artifact_and_package_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import snn_egru.reference, snn_egru.artifact, snn_egru\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(len(loaded))\n"
        "assert not loaded, loaded[:5]\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_lazy_torch_names_resolve() -> None:
    import snn_egru
    from snn_egru import functional, neuron, sequence

    assert snn_egru.EGRU is neuron.EGRU
    assert snn_egru.EGRUSequence is sequence.EGRUSequence
    assert snn_egru.egru_step_torch is functional.egru_step_torch
    assert snn_egru.EGRUSpike is functional.EGRUSpike
    assert snn_egru.triangle is functional.triangle
