"""The published figures a simulated run is compared with, each with its source and tag.

:class:`GpuFigure` (a row of the comparison: a GPU or a chip, measured or supplied) and the
rows of S2-EGRU [A] (``docs/spinnaker2.md``): the LM and DVS deployments on SpiNNaker2 and on
an A100, Table I's memory per PE, and :data:`MEASURED_ANCHORS`, every measured number the
model relies on. Re-exported by :mod:`spinnaker2_backend.results`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DVS_FRAMES_PER_SAMPLE",
    "MEASURED_ANCHORS",
    "PUBLISHED_A100",
    "PUBLISHED_DVS_A100",
    "PUBLISHED_DVS_SPINNAKER2",
    "PUBLISHED_SPINNAKER2",
    "PUBLISHED_TABLE_I_BYTES",
    "SEQUENCE_TOKENS",
    "GpuFigure",
]

#: Tokens per sequence in the published time and energy figures (the time unit is taken to
#: be one 70-token test sequence, S2-EGRU [C]).
SEQUENCE_TOKENS = 70


@dataclass(frozen=True, kw_only=True)
class GpuFigure:
    """A reference figure to compare a run with (per sequence of ``sequence_tokens``).

    Attributes:
        name: label of the row.
        power_w: average power. seconds_per_sequence: time per unit. energy_j_per_sequence:
            energy per unit.
        sequence_tokens: tokens per sequence (70).
        measured: True for published measurements; False for anything estimated.
        source: where the figure comes from.
        unit: what the time and energy are per: ``"sequence"`` (an LM's 70-token
            sequence, Table II) or ``"sample"`` (a DVS sample, Table III).
    """

    name: str
    power_w: float
    seconds_per_sequence: float
    energy_j_per_sequence: float
    sequence_tokens: int = SEQUENCE_TOKENS
    measured: bool = False
    source: str = "user supplied"
    unit: str = "sequence"

    def __post_init__(self) -> None:
        if self.unit not in ("sequence", "sample"):
            raise ValueError(f"GpuFigure.unit must be 'sequence' or 'sample', got {self.unit!r}")


_LM_SOURCE = "docs/spinnaker2.md, EGRU deployment, measured [A]"
_DVS_SOURCE = "docs/spinnaker2.md, DVS deployment (Table III, batch 1), measured [A]"


def _published(
    name: str, power_w: float, seconds: float, energy_j: float, source=_LM_SOURCE, unit="sequence"
) -> GpuFigure:
    """A published, measured row of S2-EGRU [A] (per sequence unless ``unit="sample"``)."""
    return GpuFigure(
        name=name,
        power_w=power_w,
        seconds_per_sequence=seconds,
        energy_j_per_sequence=energy_j,
        measured=True,
        source=source,
        unit=unit,
    )


#: The published A100 row (batch 1, one 70-token WikiText-2 test sequence), S2-EGRU [A].
PUBLISHED_A100 = _published("NVIDIA A100 (published)", 60.0, 19.9e-3, 1.19)

#: The published SpiNNaker2 row of the same measurement, S2-EGRU [A].
PUBLISHED_SPINNAKER2 = _published("SpiNNaker2 (published)", 0.39, 170.25e-3, 0.0653)

#: The published A100 row of the DVS gesture deployment (Table III, batch 1, per sample),
#: S2-EGRU [A].
PUBLISHED_DVS_A100 = _published(
    "NVIDIA A100 (published, DVS)", 61.0, 1.09e-3, 0.067, source=_DVS_SOURCE, unit="sample"
)

#: The published SpiNNaker2 row of the DVS gesture deployment (128 PEs, Table III, batch 1,
#: per sample), S2-EGRU [A].
PUBLISHED_DVS_SPINNAKER2 = _published(
    "SpiNNaker2 (published, DVS)", 0.39, 60.19e-3, 0.023, source=_DVS_SOURCE, unit="sample"
)

#: Frames per DVS sample the model assumes: the paper does not state it (25 ms frames); this
#: is the slice length of the project's DVS preprocessing (``snn_egru.data.dvs``, 68 frames
#: = 1.7 s) [C]. Never fitted to the published DVS time.
DVS_FRAMES_PER_SAMPLE = 68

#: Table I of S2-EGRU [A], per PE of the LM deployment, in bytes (1 KB = 1024 bytes, the
#: reading under which the CSR weights of a 27-unit layer-1 PE, 88.1 KiB, match 88.3 KB).
PUBLISHED_TABLE_I_BYTES: dict[str, float] = {
    "instruction": 17.9 * 1024,
    "debug": 5.0 * 1024,
    "weights": 88.3 * 1024,
    "variables": 2.6 * 1024,
}

#: Every measured number the model relies on, with its tag. Everything else is an estimate.
MEASURED_ANCHORS: dict[str, str] = {
    "SpiNNaker2 power 0.39 W": "measured [A] (whole chip, EGRU LM, 150 PEs)",
    "SpiNNaker2 time 170.25 ms per sequence": "measured [A] (70 tokens taken as one sequence: [C])",
    "SpiNNaker2 energy 0.0653 J per sequence": "measured [A]",
    "A100 power 60 W": "measured [A]",
    "A100 time 19.9 ms per sequence": "measured [A]",
    "A100 energy 1.19 J per sequence": "measured [A]",
    "SpiNNaker2 DVS 60.19 ms, 0.023 J per sample, 0.39 W": "measured [A] (held out, never fitted)",
    "Table I memory per PE 17.9 / 5 / 88.3 / 2.6 KB": "published [A]",
}
