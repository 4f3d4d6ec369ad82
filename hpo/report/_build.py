"""Assemble the study report: one self-contained HTML file (plotly.js inlined once)."""

from __future__ import annotations

import html
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import plotly.offline
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.report import _figures
from hpo.report._figures import Section
from hpo.report._metric import Metric
from hpo.report._metric import objective_metric
from hpo.report._tables import SORT_SCRIPT
from hpo.report._tables import generated_at
from hpo.report._tables import setup_section
from hpo.report._tables import trials_table
from hpo.search import rung_plan
from hpo.storage import mask_url
from hpo.study import compute_account
from hpo.study import finished_epochs
from hpo.study import rung_counts
from hpo.study.records import TrialAttr
from hpo.study.records import best_of_study
from hpo.study.records import format_number
from hpo.study.records import format_pct
from hpo.study.records import read_spec_or_none
from hpo.study.records import stored_retrain_result
from hpo.study.records import stored_test_result
from reid_core.files import output_file_target
from reid_core.files import write_output_file

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}.note{color:#666;font-style:italic}
.state-COMPLETE{color:#1f77b4}.state-PRUNED{color:#ff7f0e}.state-FAIL{color:#d62728}
.state-RUNNING{color:#2ca02c}.state-WAITING{color:#7f7f7f}code{font-size:.95em}
.caption{color:#8a5a00}tr.best td{background:#fff7d6;font-weight:600}
table.sortable th{cursor:pointer}td[data-value]{text-align:right}
.table-box{overflow-x:auto;max-width:100%}pre{overflow-x:auto}
"""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def build_report(study: optuna.Study, out: Path, *, storage_url: str | None = None) -> Path:
    """Write the HTML report of a study and return its path.

    The file is self-contained (plotly.js is inlined once, no network is needed to view it)
    and written by the output-file rule of :func:`reid_core.files.write_output_file`.
    Sections that cannot be drawn yet (empty study, a single trial, no CMC stored) show a
    note instead.

    Args:
        study: The study to report on (any storage).
        out: Path of the HTML file to write; missing parent folders are created.
        storage_url: Shown in the header with its password masked, when given.

    Returns:
        The file written (the regular file a symbolic link ``out`` points to).

    Raises:
        OutputFileError: ``out`` is refused by the rule or cannot be written.

    Example:
        >>> study = optuna.create_study(study_name="demo")
        >>> build_report(study, Path("report.html"))  # doctest: +SKIP
        PosixPath('report.html')
    """
    output_file_target(out, what="the report")  # refuse a bad target before the work
    trials = study.get_trials(deepcopy=False)
    metric = objective_metric(study)
    best = best_of_study(study)
    test_result = stored_test_result(study.user_attrs)
    sections = [
        _figures.optimisation_history(study, trials, metric),
        _figures.learning_curves(trials, metric, best),
        _figures.parallel_coordinates(study, trials, metric),
        _figures.parameter_importances(study, trials, metric),
        _figures.worker_timeline(trials),
        _figures.cmc_curve(best, test_result),
    ]
    header = _summary_html(study, trials, metric, best, test_result, storage_url)
    header += _retrain_html(stored_retrain_result(study.user_attrs))
    header += setup_section(read_spec_or_none(study.user_attrs, study.study_name))
    document = _document(study.study_name, header, sections, trials_table(trials, metric, best))
    written = write_output_file(out, document, what="the report")
    logger.debug("wrote report of %r (%d trials) to %s", study.study_name, len(trials), written)
    return written


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct_table(metrics: dict[str, object]) -> str:
    """Re-ID metrics (fractions) in %, other entries as they are."""
    shown = {
        k: format_pct(v) if isinstance(v, float) and not isinstance(v, bool) else v
        for k, v in metrics.items()
    }
    return _kv_table(shown)


def _kv_table(rows: dict[str, object]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(format_number(v))}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _summary_html(
    study: optuna.Study,
    trials: list[FrozenTrial],
    metric: Metric,
    best: FrozenTrial | None,
    test_result: dict[str, Any] | None,
    storage_url: str | None,
) -> str:
    counts = Counter(t.state for t in trials)
    states = ", ".join(
        f'<span class="state-{s.name}">{s.name} {counts[s]}</span>' for s in TrialState if counts[s]
    )
    directions = ", ".join(d.name.lower() for d in study.directions)
    rows = [
        f"<tr><th>objective</th><td id='objective-name'>{_e(metric.name)} ({_e(directions)})"
        "</td></tr>",
        f"<tr><th>trials</th><td>{len(trials)}{': ' + states if states else ''}</td></tr>",
    ]
    spec = read_spec_or_none(study.user_attrs, study.study_name)
    account = compute_account(trials, spec.training.epochs if spec else None)
    compute = "<br>".join(_e(line.removeprefix("compute: ")) for line in account.lines())
    rows.append(f"<tr><th>compute</th><td id='compute'>{compute}</td></tr>")
    rows += _rung_rows(study, trials)
    if storage_url:
        rows.append(f"<tr><th>storage</th><td><code>{_e(mask_url(storage_url))}</code></td></tr>")
    parts = ["<section id='summary'><h2>Summary</h2>", f"<table>{''.join(rows)}</table>"]
    if best is None:
        parts.append("<p class='note'>No complete trial yet: no best trial.</p>")
    else:
        parts.append(
            f"<h3>Best trial (validation): trial {best.number}, "
            f"{_e(metric.name)} = {_e(metric.show(best.value))}</h3>"
        )
        parts.append(_kv_table(dict(best.params)) if best.params else "<p>No parameters.</p>")
        val_metrics = best.user_attrs.get(TrialAttr.VAL_METRICS)
        if isinstance(val_metrics, dict) and val_metrics:
            parts.append("<h4>Validation metrics</h4>" + _pct_table(val_metrics))
    parts.append("<h3>Test result (best trial, evaluated once; never used for selection)</h3>")
    if test_result is None:
        parts.append("<p class='note'>Not evaluated on the test split yet.</p>")
    else:
        metrics = test_result.get("metrics")
        parts.append(f"<p>trial {_e(test_result.get('trial'))}</p>")
        if isinstance(metrics, dict):
            parts.append(_pct_table(metrics))
    parts.append("</section>")
    return "\n".join(parts)


def _rung_rows(study: optuna.Study, trials: list[FrozenTrial]) -> list[str]:
    """One summary row per rung of a ``fidelity:`` study: its epochs and trials by state."""
    spec = read_spec_or_none(study.user_attrs, study.study_name)
    plan = rung_plan(spec) if spec is not None else None
    if plan is None:
        return []
    rows = []
    for rung in rung_counts(trials, plan):
        states = ", ".join(f"{state} {n}" for state, n in rung.states.items() if n)
        rows.append(
            f"<tr class='rung'><th>rung {rung.rung} ({rung.epochs} epochs)</th>"
            f"<td>{_e(states or 'no trial yet')}</td></tr>"
        )
    rows.append(
        f"<tr><th>epochs</th><td>{finished_epochs(trials)} finished of "
        f"{plan.budget_epochs(spec.budget.n_trials) or 'no limit'}; the best trial is "
        "taken from the full schedule (top rung) only</td></tr>"
    )
    return rows


def _retrain_html(result: dict[str, Any] | None) -> str:
    """The retrained model's test result (``study retrain``), or a note that there is none."""
    parts = [
        "<section id='retrain'><h2>Retrained on all training ids (test split, evaluated once)</h2>"
    ]
    if result is None:
        parts.append(
            "<p class='note'>Not retrained yet: <code>reid-hpo study retrain NAME</code> trains "
            "the best trial's parameters on every training id for the plain-training length."
            "</p>"
        )
    else:
        parts.append(
            f"<p>trial {_e(result.get('trial'))}, {_e(result.get('train_ids'))} training ids, "
            f"{_e(result.get('epochs'))} epochs; checkpoint <code>"
            f"{_e(result.get('checkpoint'))}</code></p>"
        )
        metrics = result.get("metrics")
        if isinstance(metrics, dict):
            parts.append(_pct_table(metrics))
    parts.append("</section>")
    return "\n".join(parts)


def _section_html(index: int, section: Section) -> str:
    anchor = f"section-{index}"
    body = (
        section.figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"figure-{index}",
            config=_PLOT_CONFIG,
        )
        if section.figure is not None
        else f"<p class='note'>{_e(section.note or 'Nothing to show.')}</p>"
    )
    caption = f"<p class='caption'>{_e(section.caption)}</p>" if section.caption else ""
    return f"<section id='{anchor}'><h2>{_e(section.title)}</h2>\n{caption}{body}\n</section>"


def _document(name: str, header: str, sections: list[Section], trials_table: str) -> str:
    has_figures = any(s.figure is not None for s in sections)
    # plotly.js is inlined once in <head>; every figure div is written without it.
    plotly_js = (
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>"
        if has_figures
        else ""
    )
    generated = generated_at()
    body = "\n".join(_section_html(i, s) for i, s in enumerate(sections, start=1))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>reid-hpo report: {_e(name)}</title><style>{_CSS}</style>{plotly_js}</head>\n"
        f"<body><h1>Study {_e(name)}</h1><p class='note'>reid-hpo report, generated "
        f"{_e(generated)}</p>\n{header}\n{body}\n"
        f"<section id='trials'><h2>Trials</h2>{trials_table}</section>\n"
        f"<script>{SORT_SCRIPT}</script></body></html>\n"
    )
