"""The report's figures: each builder returns a plotly figure, or a note saying why not."""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.report._metric import Metric
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
BEST_COLOUR = "#000000"
MIN_RELIABLE_IMPORTANCE_TRIALS = 10
"""Below this many complete trials the importances are not drawn (a sentence says why)."""


@dataclass(frozen=True)
class Section:
    """One titled part of the report: a figure, or a note when the figure cannot be drawn."""

    title: str
    figure: go.Figure | None = None
    note: str | None = None
    caption: str | None = None


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def _single_objective(study: optuna.Study) -> bool:
    return len(study.directions) == 1


def optimisation_history(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: Metric
) -> Section:
    """Objective value of every complete trial, the best value so far, and every pruned trial
    at the last value it reported."""
    title = "Optimisation history"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    if not _complete(trials):
        return Section(title, note="No complete trial yet: nothing to plot.")
    fig = optuna.visualization.plot_optimization_history(study, target_name=metric.label)
    for trace in fig.data:
        if trace.y is not None:
            trace.y = [None if v is None else metric.scale * v for v in trace.y]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if pruned:
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in pruned],
                y=[metric.scale * float(_last_value(t)) for t in pruned],  # type: ignore[arg-type]
                mode="markers",
                name="pruned (last reported value)",
                marker={"color": STATE_COLOURS[TrialState.PRUNED], "symbol": "x", "size": 9},
                meta=[f"trial {t.number} (PRUNED)" for t in pruned],
            )
        )
    fig.update_layout(title=None, yaxis_title=metric.label, yaxis_tickformat=".3g")
    return Section(title, fig)


def learning_curves(
    trials: Sequence[FrozenTrial], metric: Metric, best: FrozenTrial | None = None
) -> Section:
    """Intermediate (per-evaluation) values of every trial by epoch (1-based), coloured and
    dashed by state; the best trial drawn on top, thick and black.

    Pruned trials end with an ``x`` marker at the epoch where they were stopped.
    """
    title = "Learning curves (intermediate values)"
    curves = [t for t in trials if t.intermediate_values]
    if not curves:
        return Section(title, note="No trial has reported an intermediate value yet.")
    fig = go.Figure()
    shown: set[TrialState] = set()
    best_number = best.number if best is not None else None
    for trial in sorted(curves, key=lambda t: t.number == best_number):
        steps = sorted(trial.intermediate_values)
        epochs = [s + 1 for s in steps]
        values = [metric.scale * trial.intermediate_values[s] for s in steps]
        state = trial.state
        label = f"trial {trial.number} ({state.name})"
        is_pruned = state == TrialState.PRUNED
        symbols = ["circle"] * (len(steps) - 1) + ["x" if is_pruned else "circle"]
        sizes = [5] * (len(steps) - 1) + [11 if is_pruned else 5]
        is_best = trial.number == best_number
        line = {"color": STATE_COLOURS[state], "dash": _STATE_DASH[state], "width": 2}
        if is_best:
            line = {"color": BEST_COLOUR, "dash": "solid", "width": 5}
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=f"best: trial {trial.number}" if is_best else state.name,
                legendgroup=f"best-{trial.number}" if is_best else state.name,
                showlegend=is_best or state not in shown,
                line=line,
                marker={"symbol": symbols, "size": sizes},
                hovertemplate=f"{label}<br>epoch %{{x}}<br>{metric.label} %{{y:.2f}}"
                "<extra></extra>",
                meta=f"{label} (best)" if is_best else label,
            )
        )
        if not is_best:
            shown.add(state)
    fig.update_layout(
        xaxis_title="epoch (1-based; Optuna step = epoch - 1)",
        yaxis_title=metric.label,
        legend_title_text="trial state",
    )
    return Section(title, fig)


def _last_value(trial: FrozenTrial) -> float | None:
    """A complete trial's value; a pruned trial's last reported one."""
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        return trial.values[0]
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def _dimension(name: str, values: list[object], *, log: bool = False) -> dict:
    """A parallel-coordinates axis: numbers with 3 significant digits (a log-searched
    parameter on a log axis: log10 positions labelled with the values), text as categories."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(values) and log and all(float(v) > 0 for v in numbers):  # type: ignore[arg-type]
        logs = [math.log10(float(v)) for v in numbers]  # type: ignore[arg-type]
        ticks = _log_ticks(min(logs), max(logs))
        return {
            "label": f"{name} (log)",
            "values": logs,
            "tickvals": ticks,
            "ticktext": [f"{10**t:.3g}" for t in ticks],
        }
    if len(numbers) == len(values):
        return {
            "label": name,
            "values": [float(v) for v in numbers],  # type: ignore[arg-type]
            "tickformat": ".3g",
        }
    labels = sorted({str(v) for v in values})
    return {
        "label": name,
        "values": [labels.index(str(v)) for v in values],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
    }


def _log_ticks(low: float, high: float) -> list[float]:
    """Tick positions (log10) of a log axis: the ends and the whole decades between them."""
    decades = [float(d) for d in range(math.ceil(low), math.floor(high) + 1)]
    ticks = sorted({round(low, 6), *decades, round(high, 6)})
    # Drop a decade that would crowd an end label.
    span = max(high - low, 1e-9)
    return [t for t in ticks if t in (ticks[0], ticks[-1]) or min(t - low, high - t) > span / 10]


def parallel_coordinates(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: Metric
) -> Section:
    """One line per complete or pruned trial (pruned: its last reported value) across the
    parameters and the objective, every line coloured on one shown colour scale."""
    title = "Parallel coordinates"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    drawn = [t for t in trials if t.params and _last_value(t) is not None]
    if not drawn:
        return Section(title, note="No finished trial with parameters yet: nothing to plot.")
    names = list(dict.fromkeys(n for t in drawn for n in t.params))
    drawn = [t for t in drawn if all(n in t.params for n in names)]
    if not drawn:
        return Section(title, note="No finished trial has every parameter: nothing to plot.")
    values = [metric.scale * float(_last_value(t)) for t in drawn]  # type: ignore[arg-type]
    dimensions = [_dimension(n, [t.params[n] for t in drawn], log=_is_log(drawn, n)) for n in names]
    dimensions.append(
        _dimension("state", [t.state.name for t in drawn]),
    )
    dimensions.append({"label": metric.label, "values": values, "tickformat": ".3g"})
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={
                "color": values,
                "colorscale": "Viridis",
                "showscale": True,
                "cmin": min(values),
                "cmax": max(values),
                "colorbar": {"title": {"text": metric.label}},
            },
            meta=[f"trial {t.number} ({t.state.name})" for t in drawn],
        )
    )
    caption = (
        f"{len(drawn)} trials: complete ones at their final value, pruned ones at the last "
        "value they reported."
    )
    return Section(title, fig, caption=caption)


def _is_log(trials: Sequence[FrozenTrial], name: str) -> bool:
    """Whether the parameter was searched on a log scale (its Optuna distribution says so)."""
    distribution = trials[0].distributions.get(name)
    return bool(getattr(distribution, "log", False))


def parameter_importances(
    study: optuna.Study, trials: Sequence[FrozenTrial], metric: Metric
) -> Section:
    """PED-ANOVA importances (Optuna's default evaluator), drawn only from
    :data:`MIN_RELIABLE_IMPORTANCE_TRIALS` complete trials on: a ranking of fewer says
    nothing, so a sentence stands in for it."""
    title = "Parameter importances (PED-ANOVA)"
    if not _single_objective(study):
        return Section(title, note="Only drawn for single-objective studies.")
    complete = _complete(trials)
    if len(complete) < MIN_RELIABLE_IMPORTANCE_TRIALS or not any(t.params for t in complete):
        return Section(
            title,
            note=f"Not drawn: importances need at least {MIN_RELIABLE_IMPORTANCE_TRIALS} "
            f"complete trials with parameters to rank anything; the study has "
            f"{len(complete)}.",
        )
    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns (and returns equal importances) for very small studies.
            warnings.simplefilter("ignore", UserWarning)
            fig = optuna.visualization.plot_param_importances(study, target_name=metric.label)
    except (ValueError, RuntimeError) as exc:
        logger.warning("parameter importances not computed: %s", exc)
        return Section(title, note=f"Importances could not be computed: {exc}")
    fig.update_layout(title=None)
    return Section(title, fig, caption=f"Computed from {len(complete)} complete trials.")


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
                y=[100.0 * v for v in cmc],
                mode="lines+markers",
                name=f"validation (trial {best.number})",
            )
        )
    if test_result and _is_curve(test_result.get("cmc")):
        cmc = [float(v) for v in test_result["cmc"]]
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(cmc) + 1)),
                y=[100.0 * v for v in cmc],
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
        yaxis={"title": "matching rate (%)", "range": [0, 102]},
        legend_title_text="split",
    )
    return Section(title, fig)


def _is_curve(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
