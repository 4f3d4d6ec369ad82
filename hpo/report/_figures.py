"""The report's figures: each builder returns a plotly figure, or a note saying why not."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.study.records import TrialAttr

logger = logging.getLogger(__name__)

# One colour per trial state, shared by every figure of the report.
STATE_COLOURS: dict[TrialState, str] = {
    TrialState.COMPLETE: "#1f77b4",
    TrialState.PRUNED: "#ff7f0e",
    TrialState.FAIL: "#d62728",
    TrialState.RUNNING: "#2ca02c",
    TrialState.WAITING: "#7f7f7f",
}
_STATE_DASH: dict[TrialState, str] = {
    TrialState.COMPLETE: "solid",
    TrialState.PRUNED: "dash",
    TrialState.FAIL: "dot",
    TrialState.RUNNING: "solid",
    TrialState.WAITING: "solid",
}
UNKNOWN_WORKER = "unknown worker"


@dataclass(frozen=True)
class Section:
    """One titled part of the report: a figure, or a note when the figure cannot be drawn."""

    title: str
    figure: go.Figure | None = None
    note: str | None = None


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def _single_objective(study: optuna.Study) -> bool:
    return len(study.directions) == 1


def optimisation_history(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: str
) -> Section:
    """Objective value of every complete trial and the best value so far."""
    title = "Optimisation history"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    if not _complete(trials):
        return Section(title, note="No complete trial yet: nothing to plot.")
    fig = optuna.visualization.plot_optimization_history(study, target_name=metric)
    fig.update_layout(title=None)
    return Section(title, fig)


def learning_curves(trials: Sequence[FrozenTrial], metric: str) -> Section:
    """Intermediate (per-evaluation) values of every trial, coloured and dashed by state.

    Pruned trials end with an ``x`` marker at the step where they were stopped.
    """
    title = "Learning curves (intermediate values)"
    curves = [t for t in trials if t.intermediate_values]
    if not curves:
        return Section(title, note="No trial has reported an intermediate value yet.")
    fig = go.Figure()
    shown: set[TrialState] = set()
    for trial in curves:
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        state = trial.state
        label = f"trial {trial.number} ({state.name})"
        is_pruned = state == TrialState.PRUNED
        symbols = ["circle"] * (len(steps) - 1) + ["x" if is_pruned else "circle"]
        sizes = [5] * (len(steps) - 1) + [11 if is_pruned else 5]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers",
                name=state.name,
                legendgroup=state.name,
                showlegend=state not in shown,
                line={"color": STATE_COLOURS[state], "dash": _STATE_DASH[state]},
                marker={"symbol": symbols, "size": sizes},
                hovertemplate=f"{label}<br>step %{{x}}<br>{metric} %{{y:.4f}}<extra></extra>",
                meta=label,
            )
        )
        shown.add(state)
    fig.update_layout(
        xaxis_title="step (epoch)", yaxis_title=metric, legend_title_text="trial state"
    )
    return Section(title, fig)


def parallel_coordinates(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: str
) -> Section:
    """Optuna's parallel-coordinate plot of the complete trials' parameters."""
    title = "Parallel coordinates"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    if not any(t.params for t in _complete(trials)):
        return Section(title, note="No complete trial with parameters yet: nothing to plot.")
    fig = optuna.visualization.plot_parallel_coordinate(study, target_name=metric)
    fig.update_layout(title=None)
    return Section(title, fig)


def parameter_importances(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: str
) -> Section:
    """PED-ANOVA importances (Optuna's default evaluator); needs two complete trials."""
    title = "Parameter importances (PED-ANOVA)"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    complete = _complete(trials)
    if len(complete) < 2 or not any(t.params for t in complete):
        return Section(
            title,
            note=f"Needs at least 2 complete trials with parameters; the study has "
            f"{len(complete)}.",
        )
    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns (and returns equal importances) for very small studies.
            warnings.simplefilter("ignore", UserWarning)
            fig = optuna.visualization.plot_param_importances(study, target_name=metric)
    except (ValueError, RuntimeError) as exc:
        logger.warning("parameter importances not computed: %s", exc)
        return Section(title, note=f"Importances could not be computed: {exc}")
    fig.update_layout(title=None)
    return Section(title, fig)


def worker_of(trial: FrozenTrial) -> str:
    """The ``worker`` user attribute (``host:pid``) of a trial, or a placeholder."""
    worker = trial.user_attrs.get(TrialAttr.WORKER)
    return str(worker) if worker else UNKNOWN_WORKER


def worker_timeline(trials: Sequence[FrozenTrial], now: dt.datetime | None = None) -> Section:
    """One row per worker, one bar per trial from its start to its end, coloured by state.

    Running trials end at ``now``; trials that never started (WAITING) are left out.
    """
    title = "Trial timeline by worker"
    started = [t for t in trials if t.datetime_start is not None]
    if not started:
        return Section(title, note="No trial has started yet.")
    now = now or dt.datetime.now()
    fig = go.Figure()
    for state, colour in STATE_COLOURS.items():
        bars = [t for t in started if t.state == state]
        if not bars:
            continue
        starts = [t.datetime_start for t in bars]
        ends = [t.datetime_complete or now for t in bars]
        fig.add_trace(
            go.Bar(
                name=state.name,
                orientation="h",
                y=[worker_of(t) for t in bars],
                base=[s.isoformat() for s in starts],  # type: ignore[union-attr]
                x=[(e - s).total_seconds() * 1000 for s, e in zip(starts, ends, strict=True)],
                text=[f"trial {t.number} ({state.name})" for t in bars],
                textposition="none",
                hovertemplate="%{text}<br>%{base} + %{x} ms<extra></extra>",
                marker={"color": colour, "line": {"color": "white", "width": 1}},
            )
        )
    fig.update_layout(
        barmode="overlay",
        xaxis={"type": "date", "title": "time"},
        yaxis={"title": "worker", "type": "category"},
        legend_title_text="trial state",
        showlegend=True,
    )
    return Section(title, fig)


def cmc_curve(best: FrozenTrial | None, test_result: dict | None) -> Section:
    """Validation CMC of the best trial (user attr ``cmc``), plus the test CMC when stored."""
    title = "Best trial CMC"
    fig = go.Figure()
    if best is not None and _is_curve(best.user_attrs.get(TrialAttr.CMC)):
        cmc = [float(v) for v in best.user_attrs[TrialAttr.CMC]]
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(cmc) + 1)),
                y=cmc,
                mode="lines+markers",
                name=f"validation (trial {best.number})",
            )
        )
    if test_result and _is_curve(test_result.get("cmc")):
        cmc = [float(v) for v in test_result["cmc"]]
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(cmc) + 1)),
                y=cmc,
                mode="lines+markers",
                name=f"test (trial {test_result.get('trial')})",
                line={"dash": "dash"},
            )
        )
    if not fig.data:
        reason = "no best trial yet" if best is None else "the best trial stored no 'cmc'"
        return Section(title, note=f"No CMC curve to draw: {reason}.")
    fig.update_layout(
        xaxis_title="rank",
        yaxis={"title": "matching rate", "range": [0, 1.02]},
        legend_title_text="split",
    )
    return Section(title, fig)


def _is_curve(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
