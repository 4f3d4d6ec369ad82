"""The study report: one self-contained HTML file with the study's summary and figures."""

from __future__ import annotations

from hpo.report._build import build_report
from hpo.report._build import objective_name

__all__ = ["build_report", "objective_name"]
