"""Small networks the tests of several packages build."""

from __future__ import annotations

from collections.abc import Sequence

from snn_egru.artifact import DeploymentArtifact
from spinnaker2_backend.synthetic import synthetic_network


def synthetic_lm(
    layer_sizes: Sequence[int], input_size: int, *, vocab_size: int = 50, **options
) -> DeploymentArtifact:
    """A random pruned language model: token inputs through an embedding of ``vocab_size``
    rows and a tied decoder (``input_size`` must equal the last layer's size); other
    :func:`~spinnaker2_backend.synthetic.synthetic_network` ``options`` as given."""
    return synthetic_network(
        layer_sizes=layer_sizes,
        input_size=input_size,
        input_kind="embedding",
        vocab_size=vocab_size,
        readout_kind="tied_decoder",
        **options,
    )
