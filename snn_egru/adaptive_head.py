"""The adaptive-softmax readout of a deployment artifact, in numpy (torch-free core).

An adaptive softmax (Grave et al. 2017, ``torch.nn.AdaptiveLogSoftmaxWithLoss``) splits the
words, ranked by training-set frequency, into a head (the ``cutoffs[0]`` most frequent words)
and tail clusters ``[cutoffs[i], cutoffs[i+1])`` (the last ends at ``V``). With ``n`` clusters
and last-layer events ``y`` (``H`` wide)::

    head   = log_softmax(y @ head_weight.T [+ head_bias])           (cutoffs[0] + n,)
    lp[r]  = head[r]                                         r < cutoffs[0]
    lp[r]  = head[cutoffs[0] + i] + log_softmax(((y @ P_i.T) @ O_i.T))[r - cutoffs[i]]
                                                            cutoffs[i] <= r < cutoffs[i+1]
    log_prob[w] = lp[word_rank[w]]                          (rank order -> word-id order)

with ``P_i`` (``h_i, H``) the cluster's projection and ``O_i`` (``cutoffs[i+1] - cutoffs[i],
h_i``) its output weights: torch's ``head.weight`` / ``head.bias`` and ``tail[i][0].weight`` /
``tail[i][1].weight``. The result is the exact log-probability of every word (each row sums
to 1 in probability), so ``log_softmax`` of it is itself: anything that turns logits into a
perplexity (:func:`snn_egru.pipeline.perplexity_from_logits`) reads it unchanged.

This readout is not one linear layer, so it runs on the host (``readout="host"``), never on
the chip's PEs. File keys (inside the artifact's ``.npz``; ``readout_kind == "adaptive"``)::

    adaptive.cutoffs             int64   (n + 1,)   torch's cutoffs, without V
    adaptive.head_weight         float32 (cutoffs[0] + n, H)
    adaptive.head_bias           float32 (cutoffs[0] + n,)   only when the head has a bias
    adaptive.tail{i}.projection  float32 (h_i, H)
    adaptive.tail{i}.output      float32 (cutoffs[i+1] - cutoffs[i], h_i)
    adaptive.word_rank           int64   (V,)       a permutation of 0..V-1

Layer: core of snn_egru (torch-free; what spinnaker2_backend and lava_procs may import).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snn_egru.errors import ArtifactError

__all__ = ["AdaptiveHead", "adaptive_keys", "log_softmax"]

_PREFIX = "adaptive."


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``z - logsumexp(z)`` over the last axis, in ``z``'s dtype (max-shifted, stable)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass
class AdaptiveHead:
    """An adaptive-softmax readout (module docstring), float32 numpy arrays.

    Attributes:
        cutoffs: torch's cutoffs without ``V``: increasing word ranks in ``[1, V - 1]``.
        head_weight: ``(cutoffs[0] + n, H)``.
        head_bias: ``(cutoffs[0] + n,)`` or ``None`` (torch's default ``head_bias=False``).
        tail_projections: per cluster ``(h_i, H)`` (``h_i`` may be 0: a uniform cluster).
        tail_outputs: per cluster ``(cutoffs[i+1] - cutoffs[i], h_i)``.
        word_rank: ``(V,)`` the frequency rank of every word id (a permutation).
    """

    cutoffs: tuple[int, ...]
    head_weight: np.ndarray
    head_bias: np.ndarray | None
    tail_projections: list[np.ndarray]
    tail_outputs: list[np.ndarray]
    word_rank: np.ndarray

    @property
    def num_words(self) -> int:
        return int(np.shape(self.word_rank)[0])

    @property
    def in_features(self) -> int:
        return int(np.shape(self.head_weight)[1])

    def bounds(self) -> list[tuple[int, int]]:
        """``[(low, high)]`` rank range of each tail cluster."""
        edges = [*self.cutoffs, self.num_words]
        return list(zip(edges[:-1], edges[1:]))

    def validate(self) -> None:
        """Raise :class:`ArtifactError` naming the first inconsistency."""
        rank = np.asarray(self.word_rank)
        if rank.ndim != 1 or not np.issubdtype(rank.dtype, np.integer) or rank.size < 2:
            raise ArtifactError("adaptive.word_rank must be a 1-D integer array (V >= 2)")
        if not np.array_equal(np.sort(rank), np.arange(rank.size)):
            raise ArtifactError(
                f"adaptive.word_rank must be a permutation of 0..{rank.size - 1} (the "
                "frequency rank of every word id)"
            )
        cut = list(self.cutoffs)
        if not cut or cut != sorted(set(cut)) or cut[0] < 1 or cut[-1] > rank.size - 1:
            raise ArtifactError(
                f"adaptive.cutoffs must be increasing word ranks in [1, {rank.size - 1}], got {cut}"
            )
        n = len(cut)
        head = np.asarray(self.head_weight)
        if head.ndim != 2 or head.shape[0] != cut[0] + n:
            raise ArtifactError(
                f"adaptive.head_weight must be ({cut[0] + n}, H) (shortlist {cut[0]} + {n} "
                f"clusters), got {head.shape}"
            )
        if self.head_bias is not None and np.shape(self.head_bias) != (head.shape[0],):
            raise ArtifactError(
                f"adaptive.head_bias must be ({head.shape[0]},), got {np.shape(self.head_bias)}"
            )
        if len(self.tail_projections) != n or len(self.tail_outputs) != n:
            raise ArtifactError(
                f"{n} cutoffs need {n} tail clusters, got {len(self.tail_projections)} "
                f"projections and {len(self.tail_outputs)} output matrices"
            )
        for i, ((low, high), proj, out) in enumerate(
            zip(self.bounds(), self.tail_projections, self.tail_outputs)
        ):
            proj, out = np.asarray(proj), np.asarray(out)
            if proj.ndim != 2 or proj.shape[1] != head.shape[1]:
                raise ArtifactError(
                    f"adaptive.tail{i}.projection must be (h, {head.shape[1]}), got {proj.shape}"
                )
            if out.shape != (high - low, proj.shape[0]):
                raise ArtifactError(
                    f"adaptive.tail{i}.output must be ({high - low}, {proj.shape[0]}) (cluster "
                    f"ranks {low}..{high - 1}), got {out.shape}"
                )
        for name, value in self._arrays():
            if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
                raise ArtifactError(f"{name} must hold finite floating-point values")

    def _arrays(self) -> list[tuple[str, np.ndarray]]:
        out = [("adaptive.head_weight", np.asarray(self.head_weight))]
        if self.head_bias is not None:
            out.append(("adaptive.head_bias", np.asarray(self.head_bias)))
        for i, (proj, o) in enumerate(zip(self.tail_projections, self.tail_outputs)):
            out += [(f"adaptive.tail{i}.projection", np.asarray(proj))]
            out += [(f"adaptive.tail{i}.output", np.asarray(o))]
        return out

    def astype(self, dtype: np.dtype | type) -> AdaptiveHead:
        """The same head with its weights in ``dtype`` (the backends' compute dtype)."""

        def cast(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a, dtype=dtype)

        return AdaptiveHead(
            cutoffs=tuple(self.cutoffs),
            head_weight=cast(self.head_weight),
            head_bias=cast(self.head_bias),
            tail_projections=[cast(p) for p in self.tail_projections],
            tail_outputs=[cast(o) for o in self.tail_outputs],
            word_rank=np.asarray(self.word_rank, dtype=np.int64),
        )

    def log_prob(self, events: np.ndarray) -> np.ndarray:
        """``(..., H) -> (..., V)`` log-probabilities by word id (module docstring), computed
        in the dtype of ``events`` and the weights (``np.result_type``)."""
        events = np.asarray(events)
        if events.shape[-1] != self.in_features:
            raise ValueError(
                f"the adaptive readout takes {self.in_features} values per step, got "
                f"{events.shape[-1]}"
            )
        x = events.reshape(-1, self.in_features)
        head = x @ self.head_weight.T
        if self.head_bias is not None:
            head = head + self.head_bias
        head = log_softmax(head)
        short = self.cutoffs[0]
        by_rank = np.empty((x.shape[0], self.num_words), dtype=head.dtype)
        by_rank[:, :short] = head[:, :short]
        for i, ((low, high), proj, out) in enumerate(
            zip(self.bounds(), self.tail_projections, self.tail_outputs)
        ):
            cluster = log_softmax((x @ proj.T) @ out.T)
            by_rank[:, low:high] = cluster + head[:, short + i, None]
        return by_rank[:, self.word_rank].reshape(*events.shape[:-1], self.num_words)

    # ------------------------------------------------------------------------- file
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The artifact file's ``adaptive.*`` entries (module docstring)."""
        arrays = {
            "adaptive.cutoffs": np.asarray(self.cutoffs, dtype=np.int64),
            "adaptive.word_rank": np.asarray(self.word_rank, dtype=np.int64),
        }
        for name, value in self._arrays():
            arrays[name] = value.astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> AdaptiveHead:
        """Read the ``adaptive.*`` entries; a missing one raises ``KeyError`` (its name),
        a malformed head :class:`ArtifactError`."""
        cutoffs = np.asarray(data["adaptive.cutoffs"])
        if cutoffs.ndim != 1 or not np.issubdtype(cutoffs.dtype, np.integer):
            raise ArtifactError("adaptive.cutoffs must be a 1-D integer array")
        clusters = range(cutoffs.size)
        head = cls(
            cutoffs=tuple(int(c) for c in cutoffs),
            head_weight=data["adaptive.head_weight"],
            head_bias=data.get("adaptive.head_bias"),
            tail_projections=[data[f"adaptive.tail{i}.projection"] for i in clusters],
            tail_outputs=[data[f"adaptive.tail{i}.output"] for i in clusters],
            word_rank=data["adaptive.word_rank"],
        )
        extra = set(adaptive_keys(data)) - set(head.to_arrays())
        if extra:
            raise ArtifactError(
                f"unexpected entries {sorted(extra)} for {cutoffs.size} tail clusters"
            )
        head.validate()
        return head


def adaptive_keys(data: dict[str, np.ndarray]) -> list[str]:
    """The ``adaptive.*`` keys among a file's entries."""
    return [key for key in data if key.startswith(_PREFIX)]
