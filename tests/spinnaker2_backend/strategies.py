"""Hypothesis strategies shared by the spinnaker2_backend tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from spinnaker2_backend.synthetic import synthetic_network

#: any numpy seed
SEEDS = st.integers(0, 2**31)
#: the two float widths the simulator and its kernels run in
FLOAT_DTYPES = st.sampled_from([np.float32, np.float64])


def layer_sizes(most_units: int, most_layers: int = 3) -> st.SearchStrategy[list[int]]:
    """1 to ``most_layers`` layer sizes of 1 to ``most_units`` units each."""
    return st.lists(st.integers(1, most_units), min_size=1, max_size=most_layers)


@st.composite
def pruned_networks(
    draw,
    *,
    most_units: int,
    most_inputs: int,
    most_sparsity: float,
    most_seed: int,
    thresholds: tuple[float, float] | None = None,
):
    """``(network, seed)``: a :func:`synthetic_network` of 1-3 random layers on 1 to
    ``most_inputs`` features, pruned to a random sparsity, its threshold mean drawn from
    ``thresholds`` (the generator's default when None)."""
    sizes = draw(layer_sizes(most_units))
    inputs = draw(st.integers(1, most_inputs))
    sparsity = draw(st.floats(0.0, most_sparsity))
    extra = {} if thresholds is None else {"threshold_mean": draw(st.floats(*thresholds))}
    seed = draw(st.integers(0, most_seed))
    net = synthetic_network(
        layer_sizes=sizes, input_size=inputs, sparsity=sparsity, seed=seed, **extra
    )
    return net, seed
