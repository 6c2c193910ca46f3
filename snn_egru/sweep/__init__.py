"""The trade-off study as a tool: ``snn-egru sweep`` (see :mod:`snn_egru.sweep.cli`).

:mod:`~snn_egru.sweep.grid` (points and keys, torch-free), :mod:`~snn_egru.sweep.measure`
(MACs as NeuroBench counts them, sparsity, simulated chip cost),
:mod:`~snn_egru.sweep.runner` (train and measure each point, cached per point),
:mod:`~snn_egru.sweep.report` (merge, fronts, headline figures, markdown),
:mod:`~snn_egru.sweep.figures` (the trade-off figures).
"""

from snn_egru.sweep.grid import Grid, SweepPoint

__all__ = ["Grid", "SweepPoint"]
