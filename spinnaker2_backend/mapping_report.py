"""Old import path of the mapping report; it lives in :mod:`spinnaker2_backend.mapping.report`.

Kept so that ``from spinnaker2_backend.mapping_report import MappingReport`` keeps working.
Nothing inside the package imports this module.
"""

from __future__ import annotations

from spinnaker2_backend.mapping import (
    LayerReportRow,
    MappingReport,
    PEReportRow,
    build_mapping_report,
)

__all__ = ["LayerReportRow", "MappingReport", "PEReportRow", "build_mapping_report"]
