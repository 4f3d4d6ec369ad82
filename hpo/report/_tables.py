"""The report's HTML tables: every trial (sortable, best marked) and the study's setup."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from typing import Any

from optuna.trial import FrozenTrial

from hpo.report._metric import Metric
from hpo.search import rung_plan
from hpo.spec import StudySpec
from hpo.spec import pruner_options
from hpo.study.records import TrialAttr
from hpo.study.records import format_number
from hpo.study.records import format_pct
from hpo.study.records import rung_of

# Validation metrics of the trials table: (user-attr key in val_metrics, column header).
VAL_COLUMNS = (("mAP", "mAP"), ("rank1", "R1"), ("rank5", "R5"), ("rank10", "R10"))

# Sorts a table by the clicked header (numbers by data-value, text otherwise); no library.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var up = th.dataset.order !== 'asc';
      th.dataset.order = up ? 'asc' : 'desc';
      var key = function (row) {
        var cell = row.cells[col];
        var v = cell.dataset.value;
        return v === undefined || v === '' ? cell.textContent : parseFloat(v);
      };
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = (typeof x === 'number' && typeof y === 'number') ? x - y
          : String(x).localeCompare(String(y));
        return up ? order : -order;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str, value: float | int | None = None, css: str = "") -> str:
    data = "" if value is None else f" data-value='{value}'"
    klass = f" class='{css}'" if css else ""
    return f"<td{klass}{data}>{_e(text)}</td>"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def epochs_of(trial: FrozenTrial) -> int | None:
    """Epochs the trial trained (1-based count): its ``epochs_done`` attr, else the last
    reported step + 1."""
    done = trial.user_attrs.get(TrialAttr.EPOCHS_DONE)
    if isinstance(done, int):
        return done
    return max(trial.intermediate_values) + 1 if trial.intermediate_values else None


def trials_table(trials: list[FrozenTrial], metric: Metric, best: FrozenTrial | None) -> str:
    """One row per trial: state, objective, validation mAP/R1/R5/R10 in %, epochs, one column
    per parameter, worker, start (ISO 8601), duration, warm-start source (when a trial has
    one), notes (the fail reason; why a retry started from epoch 1). The best row is marked."""
    if not trials:
        return "<p class='note'>The study has no trials.</p>"
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    warm = any(TrialAttr.WARM_START in t.user_attrs for t in trials)
    rungs = any(rung_of(t) is not None for t in trials)
    shown = val_columns(metric)
    headers = ["#", "state", metric.label, *(f"{h} (%)" for _, h in shown), "epochs"]
    headers += [*(["rung", "configuration"] if rungs else []), *params]
    headers += ["worker", "started", "duration (s)", *(["warm start"] if warm else [])]
    headers.append("fail reason / notes")
    head = "".join(f"<th title='click to sort'>{_e(h)}</th>" for h in headers)
    rows = [
        _trial_row(t, params, metric, best, warm=warm, rungs=rungs, shown=shown) for t in trials
    ]
    return (
        "<p class='note'>Click a column header to sort; &#9733; marks the best trial "
        "(validation). Metrics are on the validation split.</p>"
        # The box scrolls sideways: a wide table never widens the page.
        f"<div class='table-box'><table class='sortable' id='trials-table'><thead><tr>{head}"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def val_columns(metric: Metric) -> tuple[tuple[str, str], ...]:
    """:data:`VAL_COLUMNS` without the one the objective column already shows."""
    return tuple((key, h) for key, h in VAL_COLUMNS if metric.name != f"val {h}")


def _trial_row(
    t: FrozenTrial,
    params: list[str],
    metric: Metric,
    best: FrozenTrial | None,
    *,
    warm: bool,
    rungs: bool,
    shown: tuple[tuple[str, str], ...],
) -> str:
    is_best = best is not None and t.number == best.number
    value = t.value if t.values is not None and len(t.values) == 1 else None
    val = t.user_attrs.get(TrialAttr.VAL_METRICS)
    val = val if isinstance(val, dict) else {}
    cells = [
        _cell(f"{t.number} \u2605 best" if is_best else str(t.number), t.number),
        _cell(t.state.name, css=f"state-{t.state.name}"),
        _cell(metric.show(value), _number(value)),
    ]
    for key, _ in shown:
        number = _number(val.get(key))
        text = "" if number is None else format_pct(number).removesuffix("%")
        cells.append(_cell(text, number))
    epochs = epochs_of(t)
    cells.append(_cell("" if epochs is None else str(epochs), epochs))
    if rungs:
        rung = rung_of(t)
        cells.append(_cell("" if rung is None else f"{rung.rung} ({rung.epochs} epochs)"))
        cells.append(_cell("" if rung is None else str(rung.config), rung and rung.config))
    for name in params:
        raw = t.params.get(name)
        cells.append(_cell("" if raw is None else format_number(raw), _number(raw)))
    started = t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else ""
    duration = _duration_s(t)
    cells += [
        _cell(str(t.user_attrs.get(TrialAttr.WORKER, ""))),
        _cell(started),
        _cell("" if duration is None else f"{duration:.0f}", duration),
        *([_cell(str(t.user_attrs.get(TrialAttr.WARM_START, "")))] if warm else []),
        _cell(_notes(t)),
    ]
    row_class = " class='best'" if is_best else ""
    return f"<tr{row_class} data-trial='{t.number}'>{''.join(cells)}</tr>"


def _notes(trial: FrozenTrial) -> str:
    """The fail reason and, for a retry that could not resume, why it started from epoch 1."""
    notes = [str(trial.user_attrs.get(TrialAttr.FAIL_REASON) or "")]
    skipped = trial.user_attrs.get(TrialAttr.RESUME_SKIPPED)
    if skipped:
        notes.append(f"resume skipped: {skipped}")
    return "; ".join(n for n in notes if n)


def _duration_s(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def setup_section(spec: StudySpec | None) -> str:
    """The study's spec: objective, search space, sampler, pruner (effective options), budget,
    and the whole spec as JSON."""
    title = "<h2>Study setup: spec, search space, sampler and pruner</h2>"
    if spec is None:
        note = "<p class='note'>This study has no reid-hpo spec (not created by reid-hpo).</p>"
        return f"<section id='setup'>{title}{note}</section>"
    space_rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(_range_text(param))}</td></tr>"
        for name, param in spec.search_space.items()
    )
    try:
        pruner = json.dumps(pruner_options(spec), sort_keys=True, default=str)
    except ValueError as exc:
        pruner = f"invalid options: {exc}"
    rows = {
        "objective": f"{spec.objective.metric} ({spec.objective.direction}) on the validation "
        f"split ({spec.validation.sampling}, {spec.validation.fraction:g} of the training ids)",
        "dataset": f"{spec.dataset.name} (split {spec.dataset.split_id})",
        "model": f"{spec.model.arch} on {spec.model.backbone}",
        "training": f"{spec.training.epochs} epochs, evaluated every "
        f"{spec.training.eval_every} (epochs 1-based; Optuna step = epoch - 1)",
        "sampler": f"{spec.sampler.name} (seed {spec.sampler.seed}, options "
        f"{json.dumps(spec.sampler.options, sort_keys=True, default=str)})",
        "pruner": f"{spec.pruner.name}, effective options {pruner}",
        "budget": f"{spec.budget.n_trials or 'no'} trials, "
        f"{spec.budget.timeout_hours or 'no'} hours",
    }
    plan = rung_plan(spec)
    if plan is not None:
        rows["fidelity"] = (
            f"{plan.kind}, eta {plan.eta}, rungs of {', '.join(map(str, plan.ladder))} epochs "
            "(compressed schedules); the budget counts epochs "
            f"({plan.budget_epochs(spec.budget.n_trials) or 'no limit'})"
        )
    setup = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows.items())
    spec_json = json.dumps(spec.model_dump(mode="json"), indent=2)
    return (
        f"<section id='setup'>{title}<table id='setup-table'>{setup}</table>"
        f"<h3>Search space</h3><table id='search-space'><tr><th>parameter</th>"
        f"<th>distribution</th></tr>{space_rows}</table>"
        f"<details><summary>The whole spec (JSON)</summary><pre>{_e(spec_json)}</pre>"
        "</details></section>"
    )


def _range_text(param: Any) -> str:
    kind = param.type
    if kind == "categorical":
        return "one of " + ", ".join(str(c) for c in param.choices)
    scale = ", log" if param.log else ""
    step = f", step {param.step}" if getattr(param, "step", None) not in (None, 1) else ""
    return f"{kind} in [{param.low:g}, {param.high:g}]{scale}{step}"


def generated_at() -> str:
    """Now, ISO 8601 with the UTC offset."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")
