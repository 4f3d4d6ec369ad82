"""The study's note in optuna-dashboard: what reid-hpo found, readable (metrics in %).

optuna-dashboard shows a study's note above its charts; reid-hpo writes its results there
(through the dashboard's public ``save_note``) each time a one-off test or a retrain stores
one, so a person reads ``test mAP 43.2%`` instead of a JSON user attribute. A note edited in
the dashboard is replaced the next time reid-hpo writes.
"""

from __future__ import annotations

import logging

import optuna

from hpo.study._accounting import compute_account
from hpo.study.records import METRIC_NAMES
from hpo.study.records import best_of_study
from hpo.study.records import format_pct
from hpo.study.records import metrics_summary
from hpo.study.records import read_spec_or_none
from hpo.study.records import stored_retrain_result
from hpo.study.records import stored_test_result

logger = logging.getLogger(__name__)


def results_note(study: optuna.Study) -> str:
    """The note's Markdown: best trial, test result, retrain result, compute."""
    spec = read_spec_or_none(study.user_attrs, study.study_name)
    metric = METRIC_NAMES[spec.objective.metric] if spec else "objective"
    lines = [f"## reid-hpo results of {study.study_name}", ""]
    best = best_of_study(study)
    if best is not None:
        lines.append(
            f"- best trial on validation: trial {best.number}, {metric} {format_pct(best.value)}"
        )
    test = stored_test_result(study.user_attrs)
    if test:
        lines.append(
            f"- test split, evaluated once (trial {test.get('trial')}): "
            f"{metrics_summary(test.get('metrics'))}"
        )
    retrain = stored_retrain_result(study.user_attrs)
    if retrain:
        lines.append(
            f"- retrained on all training ids (trial {retrain.get('trial')}, "
            f"{retrain.get('epochs')} epochs), test split: "
            f"{metrics_summary(retrain.get('metrics'))}"
        )
    account = compute_account(
        study.get_trials(deepcopy=False), spec.training.epochs if spec else None
    )
    lines += [f"- {line}" for line in account.lines()]
    return "\n".join(lines) + "\n"


def write_results_note(study: optuna.Study) -> None:
    """Save :func:`results_note` as the study's optuna-dashboard note."""
    from optuna_dashboard import save_note

    save_note(study, results_note(study))


def refresh_results_note(study: optuna.Study) -> None:
    """:func:`write_results_note` after a trial completed (the best may have changed); a note
    that cannot be written only warns: the trial's result stands."""
    try:
        write_results_note(study)
    except Exception as exc:  # the note is a convenience: no error of its own stops a worker
        logger.warning("the study's dashboard note was not updated: %s", exc)


__all__ = ["refresh_results_note", "results_note", "write_results_note"]
