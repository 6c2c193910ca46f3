"""Bottleneck layers: a narrow EGRU layer of ``k`` units inserted at a layer boundary.

Where an EGRU stack crosses chips, every event of the layer before the boundary crosses to
every chip of the layer after it. A *bottleneck* is a small EGRU layer of ``k < n`` units
inserted at that boundary: it reads the ``n`` events of the layer before it, keeps its own
recurrence, and sends only its ``k`` events on. It is an ordinary EGRU layer (the stack
already holds layers of any widths), so it is trained end to end by the project's training
code, exported in the artifact and run by every backend unchanged; what marks it is
:attr:`~snn_egru.models.lm.LanguageModelConfig.bottleneck_layers` (its index in the
expanded stack), which the export carries in ``metadata["model"]["config"]`` and the mapper
reads to make the boundary after it a chip boundary
(:func:`spinnaker2_backend.mapping.crossings.bottleneck_layers_of`).

Besides the full EGRU layer (kind ``egru``), :data:`BOTTLENECK_KINDS` has two constrained
kinds, EGRU layers with parameters held fixed (:mod:`snn_egru.bottleneck_layers`): ``ff``,
``y = max(0, tanh(W x + b))`` (event-based, no recurrence, no memory) and ``dense``,
``y = tanh(W x + b)`` (the graded projection of the events, every unit every step);
:attr:`~snn_egru.models.lm.LanguageModelConfig.bottleneck_kind` picks one.

::

    plain        (512, 512, 512)           boundaries 0, 1 (after layer 0, after layer 1)
    bottlenecks  {0: 64, 1: 64}
    expanded     (512, 64, 512, 64, 512)   bottleneck_layers (1, 3)

Torch-free (checked before anything is built).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from snn_egru.errors import UserError

__all__ = [
    "BOTTLENECK_KINDS",
    "BottleneckError",
    "BottleneckStack",
    "bottleneck_width",
    "check_bottleneck_kind",
    "insert_bottlenecks",
    "plain_sizes",
]

#: What a bottleneck layer computes (:attr:`~snn_egru.models.lm.LanguageModelConfig.
#: bottleneck_kind`). Every kind is an EGRU layer of ``k`` units, so every backend runs it
#: unchanged; ``ff`` and ``dense`` are EGRU layers with parameters held fixed
#: (:mod:`snn_egru.bottleneck_layers`): recurrent weights, r- and z-gate input weights and
#: recurrent biases 0, the z-gate bias so negative that ``z = 0`` exactly (no memory:
#: ``c~ = n = tanh(W_n x + b_n)``) and a frozen threshold ``theta``, so that ``y = n H(n -
#: theta)``:
#:
#: * ``"egru"``: a full EGRU layer (recurrent, gated, event-based), everything learned;
#: * ``"ff"``: feed-forward, event-based, ``theta = 0``: ``y = max(0, tanh(W_n x + b_n))``,
#:   a rectified graded projection; only its non-zero values are sent;
#: * ``"dense"``: the graded linear projection of the events, tanh-squashed, ``theta < -1``:
#:   ``y = tanh(W_n x + b_n)``, every unit sends every step (``k`` packets per token).
BOTTLENECK_KINDS: tuple[str, ...] = ("egru", "ff", "dense")


class BottleneckError(UserError, ValueError):
    """A bottleneck that cannot be built (k <= 0, not narrower than its layer, no such
    boundary)."""


@dataclass(frozen=True)
class BottleneckStack:
    """A stack with its bottlenecks inserted.

    Attributes:
        hidden_sizes: units per layer of the expanded stack.
        bottleneck_layers: indices (in ``hidden_sizes``) of the bottleneck layers, sorted.
        plain_sizes: the stack without them.
    """

    hidden_sizes: tuple[int, ...]
    bottleneck_layers: tuple[int, ...]
    plain_sizes: tuple[int, ...]

    @property
    def chip_boundaries(self) -> tuple[int, ...]:
        """Layers after which a chip boundary goes: each bottleneck layer (its output is
        what crosses; it sits on the chips of the layer before it)."""
        return self.bottleneck_layers


def bottleneck_width(width: int, ratio: float) -> int:
    """``k = round(n / ratio)`` for a ratio ``n/k > 1``; ``BottleneckError`` otherwise."""
    if not ratio > 1:
        raise BottleneckError(
            f"a bottleneck ratio n/k must be > 1 (k narrower than its layer), got {ratio:g}"
        )
    k = int(round(width / ratio))
    if k < 1:
        raise BottleneckError(
            f"ratio {ratio:g} leaves k = 0 units of a {width}-unit layer: use a ratio <= {width}"
        )
    return k


def insert_bottlenecks(
    hidden_sizes: Sequence[int], bottlenecks: Mapping[int, int]
) -> BottleneckStack:
    """Insert a layer of ``k`` units after plain layer ``i`` for each ``{i: k}``.

    Boundary ``i`` lies between plain layers ``i`` and ``i + 1`` (``0 <= i < L - 1``: the
    last layer feeds the decoder / readout, not another chip's layer).

    Raises:
        BottleneckError: ``k <= 0``; ``k >= n`` (a bottleneck not narrower than the layer
            before it); no such boundary.
    """
    sizes = tuple(int(h) for h in hidden_sizes)
    if not sizes:
        raise BottleneckError("the stack has no layers")
    for boundary, k in bottlenecks.items():
        boundary, k = int(boundary), int(k)
        if not 0 <= boundary < len(sizes) - 1:
            raise BottleneckError(
                f"no layer boundary {boundary} in a {len(sizes)}-layer stack: boundaries are "
                f"0..{len(sizes) - 2} (boundary i lies between layers i and i+1)"
                if len(sizes) > 1
                else f"a 1-layer stack has no layer boundary to put a bottleneck at (got "
                f"{boundary}); use 2 or more layers"
            )
        if k < 1:
            raise BottleneckError(f"bottleneck at boundary {boundary}: k must be >= 1, got {k}")
        if k >= sizes[boundary]:
            raise BottleneckError(
                f"bottleneck at boundary {boundary} has k={k} units, not narrower than its "
                f"layer ({sizes[boundary]} units): use k < {sizes[boundary]}"
            )
    out: list[int] = []
    marks: list[int] = []
    for i, h in enumerate(sizes):
        out.append(h)
        if i in {int(b) for b in bottlenecks}:
            k = int({int(b): v for b, v in bottlenecks.items()}[i])
            marks.append(len(out))
            out.append(k)
    return BottleneckStack(tuple(out), tuple(marks), sizes)


def check_bottleneck_kind(kind: str, bottleneck_layers: Sequence[int] = (1,)) -> None:
    """``kind`` is one of :data:`BOTTLENECK_KINDS`, and a kind other than ``"egru"`` comes
    with at least one bottleneck layer; ``BottleneckError`` otherwise."""
    if kind not in BOTTLENECK_KINDS:
        raise BottleneckError(
            f"unknown bottleneck kind {kind!r}; valid names: {', '.join(BOTTLENECK_KINDS)}"
        )
    if kind != "egru" and not tuple(bottleneck_layers):
        raise BottleneckError(
            f"bottleneck kind {kind!r} given without a bottleneck: add bottleneck layers "
            "(--bottlenecks N/K) or leave the kind at 'egru'"
        )


def plain_sizes(hidden_sizes: Sequence[int], bottleneck_layers: Sequence[int]) -> tuple[int, ...]:
    """The stack without its bottleneck layers."""
    drop = set(int(i) for i in bottleneck_layers)
    return tuple(int(h) for i, h in enumerate(hidden_sizes) if i not in drop)


def check_bottleneck_layers(hidden_sizes: Sequence[int], bottleneck_layers: Sequence[int]) -> None:
    """Marked layers are inner layers narrower than the layer before them and not
    adjacent to another bottleneck; ``BottleneckError`` otherwise."""
    sizes = tuple(int(h) for h in hidden_sizes)
    marks = [int(i) for i in bottleneck_layers]
    if len(set(marks)) != len(marks):
        raise BottleneckError(f"bottleneck_layers {marks} lists a layer twice")
    for i in marks:
        if not 1 <= i < len(sizes) - 1:
            raise BottleneckError(
                f"bottleneck layer {i} must be an inner layer of the {len(sizes)}-layer stack "
                f"(1..{len(sizes) - 2}): a bottleneck sits between two layers"
            )
        if i - 1 in marks:
            raise BottleneckError(f"bottleneck layers {i - 1} and {i} are adjacent")
        if sizes[i] >= sizes[i - 1]:
            raise BottleneckError(
                f"bottleneck layer {i} has {sizes[i]} units, not narrower than the layer before "
                f"it ({sizes[i - 1]} units)"
            )
