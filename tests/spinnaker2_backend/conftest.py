"""Helpers shared by the spinnaker2_backend tests."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend import ChipSpec, map_network, synthetic_network
from spinnaker2_backend.simulator import run_mapping


@pytest.fixture(scope="module")
def paper_lm() -> DeploymentArtifact:
    """The paper's LM (1350/1350/750 units, 95 % of the weights pruned), seed 0."""
    return synthetic_network("paper-lm", sparsity=0.95, seed=0)


def runs_at_150_and_300_mhz(artifact: DeploymentArtifact, xs: np.ndarray, *, max_units_per_pe: int):
    """``(slow, fast)``: ``xs`` run on ``artifact`` mapped at the default 150 MHz clock and at
    300 MHz (the same mapping otherwise)."""
    slow = run_mapping(map_network(artifact, max_units_per_pe=max_units_per_pe), xs)
    spec = ChipSpec().with_clock_mhz(300)
    fast = run_mapping(map_network(artifact, max_units_per_pe=max_units_per_pe, spec=spec), xs)
    return slow, fast
