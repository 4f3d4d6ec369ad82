"""Warm start: the spec's ``warm_start`` configurations enqueued when a study is created.

``configs`` and ``preset`` are resolved from the spec alone (:func:`hpo.spec.warm_start_configs`);
``from_study`` reads the best trials of another study, in this study's storage unless it
names one. Each configuration becomes a WAITING trial (``study.enqueue_trial``, skipped when a
trial with the same parameters exists), which workers take before asking the sampler, and
which counts toward the budget like any trial. Its source is stored in the trial's
:attr:`~hpo.study.records.TrialAttr.WARM_START` attribute.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import optuna
from optuna.trial import TrialState

from hpo.errors import SpecError
from hpo.errors import StudyNotFoundError
from hpo.spec import FromStudySpec
from hpo.spec import StudySpec
from hpo.spec import WarmStartConfig
from hpo.spec import fit_to_space
from hpo.spec import resolve_param_path
from hpo.spec import warm_start_configs
from hpo.storage import close_storage
from hpo.storage import mask_url
from hpo.storage import open_storage
from hpo.study.records import TrialAttr
from hpo.study.records import direction_name
from hpo.study.records import top_trials

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _source_storage(
    source: FromStudySpec, own: optuna.storages.BaseStorage
) -> Iterator[optuna.storages.BaseStorage]:
    """The storage holding the source study: ``own`` unless the spec names another URL."""
    if source.storage is None:
        yield own
        return
    other = open_storage(source.storage, must_exist=True)
    try:
        yield other
    finally:
        close_storage(other)


def from_study_configs(
    spec: StudySpec, storage: optuna.storages.BaseStorage
) -> list[WarmStartConfig]:
    """The best ``warm_start.from_study.top_k`` COMPLETE trials of the source study as
    configurations of ``spec``'s search space (empty when the spec has no ``from_study``).

    Parameters are matched by the TrainConfig path they set (``sigma`` and
    ``loss.osm_sigma`` are one parameter); source parameters this search space lacks are
    dropped, numeric values outside this study's range are moved to the nearest bound.

    Raises:
        StudyNotFoundError: No source study.
        SpecError: The source has no COMPLETE trial with a finite value, is multi-objective,
            shares no parameter with this search space, or holds a categorical value this
            search space does not offer.
    """
    source = spec.warm_start.from_study
    if source is None:
        return []
    where = "warm_start.from_study"
    with _source_storage(source, storage) as store:
        try:
            study_id = store.get_study_id_from_name(source.name)
        except KeyError:
            place = mask_url(source.storage) if source.storage else "this study's storage"
            raise StudyNotFoundError(f"{where}: no study {source.name!r} in {place}") from None
        directions = store.get_study_directions(study_id)
        if len(directions) != 1:
            raise SpecError(where, f"study {source.name!r} is multi-objective")
        trials = store.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
    best = top_trials(trials, direction_name(directions), source.top_k)
    if not best:
        raise SpecError(where, f"study {source.name!r} has no COMPLETE trial with a finite value")
    found = []
    for trial in best:
        label = f"study:{source.name}#{trial.number}"
        by_path = {}
        for name, value in trial.params.items():
            with contextlib.suppress(SpecError):
                by_path[resolve_param_path(name)] = value
        try:
            params, notes = fit_to_space(spec.search_space, by_path, f"{where} {label}")
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if not params:
            raise SpecError(
                where,
                f"study {source.name!r} shares no parameter with this search space "
                f"({', '.join(spec.search_space)})",
            )
        found.append(WarmStartConfig(label, params, tuple(notes)))
    return found


def enqueue_warm_start(
    study: optuna.Study, spec: StudySpec, storage: optuna.storages.BaseStorage
) -> int:
    """Enqueue the spec's warm-start configurations on a study just created from it.

    Args:
        study: The new study (nothing else has run in it).
        spec: Its spec.
        storage: The study's storage (where ``from_study`` looks unless it names another).

    Returns:
        How many trials were enqueued (a configuration equal to an earlier one is skipped).

    Raises:
        StudyNotFoundError, SpecError: See :func:`from_study_configs`.
    """
    configs = warm_start_configs(spec) + from_study_configs(spec, storage)
    before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for config in configs:
        for note in config.notes:
            logger.warning("%s", note)
        study.enqueue_trial(
            config.params, user_attrs={TrialAttr.WARM_START: config.source}, skip_if_exists=True
        )
    queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before
    if configs:
        logger.info("warm start: %d of %d configurations enqueued", queued, len(configs))
    return queued


__all__ = ["enqueue_warm_start", "from_study_configs"]
