"""The Python API refuses what the command lines refuse (the same values, the same words)."""

from __future__ import annotations

import numpy as np
import pytest

from spinnaker2_backend import MappingError, map_network
from spinnaker2_backend.synthetic import synthetic_network


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    net = synthetic_network(layer_sizes=(8,), input_size=4, readout_kind="linear", num_classes=2)
    return net, net.save(tmp_path_factory.mktemp("api") / "net.npz")


def test_max_units_per_pe_must_be_a_number_not_a_flag(tiny) -> None:
    net, _ = tiny
    with pytest.raises(MappingError, match="max_units_per_pe must be an integer >= 1, got True"):
        map_network(net, max_units_per_pe=True)
    assert map_network(net, max_units_per_pe=4).num_pes_used == 2


def test_run_network_takes_a_path_and_checks_the_weight_format_everywhere(tiny) -> None:
    from lava_procs import run_network

    net, path = tiny
    inputs = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="weight_format must be one of"):
        run_network(path, inputs, backend="floating_pt", weight_format="coo")
    with pytest.raises(TypeError, match="DeploymentArtifact or a path"):
        run_network(42, inputs)
    result = run_network(path, inputs, backend="floating_pt")
    np.testing.assert_allclose(result.logits, net.run_reference(inputs).logits, atol=1e-5)


def test_flag_message_names_the_flags() -> None:
    from snn_egru.cliargs import flag_message

    text = (
        "more PEs (max_units_per_pe=12); record fewer steps (record_steps <= 3); use "
        "chips=2 (--chips 2); weight format 'event' (1,000 bytes); use input_source='host'"
    )
    assert flag_message(text) == (
        "more PEs (--max-units-per-pe 12); record fewer steps (--record-steps <= 3); use "
        "--chips 2; --weight-format event (1,000 bytes); use --input-source host"
    )
