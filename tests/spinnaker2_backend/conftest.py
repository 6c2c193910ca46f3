"""Helpers shared by the spinnaker2_backend tests."""

from __future__ import annotations

import numpy as np
import pytest

from snn_egru.artifact import DeploymentArtifact
from snn_egru.reference import EGRUParams
from spinnaker2_backend import ChipSpec, map_network, synthetic_network
from spinnaker2_backend.simulator import run_mapping
from spinnaker2_backend.timing import LayerTimingInfo


@pytest.fixture(scope="module")
def paper_lm() -> DeploymentArtifact:
    """The paper's LM (1350/1350/750 units, 95 % of the weights pruned), seed 0."""
    return synthetic_network("paper-lm", sparsity=0.95, seed=0)


@pytest.fixture(scope="module")
def small_net() -> DeploymentArtifact:
    """Three pruned layers of 37, 23 and 11 units on 13 features (70 % pruned), seed 3."""
    return synthetic_network(
        layer_sizes=(37, 23, 11), input_size=13, sparsity=0.7, seed=3, threshold_mean=0.1
    )


def small_net_inputs(steps: int) -> np.ndarray:
    """``steps`` standard-normal feature vectors for :func:`small_net` (seed 0, float32)."""
    return np.random.default_rng(0).standard_normal((steps, 13)).astype(np.float32)


def zero_bias_layer(weight_ih, weight_hh, threshold: float) -> EGRUParams:
    """A layer of the given weights (dense or sparse), zero biases and one ``threshold``."""
    hidden = weight_hh.shape[1]
    return EGRUParams(
        weight_ih=weight_ih,
        weight_hh=weight_hh,
        bias_ih=np.zeros(3 * hidden, np.float32),
        bias_hh=np.zeros(3 * hidden, np.float32),
        threshold=np.full(hidden, threshold, np.float32),
    )


def random_zero_bias_layer(
    rng: np.random.Generator, inputs: int, hidden: int, threshold: float
) -> EGRUParams:
    """:func:`zero_bias_layer` of standard-normal input weights and recurrent weights 0.3
    times standard normal (drawn in that order)."""
    return zero_bias_layer(
        rng.standard_normal((3 * hidden, inputs)).astype(np.float32),
        rng.standard_normal((3 * hidden, hidden)).astype(np.float32) * 0.3,
        threshold,
    )


def runs_at_150_and_300_mhz(artifact: DeploymentArtifact, xs: np.ndarray, *, max_units_per_pe: int):
    """``(slow, fast)``: ``xs`` run on ``artifact`` mapped at the default 150 MHz clock and at
    300 MHz (the same mapping otherwise)."""
    slow = run_mapping(map_network(artifact, max_units_per_pe=max_units_per_pe), xs)
    spec = ChipSpec().with_clock_mhz(300)
    fast = run_mapping(map_network(artifact, max_units_per_pe=max_units_per_pe, spec=spec), xs)
    return slow, fast


def timing_info(fmt: str = "csr", pes: int = 2, **fields) -> LayerTimingInfo:
    """Timing facts of layer 0 on ``pes`` PEs: no DRAM or readout readers, no hops, other
    ``fields`` as given."""
    args = dict(
        layer=0,
        weight_format=fmt,
        num_pes=pes,
        dram_readers=0,
        readout_readers=0,
        max_noc_hops=np.zeros(pes),
        max_chip_hops=np.zeros(pes),
    )
    args.update(fields)
    return LayerTimingInfo(**args)
