"""The study report: one self-contained HTML file with the study's summary and figures."""

from __future__ import annotations

from hpo.report._build import best_trial
from hpo.report._build import build_report
from hpo.report._build import objective_name
from hpo.report._build import stored_spec

__all__ = ["best_trial", "build_report", "objective_name", "stored_spec"]
