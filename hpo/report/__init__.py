"""The study report: one self-contained HTML file with the figures of a study."""

from __future__ import annotations

from hpo.report._build import build_report
from hpo.report._metric import Metric
from hpo.report._metric import objective_metric

__all__ = ["Metric", "build_report", "objective_metric"]
