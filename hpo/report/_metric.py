"""The objective as the report shows it: its name and its unit (re-ID metrics in %)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from hpo.study.records import METRIC_NAMES
from hpo.study.records import format_number
from hpo.study.records import format_pct
from hpo.study.records import read_spec_or_none


@dataclass(frozen=True)
class Metric:
    """How to show the objective value.

    Attributes:
        name: ``"val mAP"``, ``"val rank-1"``, ... or Optuna's metric name.
        scale: Factor from the stored value to the shown one (100 for fractions shown in %).
    """

    name: str
    scale: float = 1.0

    @property
    def label(self) -> str:
        """Axis label, with the unit: ``"val mAP (%)"``."""
        return f"{self.name} (%)" if self.scale == 100.0 else self.name

    def show(self, value: float | None) -> str:
        """A stored value as text: ``"45.1%"`` (or as a parameter without a unit): the
        precision rule of every reid-hpo output (:func:`~hpo.study.records.format_pct`)."""
        if value is None:
            return ""
        if self.scale == 100.0:
            return format_pct(value)
        return format_number(value)


def objective_metric(study: optuna.Study) -> Metric:
    """The reid-hpo objective of the study's spec (a fraction, shown in %), else Optuna's
    metric name, else "objective value"."""
    spec = read_spec_or_none(study.user_attrs, study.study_name)
    if spec is not None:
        return Metric(METRIC_NAMES[spec.objective.metric], scale=100.0)
    names = study.metric_names
    if names and names[0]:
        return Metric(str(names[0]))
    return Metric("objective value")
