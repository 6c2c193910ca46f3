"""Why the model's LM profile ranks the input product first, and what would change it.

The paper's profile of the published LM has the recurrent product first and sending events
comparably cheap; at a trained LM's activity (about 20 %) the model has the input product
first (docs/fidelity.md, "What still disagrees"). :func:`profile_evidence` takes the recorded
calibration run apart and re-costs it under named alternatives of the unpublished program,
each refit to the 170.25 ms anchor (the walk per stored weight), so that every alternative
is compared at the published total:

* ``shipped``: the model as shipped.
* ``layer-0 input ahead``: layer 0's input projection ``W_ih e(token)`` computed ahead per
  token (the paper says the embeddings were computed ahead): its PEs DMA their ``3 x units``
  gate inputs from DRAM instead of walking ``W_ih`` against the dense embedding.
* ``cheap receive``: a received packet costs ``CHEAP_RECEIVE_CYCLES`` (the receive FIFO
  polled in a loop, no interrupt per packet) instead of ``packet_receive_cycles``.
* both together.

It also counts, per layer, the stored weights of the slowest PE's two matrices and the
fraction of them that is multiplied (the bitmap's hits): the walk costs every stored weight
whatever the activity, the MAC only the hits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from spinnaker2_backend.calibration import (
    TARGET_SEQUENCE_SECONDS,
    fit_csr_nonzero_cycles,
    sequence_profile,
)
from spinnaker2_backend.constants import CycleCosts
from spinnaker2_backend.results import SEQUENCE_TOKENS
from spinnaker2_backend.timing import OP_INDEX

__all__ = ["CHEAP_RECEIVE_CYCLES", "ProfileAlternative", "layer_weight_counts", "profile_evidence"]

#: A received packet read by polling the receive FIFO: load key and payload, subtract the
#: key offset, store the value, loop; no interrupt entry and exit. [C] from M4-TRM [B].
CHEAP_RECEIVE_CYCLES = 12.0


@dataclass(frozen=True)
class ProfileAlternative:
    """The LM profile (ms per sequence, summed over layers) under one alternative.

    Attributes:
        name: the alternative. walk_cycles: the walk per stored weight refit to 170.25 ms
            (None: out of reach). groups: profile group -> ms. paper_ranking: the recurrent
            product first and the input product second.
    """

    name: str
    walk_cycles: float | None
    groups: dict[str, float]

    @property
    def paper_ranking(self) -> bool:
        if not self.groups:
            return False
        ranked = sorted(self.groups, key=self.groups.get, reverse=True)
        return ranked[0] == "recurrent product" and ranked[1] == "input product"


def _input_ahead(run):
    """``run`` with layer 0's input product replaced by a DMA of its gate inputs."""
    ops = [np.array(o, dtype=np.float64, copy=True) for o in run.step_ops]
    first = ops[0]
    hits = first[:, OP_INDEX["input_hits"], :].copy()
    walked = first[:, OP_INDEX["input_weights"], :].copy()
    for name in ("input_weights", "input_hits", "input_rows", "input_events"):
        first[:, OP_INDEX[name], :] = 0.0
    first[:, OP_INDEX["macs"], :] -= np.where(hits > 0, hits, walked)
    word = 4.0
    first[:, OP_INDEX["dram_bytes"], :] = 3.0 * first[:, OP_INDEX["units"], :] * word
    return dataclasses.replace(run, step_ops=ops)


def _alternative(name, run, costs, spec) -> ProfileAlternative:
    scale = run.steps / SEQUENCE_TOKENS
    try:
        walk = fit_csr_nonzero_cycles(
            run, target_seconds=TARGET_SEQUENCE_SECONDS * scale, base_costs=costs, spec=spec
        )
    except ValueError:
        return ProfileAlternative(name, None, {})
    fitted = dataclasses.replace(costs, csr_nonzero_cycles=walk)
    profile = sequence_profile(run, fitted, spec=spec)
    grouped = profile.grouped(profile.critical_phase_seconds())
    groups = {k: v * 1e3 / scale for k, v in grouped.items() if k != "readout"}
    return ProfileAlternative(name, walk, groups)


def profile_evidence(lm_run, *, costs: CycleCosts | None = None, spec=None):
    """The LM profile under each alternative of the module docstring, refit to 170.25 ms."""
    costs = costs if costs is not None else CycleCosts()
    cheap = dataclasses.replace(costs, packet_receive_cycles=CHEAP_RECEIVE_CYCLES)
    ahead = _input_ahead(lm_run)
    return [
        _alternative("shipped", lm_run, costs, spec),
        _alternative("layer-0 input ahead", ahead, costs, spec),
        _alternative("cheap receive", lm_run, cheap, spec),
        _alternative("layer-0 input ahead + cheap receive", ahead, cheap, spec),
    ]


def layer_weight_counts(mapping, lm_run) -> list[dict[str, float]]:
    """Per layer, on the PE with the most stored weights: stored ``W_ih`` and ``W_hh``
    entries and the mean fraction of each multiplied per step (bitmap hits / stored)."""
    out = []
    for i, layer in enumerate(mapping.layers):
        nnz = [
            (mapping.pe_weights(i, s).weight_ih.nnz, mapping.pe_weights(i, s).weight_hh.nnz)
            for s in layer.slices
        ]
        j = int(np.argmax([a + b for a, b in nnz]))
        ops = np.asarray(lm_run.step_ops[i])[:, :, j]
        ih, hh = nnz[j]
        hit_ih = ops[:, OP_INDEX["input_hits"]].mean() / ih if ih else 0.0
        hit_hh = ops[:, OP_INDEX["recurrent_hits"]].mean() / hh if hh else 0.0
        out.append(
            {
                "layer": i,
                "stored_ih": float(ih),
                "stored_hh": float(hh),
                "multiplied_ih": float(hit_ih),
                "multiplied_hh": float(hit_hh),
            }
        )
    return out
