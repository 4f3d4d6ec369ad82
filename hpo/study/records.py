"""The study record format: every user-attribute name reid-hpo stores, the one reader of the
stored spec and the one best-trial rule.

Optuna keeps what reid-hpo records as user attributes, readable by Optuna's own tools and by
optuna-dashboard. Study attributes (:class:`StudyAttr`) hold the spec, the version that created
the study, the start time, the worker count and the one-off test result; trial attributes
(:class:`TrialAttr`) hold what a trial's training recorded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.errors import SpecError
from hpo.spec import TRUSTED_NAMES
from hpo.spec import StudySpec
from hpo.spec import parse_spec
from hpo.spec import spec_from_json

logger = logging.getLogger(__name__)


class StudyAttr:
    """Names of the study user attributes reid-hpo writes."""

    SPEC = "spec"
    """The whole spec as JSON text (never the storage URL)."""
    UUID = "study_uuid"
    """A random identity given at creation: the study's artifact folder is named by it, never
    by the (free-form, renamable) study name, so a re-created study shares nothing."""
    ARTIFACTS_MARKER = "artifacts_marker"
    """True once ``<artifacts.root>/<uuid>/reid-hpo-study.json`` was written (at ``study
    create``, else by the first worker): a machine that does not see it is refused."""
    VERSION = "reid_hpo_version"
    """``hpo.__version__`` of the process that created the study."""
    STARTED_AT = "started_at"
    """When the first worker started, an ISO 8601 UTC string (the time budget counts from
    it; studies of earlier versions hold Unix seconds, still read)."""
    WORKERS_STARTED = "workers_started"
    """Workers that have joined the study (each takes the next index as its seed offset)."""
    TEST_RESULT = "test_result"
    """The best trial's one-off test-split evaluation (``evaluate_best_on_test``)."""
    RETRAIN_RESULT = "retrain_result"
    """The test-split evaluation of a trial's parameters retrained on every training id with
    the plain-training length (``retrain``), with its configuration, checkpoint and code."""
    TEST_SUMMARY = "test_result_pct"
    """:attr:`TEST_RESULT` as a person reads it in optuna-dashboard (:func:`result_summary`)."""
    RETRAIN_SUMMARY = "retrain_result_pct"
    """:attr:`RETRAIN_RESULT` as a person reads it in optuna-dashboard."""


class TrialAttr:
    """Names of the trial user attributes the objective writes."""

    SEED = "seed"
    ORIGIN_TRIAL = "origin_trial"
    """The number of the trial's first attempt: its retries inherit it and share its folder."""
    CHECKPOINT_DIR = "checkpoint_dir"
    """The trial's artifact folder (a retry inherits it and resumes there)."""
    CHECKPOINT = "checkpoint"
    """The last checkpoint file written."""
    LAST_CHECKPOINT_EPOCH = "last_checkpoint_epoch"
    """The 1-based epoch of :attr:`CHECKPOINT` (its file is ``epoch_<that epoch>.pt``)."""
    RESUMED_FROM_EPOCH = "resumed_from_epoch"
    """The 1-based epoch of the checkpoint a retry resumed from (absent: it started afresh)."""
    RESUME_SKIPPED = "resume_skipped"
    """Why a retry started from epoch 1 (no checkpoint reachable, or its record differed)."""
    VAL_METRICS = "val_metrics"
    CMC = "cmc"
    """The validation CMC curve, fractions rounded to :data:`STORED_DECIMALS` (rank 1 first)."""
    RERANK_CMC = "rerank_cmc"
    VAL_CMC_PCT = "val_cmc_pct"
    """:attr:`CMC` as a person reads it: ``rank1 90.2%, rank5 95.1%, ...`` (:func:`cmc_summary`)."""
    CODE_VERSION = "code_version"
    DEVICE = "device"
    WORKER = "worker"
    """``host:pid`` of the worker process that ran (or last resumed) the trial."""
    FAIL_REASON = "fail_reason"
    NONFINITE_LOSS = "nonfinite_loss"
    """The NaN/inf loss message of a trial scored the worst value (``objective.on_nan``)."""
    VAL_MAP_PCT = "val_mAP_pct"
    """Flat copies of the last validation metrics, in % (what the dashboard shows and sorts)."""
    VAL_RANK1_PCT = "val_rank1_pct"
    VAL_RANK5_PCT = "val_rank5_pct"
    VAL_RANK10_PCT = "val_rank10_pct"
    EPOCHS_DONE = "epochs_done"
    """Epochs trained so far (a count: the last finished epoch, 1-based)."""
    EPOCHS_TRAINED = "epochs_trained"
    """Epochs this attempt trained itself (a resumed attempt does not count the epochs of the
    checkpoint it took over: those are its predecessor's)."""
    DEVICE_SECONDS = "device_seconds"
    """Compute this attempt spent: its wall-clock seconds x :attr:`DEVICE_COUNT` (GPU-seconds
    on a GPU; :attr:`DEVICE` names the device)."""
    DEVICE_COUNT = "device_count"
    """Devices the attempt trained on (one per trial: a worker trains a trial on one device)."""
    PRUNED_AGAINST = "pruned_against"
    """Why a PRUNED trial was stopped: its value and what the pruner compared it with."""
    WARM_START = "warm_start"
    """Where an enqueued warm-start configuration came from: ``configs.<i>``,
    ``preset:<name>`` or ``study:<name>#<trial number>`` (retries inherit it)."""
    FIDELITY = "fidelity"
    """A ``fidelity:`` study's rung of the trial (:class:`Rung`): ``{config, bracket, rung,
    epochs, top}``; retries and promotions carry it."""


@dataclass(frozen=True)
class Rung:
    """Where a trial of a ``fidelity:`` study sits (its ``fidelity`` user attribute).

    Attributes:
        config: The configuration's id: the number of its first (bottom-rung) trial; every
            rung trial of the configuration, retries included, carries it.
        bracket: The bracket's index (its bottom rung for Hyperband; 0 for SHA).
        rung: The rung's index in the ladder (0: the cheapest).
        epochs: The rung's epochs (its compressed schedule's length).
        top: Whether this is the full schedule (only those trials can be the study's best).
    """

    config: int
    bracket: int
    rung: int
    epochs: int
    top: bool

    def to_attr(self) -> dict[str, Any]:
        """The user attribute's value."""
        return asdict(self)


def rung_of(trial: FrozenTrial | optuna.Trial) -> Rung | None:
    """The trial's :class:`Rung`, or None when it has none (a plain study, or a new trial of a
    fidelity study before its worker placed it)."""
    value = trial.user_attrs.get(TrialAttr.FIDELITY)
    if not isinstance(value, dict):
        return None
    return Rung(**{f.name: value[f.name] for f in fields(Rung)})


METRIC_NAMES: dict[str, str] = {
    "map": "val mAP",
    "rerank_map": "val re-ranked mAP",
    "rank1": "val rank-1",
}
"""``spec.objective.metric`` -> the objective's name stored with ``study.set_metric_names``
(what optuna-dashboard shows instead of "Objective 0"). Stored values are fractions in [0, 1];
reid-hpo prints them in %."""

FLAT_METRICS: dict[str, str] = {
    "mAP": TrialAttr.VAL_MAP_PCT,
    "rank1": TrialAttr.VAL_RANK1_PCT,
    "rank5": TrialAttr.VAL_RANK5_PCT,
    "rank10": TrialAttr.VAL_RANK10_PCT,
}
"""Validation metric -> its flat user attribute (in %)."""


def flat_metric_attrs(metrics: dict[str, float]) -> dict[str, float]:
    """The flat ``val_*_pct`` user attributes of a validation result (finite values only), in %
    with :data:`PCT_DECIMALS` decimals.

    Example:
        >>> flat_metric_attrs({"mAP": 0.51234, "rank1": 0.75})
        {'val_mAP_pct': 51.2, 'val_rank1_pct': 75.0}
    """
    return {
        attr: round(100.0 * float(metrics[key]), PCT_DECIMALS)
        for key, attr in FLAT_METRICS.items()
        if key in metrics and math.isfinite(float(metrics[key]))
    }


PCT_DECIMALS = 1
"""Decimals of a metric in % wherever reid-hpo shows one (console, report, dashboard notes)."""
STORED_DECIMALS = 4
"""Decimals of a stored CMC fraction (0.01 %: finer than any figure shows)."""
CMC_RANKS = (1, 5, 10, 20)
"""The CMC ranks a person reads (as torchreid prints them)."""
SUMMARY_METRICS = ("mAP", "rank1", "rank5", "rank10", "rerank_mAP", "rerank_rank1")
"""The metrics a one-line summary shows, in this order."""
SIGNIFICANT_DIGITS = 4
"""Significant digits of a parameter or other float wherever reid-hpo shows one."""


def format_pct(fraction: float | None) -> str:
    """A metric stored as a fraction, in % with :data:`PCT_DECIMALS` decimals (``-`` if None).

    Example:
        >>> format_pct(0.8872549019607843)
        '88.7%'
    """
    if fraction is None:
        return "-"
    return f"{100.0 * fraction:.{PCT_DECIMALS}f}%"


def stored_cmc(cmc: Iterable[float]) -> list[float]:
    """A CMC curve as stored in a user attribute: fractions, :data:`STORED_DECIMALS` decimals.

    Example:
        >>> stored_cmc([0.8872549019607843, 0.95])
        [0.8873, 0.95]
    """
    return [round(float(v), STORED_DECIMALS) for v in cmc]


def cmc_summary(cmc: Any) -> str:
    """The :data:`CMC_RANKS` of a CMC curve (fractions, rank 1 first) in %.

    Example:
        >>> cmc_summary([0.902, 0.93, 0.94, 0.945, 0.951] + [0.96] * 15)
        'rank1 90.2%, rank5 95.1%, rank10 96.0%, rank20 96.0%'
    """
    if not isinstance(cmc, list | tuple):
        return "-"
    return ", ".join(f"rank{r} {format_pct(cmc[r - 1])}" for r in CMC_RANKS if r <= len(cmc))


def metrics_summary(metrics: Any) -> str:
    """The :data:`SUMMARY_METRICS` of a metrics dict (fractions) in %, in one line.

    Example:
        >>> metrics_summary({"rank1": 0.55, "mAP": 0.4321, "rank20": 0.9})
        'mAP 43.2%, rank1 55.0%'
    """
    if not isinstance(metrics, dict):
        return "-"
    return ", ".join(
        f"{k} {format_pct(metrics[k])}" for k in SUMMARY_METRICS if metrics.get(k) is not None
    )


def result_summary(result: dict[str, Any], *, retrained: bool = False) -> str:
    """A stored test (or, ``retrained``, retrain) result in one line, as optuna-dashboard
    shows it.

    Example:
        >>> result_summary({"trial": 3, "epoch": 6, "metrics": {"mAP": 0.4321}})
        'trial 3, epoch 6: mAP 43.2%'
    """
    if retrained:
        where = f"trial {result.get('trial')} retrained {result.get('epochs')} epochs on all ids"
    else:
        where = f"trial {result.get('trial')}, epoch {result.get('epoch', '-')}"
    return f"{where}: {metrics_summary(result.get('metrics'))}"


def format_number(value: Any) -> str:
    """A parameter value as reid-hpo shows it: floats with :data:`SIGNIFICANT_DIGITS`
    significant digits, anything else as it is.

    Example:
        >>> format_number(0.000123456), format_number(8), format_number("adam")
        ('0.0001235', '8', 'adam')
    """
    if isinstance(value, float):
        return f"{value:.{SIGNIFICANT_DIGITS}g}"
    return str(value)


def read_spec(attrs: dict[str, Any], study_name: str) -> StudySpec | None:
    """The spec stored in a study's user attributes, or ``None`` when it has none.

    The spec was fully checked when the study was created, so the registry names are trusted
    (:data:`hpo.spec.TRUSTED_NAMES`: no torch import).

    Raises:
        SpecError: The stored spec is invalid.
    """
    raw = attrs.get(StudyAttr.SPEC)
    if raw is None:
        return None
    source = f"study {study_name!r}"
    if isinstance(raw, dict):
        return parse_spec(raw, source=source, context=TRUSTED_NAMES)
    return spec_from_json(str(raw), source=source, context=TRUSTED_NAMES)


def read_spec_or_none(attrs: dict[str, Any], study_name: str) -> StudySpec | None:
    """:func:`read_spec`, logging (not raising) an unreadable spec: for read-only views."""
    try:
        return read_spec(attrs, study_name)
    except SpecError as exc:
        logger.warning("study %r: stored spec is unreadable: %s", study_name, exc)
        return None


def spec_of(study: optuna.Study) -> StudySpec:
    """The spec stored with ``study``.

    Raises:
        SpecError: The study was not created by reid-hpo, or its stored spec is invalid.
    """
    spec = read_spec(study.user_attrs, study.study_name)
    if spec is None:
        raise SpecError(
            f"study {study.study_name!r}",
            "has no reid-hpo spec (it was not created by 'reid-hpo study create')",
        )
    return spec


def best_trial(trials: Iterable[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The best COMPLETE trial with a finite value; ties go to the earlier trial.

    Args:
        trials: The study's trials (any states).
        direction: ``"maximize"`` or ``"minimize"``.

    Returns:
        The trial, or ``None`` when no trial has completed with a finite value.
    """
    top = top_trials(trials, direction, 1)
    return top[0] if top else None


def top_trials(trials: Iterable[FrozenTrial], direction: str, k: int) -> list[FrozenTrial]:
    """The ``k`` best COMPLETE trials with a finite value, best first (the rule of
    :func:`best_trial`: ties go to the earlier trial). In a ``fidelity:`` study only
    full-schedule (top-rung) trials count: a compressed schedule's value is not comparable."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        and _full_schedule(t)
    ]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t.value, t.number))[:k]


def _full_schedule(trial: FrozenTrial) -> bool:
    rung = rung_of(trial)
    return rung is None or rung.top


def direction_name(directions: list[optuna.study.StudyDirection]) -> str:
    """``"maximize"``, ``"minimize"`` or ``"multi-objective"``."""
    return directions[0].name.lower() if len(directions) == 1 else "multi-objective"


def best_of_study(study: optuna.Study) -> FrozenTrial | None:
    """:func:`best_trial` of a live study (``None`` for a multi-objective one)."""
    if len(study.directions) != 1:
        return None
    return best_trial(study.get_trials(deepcopy=False), direction_name(study.directions))


def stored_test_result(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The stored test result in a study's user attributes, or ``None``."""
    value = attrs.get(StudyAttr.TEST_RESULT)
    return value if isinstance(value, dict) else None


def stored_retrain_result(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The stored retrain result in a study's user attributes, or ``None``."""
    value = attrs.get(StudyAttr.RETRAIN_RESULT)
    return value if isinstance(value, dict) else None


__all__ = [
    "FLAT_METRICS",
    "METRIC_NAMES",
    "PCT_DECIMALS",
    "SIGNIFICANT_DIGITS",
    "Rung",
    "StudyAttr",
    "TrialAttr",
    "best_of_study",
    "best_trial",
    "cmc_summary",
    "direction_name",
    "flat_metric_attrs",
    "format_number",
    "format_pct",
    "metrics_summary",
    "read_spec",
    "read_spec_or_none",
    "result_summary",
    "rung_of",
    "spec_of",
    "stored_cmc",
    "stored_retrain_result",
    "stored_test_result",
    "top_trials",
]
