"""A storage wrapper that makes Optuna's ask/tell round cheap for a worker's own trials.

Optuna's cached RDB storage (``optuna.storages._CachedStorage``, what ``optuna.load_study``
wraps an :class:`optuna.storages.RDBStorage` in) caches *finished* trials only. The storage
benchmark (``reid-hpo bench storage``, BENCHMARKS.md) profiled an ask/tell round with five
float parameters at 43 SQL statements and 11 commits, growing with the study, and found these
causes, each removed here:

1. Every read of a running trial goes to the database: ``study.ask`` reads the new trial back
   after creating it, ``study.tell`` reads it before and after finishing it (six SELECTs
   each). :class:`OwnedTrialStorage` keeps a copy of each trial this process created and
   updates it on each of its own writes.
2. Each suggested parameter is its own transaction (state check, distribution check, insert,
   commit). :meth:`OwnedTrialStorage.batched_params` writes the parameters suggested inside
   the block (e.g. ``study.ask(space)``) in one transaction with one state check.
3. ``study.ask`` looks for WAITING trials by scanning every cached trial (2 ms per ask at
   6,000 trials, in every worker). :meth:`OwnedTrialStorage.get_all_trials` looks only at the
   trials that can still be unfinished.
4. ``study.ask`` first looks for WAITING trials (retries), which re-read every trial that
   changed since the last read (seven statements, and the other workers' new trials loaded
   into the cache) although there almost never is one. :meth:`OwnedTrialStorage.get_all_trials`
   first asks the database whether the study has a WAITING trial at all (one statement) and
   reads the trials only when it has; samplers that need the finished trials (TPE) still read
   them when they ask for them.
5. Optuna's ORM writes take four statements to create a trial (study row lock, insert, count,
   number update; the lock is held across all of them) and four to finish one (locked read,
   value lookup, update, insert). On PostgreSQL a new trial is created in two (lock, then an
   INSERT that counts the earlier trials itself), and this process's own trials are finished
   in two (a conditional UPDATE, then the values); parameters are inserted in one statement.

Result, one worker on PostgreSQL (same session, three interleaved runs of 400 rounds): 7
statements and 4 commits per round instead of 43 and 11, client CPU 4.4-6.3 ms instead of
21.0-22.5 ms, server CPU 1.9 ms instead of 6.8-7.7 ms (points 1-3 alone: 17 statements,
10.2-12.2 ms client, 3.0-3.4 ms server).

Every write still goes to the database first, where the trial's state is checked, so a trial
failed by another process (a stale heartbeat) is noticed at the next ``report``/
``set_user_attr``/``tell`` exactly as before; that write drops the stale copy, so the trial is
read back from the database from then on. Trials this process did not create (another
worker's, or a WAITING retry it picked up) are read through as usual. The statements issued
here directly retry a lost database like :class:`hpo.storage.ReconnectingRDBStorage` does.

Relies on Optuna 5.0 internals (``_CachedStorage`` and its ``_StudyInfo``, ``RDBStorage``'s
private methods, the RDB models): the project pins ``optuna>=5.0,<5.1`` and
:func:`check_optuna_internals` (run when the storage is built) names whatever is missing.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Container
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna import distributions
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.storage import retry_on_disconnect

_OPTUNA_HINT = (
    "hpo._trial_cache is written against the internals of Optuna 5.0 (installed: "
    f"{optuna.__version__}); install optuna>=5.0,<5.1 as pyproject.toml pins it"
)
try:
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages._cached_storage import _StudyInfo
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
except ImportError as exc:  # pragma: no cover - only with an unsupported Optuna
    raise ImportError(f"{_OPTUNA_HINT}: {exc}") from exc

_UNFINISHED = frozenset({TrialState.WAITING, TrialState.RUNNING})

# The private Optuna names OwnedTrialStorage uses, by owner (see check_optuna_internals).
_REQUIRED_INTERNALS: dict[str, tuple[object, tuple[str, ...]]] = {
    "optuna.storages._cached_storage._CachedStorage": (
        _CachedStorage,
        ("_read_trials_from_remote_storage", "_add_trials_to_cache", "_get_cached_trial"),
    ),
    "optuna.storages.RDBStorage": (
        optuna.storages.RDBStorage,
        ("_create_new_trial", "_set_trial_param", "_get_trials", "check_trial_is_updatable"),
    ),
    "optuna.storages._rdb.models": (models, ("NOT_FOUND_MSG",)),
    "optuna.storages._rdb.models.TrialValueModel": (
        models.TrialValueModel,
        ("value_to_stored_repr",),
    ),
}
# The RDB schema columns written or read directly, by model.
_REQUIRED_COLUMNS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "StudyModel": (models.StudyModel, ("study_id",)),
    "TrialModel": (
        models.TrialModel,
        ("trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"),
    ),
    "TrialValueModel": (models.TrialValueModel, ("trial_id", "objective", "value", "value_type")),
    "TrialParamModel": (
        models.TrialParamModel,
        ("trial_id", "param_name", "param_value", "distribution_json"),
    ),
}
# Attributes that _CachedStorage.__init__ and _StudyInfo.__init__ set on their instances.
_CACHE_ATTRS = ("_backend", "_studies", "_trial_id_to_study_id_and_number", "_lock")
_STUDY_INFO_ATTRS = (
    "trials",
    "unfinished_trial_ids",
    "last_finished_trial_id",
    "param_distribution",
)


def check_optuna_internals() -> None:
    """Raise if the installed Optuna lacks a private name :class:`OwnedTrialStorage` uses.

    Raises:
        RuntimeError: Naming the missing attributes and the supported Optuna versions.
    """
    missing = [
        f"{owner}.{name}"
        for owner, (obj, names) in _REQUIRED_INTERNALS.items()
        for name in names
        if not hasattr(obj, name)
    ]
    missing += [
        f"optuna.storages._rdb.models.{owner} column {name}"
        for owner, (model, names) in _REQUIRED_COLUMNS.items()
        for name in names
        if name not in getattr(getattr(model, "__table__", None), "c", {})
    ]
    cache = _CachedStorage(optuna.storages.RDBStorage.__new__(optuna.storages.RDBStorage))
    missing += [f"_CachedStorage().{name}" for name in _CACHE_ATTRS if not hasattr(cache, name)]
    info = _StudyInfo()
    missing += [f"_StudyInfo().{name}" for name in _STUDY_INFO_ATTRS if not hasattr(info, name)]
    if missing:
        raise RuntimeError(f"{_OPTUNA_HINT}; missing: {', '.join(missing)}")


class OwnedTrialStorage(_CachedStorage):
    """``_CachedStorage`` plus an in-memory copy of the running trials this process created.

    Args:
        backend: The RDB storage to wrap (e.g. from :func:`hpo.storage.open_storage`).

    Example:
        >>> import optuna
        >>> storage = OwnedTrialStorage(optuna.storages.RDBStorage("sqlite://"))
        >>> study = optuna.create_study(storage=storage)
        >>> trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        >>> study.tell(trial, trial.params["x"]).state.name
        'COMPLETE'
    """

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        check_optuna_internals()
        super().__init__(backend)
        self._owned: dict[int, FrozenTrial] = {}
        self._owned_lock = threading.Lock()
        self._batch = threading.local()
        # Trials created here and maybe unfinished, per study (see get_all_trials).
        self._created: dict[int, set[int]] = {}

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_owned_lock"]
        del state["_batch"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._owned_lock = threading.Lock()
        self._batch = threading.local()

    @contextmanager
    def batched_params(self) -> Iterator[None]:
        """Write the parameters suggested inside the block in one transaction at its end.

        Meant for ``study.ask(space)`` (or a block of ``suggest_*`` calls): one commit instead
        of one per parameter. Only this thread's own running trials are batched; the
        parameters reach the database when the block ends, before any other write of the
        trial. On an error inside the block nothing is written.

        Example:
            >>> import optuna
            >>> storage = OwnedTrialStorage(optuna.storages.RDBStorage("sqlite://"))
            >>> study = optuna.create_study(storage=storage)
            >>> with storage.batched_params():
            ...     trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            >>> sorted(storage.backend.get_trial(trial._trial_id).params)
            ['x']
        """
        if getattr(self._batch, "pending", None) is not None:
            yield
            return
        self._batch.pending = []
        try:
            yield
            pending = self._batch.pending
        finally:
            self._batch.pending = None
        self._flush(pending)

    def _flush(self, pending: list[tuple[int, str, float, BaseDistribution]]) -> None:
        """Insert the batched parameters in one transaction (one state check per trial)."""
        if not pending:
            return
        with self._writing(*{trial_id for trial_id, *_ in pending}):
            retry_on_disconnect(lambda: self._insert_params(pending), what="set_trial_param")
        with self._lock:
            for trial_id, name, _, distribution in pending:
                study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                self._studies[study_id].param_distribution.setdefault(name, distribution)

    def _insert_params(self, pending: list[tuple[int, str, float, BaseDistribution]]) -> None:
        """One state check per trial, then one multi-row INSERT (SQLAlchemy Core without the
        ORM unit of work: 1.2-1.4 ms of client CPU per five parameters instead of 1.5-1.8)."""
        trial_ids = {trial_id for trial_id, *_ in pending}
        with _create_scoped_session(self._backend.scoped_session, True) as session:
            rows = session.execute(
                sqlalchemy.select(
                    models.TrialModel.trial_id, models.TrialModel.study_id, models.TrialModel.state
                ).where(models.TrialModel.trial_id.in_(trial_ids))
            ).all()
            study_of = {row.trial_id: row.study_id for row in rows}
            for row in rows:
                self._backend.check_trial_is_updatable(row.trial_id, row.state)
            if len(study_of) < len(trial_ids):
                raise KeyError(models.NOT_FOUND_MSG)
            records = []
            for trial_id, name, value, distribution in pending:
                previous = self._known_distribution(trial_id, name) or self._stored_distribution(
                    session, study_of[trial_id], name
                )
                if previous is not None:
                    distributions.check_distribution_compatibility(previous, distribution)
                records.append(
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": value,
                        "distribution_json": distributions.distribution_to_json(distribution),
                    }
                )
            session.execute(sqlalchemy.insert(models.TrialParamModel), records)

    @contextmanager
    def _writing(self, *trial_ids: int) -> Iterator[None]:
        """Drop the copies of trials that a write found finished by another process."""
        try:
            yield
        except UpdateFinishedTrialError:
            with self._owned_lock:
                for trial_id in trial_ids:
                    self._owned.pop(trial_id, None)
            raise

    @staticmethod
    def _stored_distribution(session: Any, study_id: int, name: str) -> BaseDistribution | None:
        """The distribution of ``name`` in any earlier trial of the study (as Optuna checks)."""
        record = (
            session.query(models.TrialParamModel)
            .join(models.TrialModel)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialParamModel.param_name == name)
            .first()
        )
        return (
            None if record is None else distributions.json_to_distribution(record.distribution_json)
        )

    @property
    def backend(self) -> optuna.storages.RDBStorage:
        """The wrapped RDB storage."""
        return self._backend

    def __getattr__(self, name: str) -> Any:
        # ``url``, ``engine``, ``remove_session``... of the RDB storage.
        if name.startswith("__") or name in ("_backend", "_owned", "_owned_lock"):
            raise AttributeError(name)
        return getattr(self._backend, name)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None and self._backend.engine.dialect.name == "postgresql":
            frozen = retry_on_disconnect(
                lambda: self._insert_running_trial(study_id), what="create_new_trial"
            )
            trial_id = frozen._trial_id
            with self._lock:
                self._studies.setdefault(study_id, _StudyInfo())
                self._add_trials_to_cache(study_id, [frozen])
        else:
            trial_id = super().create_new_trial(study_id, template_trial)
        with self._lock:
            _, number = self._trial_id_to_study_id_and_number[trial_id]
            study = self._studies[study_id]
            created = study.trials[number]
            mine = self._created.setdefault(study_id, set())
            mine.difference_update(
                [i for i in mine if study.trials[self._number(i)].state.is_finished()]
            )
            mine.add(trial_id)
        with self._owned_lock:
            # The previous trials of this process are finished by now; drop them.
            for owned_id in [i for i, t in self._owned.items() if t.state.is_finished()]:
                del self._owned[owned_id]
            if created.state == TrialState.RUNNING:
                self._owned[trial_id] = copy.deepcopy(created)
        return trial_id

    def _insert_running_trial(self, study_id: int) -> FrozenTrial:
        """``RDBStorage._create_new_trial`` without a template, in two statements instead of four.

        As Optuna does, the study row is locked first and the trial's number is the count of
        the study's earlier trials; the count is part of the INSERT, which runs after the lock
        is granted and so sees every trial committed before (PostgreSQL, READ COMMITTED). The
        lock is held for one round trip less.
        """
        trials = models.TrialModel.__table__
        started = datetime.now(UTC)
        with _create_scoped_session(self._backend.scoped_session) as session:
            study = session.execute(
                sqlalchemy.select(models.StudyModel.study_id)
                .where(models.StudyModel.study_id == study_id)
                .with_for_update()
            ).first()
            if study is None:
                raise KeyError(models.NOT_FOUND_MSG)
            earlier = (
                sqlalchemy.select(sqlalchemy.func.count())
                .select_from(trials)
                .where(trials.c.study_id == study_id)
                .scalar_subquery()
            )
            row = session.execute(
                sqlalchemy.insert(trials)
                .values(
                    number=earlier,
                    study_id=study_id,
                    state=TrialState.RUNNING,
                    # Stored as naive UTC, read back as naive local time (as the RDB models).
                    datetime_start=started.replace(tzinfo=None),
                )
                .returning(trials.c.trial_id, trials.c.number)
            ).one()
        return FrozenTrial(
            number=row.number,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=started.astimezone().replace(tzinfo=None),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=row.trial_id,
        )

    def _number(self, trial_id: int) -> int:
        return self._trial_id_to_study_id_and_number[trial_id][1]

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """As ``_CachedStorage``; unfinished states are looked up without scanning every trial.

        ``study.ask`` asks for the WAITING trials each time; the parent filters all cached
        trials for that (O(study size) per ask, 2 ms at 6,000 trials). An unfinished trial in
        the cache is either one the last read saw unfinished (``unfinished_trial_ids``) or one
        this process created, so only those are checked; the result is the same.
        """
        if not isinstance(states, tuple | list | set | frozenset) or not set(states) <= _UNFINISHED:
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if set(states) == {TrialState.WAITING} and not self._has_waiting_trial(study_id):
            return []
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            study = self._studies[study_id]
            ids = study.unfinished_trial_ids | self._created.get(study_id, set())
            found = [study.trials[self._number(i)] for i in ids]
            trials = sorted((t for t in found if t.state in states), key=lambda t: t.number)
        return copy.deepcopy(trials) if deepcopy else trials

    def _has_waiting_trial(self, study_id: int) -> bool:
        """Whether the study has a WAITING trial in the database (one ``SELECT ... LIMIT 1``)."""

        def query() -> bool:
            with _create_scoped_session(self._backend.scoped_session) as session:
                found = (
                    session.query(models.TrialModel.trial_id)
                    .filter(models.TrialModel.study_id == study_id)
                    .filter(models.TrialModel.state == TrialState.WAITING)
                    .limit(1)
                    .first()
                )
            return found is not None

        return retry_on_disconnect(query, what="looking for waiting trials")

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                return copy.deepcopy(owned)
        return super().get_trial(trial_id)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        pending = getattr(self._batch, "pending", None)
        with self._owned_lock:
            owned = self._owned.get(trial_id)
        if pending is not None and owned is not None and not owned.state.is_finished():
            if param_name in owned.distributions:
                raise ValueError(f"parameter {param_name!r} of trial {owned.number} is already set")
            distributions.check_distribution_compatibility(
                self._known_distribution(trial_id, param_name) or distribution, distribution
            )
            pending.append((trial_id, param_name, param_value_internal, distribution))
        else:
            with self._writing(trial_id):
                super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        with self._owned_lock:
            if owned is not None:
                owned.distributions[param_name] = distribution
                owned.params[param_name] = distribution.to_external_repr(param_value_internal)

    def _known_distribution(self, trial_id: int, name: str) -> BaseDistribution | None:
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            return self._studies[study_id].param_distribution.get(name)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            number = None if owned is None or owned.values is not None else owned.number
        with self._writing(trial_id):
            if number is not None and state.is_finished():
                completed = retry_on_disconnect(
                    lambda: self._finish_owned(trial_id, number, state, values),
                    what="set_trial_state_values",
                )
                done = completed is not None
            else:
                done = super().set_trial_state_values(trial_id, state=state, values=values)
                completed = datetime.now()
        if done and state.is_finished():
            # Finished here: no longer a candidate for the unfinished-trials lookup.
            with self._lock:
                key = self._trial_id_to_study_id_and_number.get(trial_id)
                if key is not None:
                    self._created.get(key[0], set()).discard(trial_id)
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            if owned is not None and done:
                owned.state = state
                if values is not None:
                    owned.values = list(values)
                if state.is_finished():
                    owned.datetime_complete = completed
        return done

    def _finish_owned(
        self, trial_id: int, number: int, state: TrialState, values: Sequence[float] | None
    ) -> datetime | None:
        """``RDBStorage.set_trial_state_values`` for a running trial of this process that has
        no value yet, in two statements instead of four.

        The state is changed only if the trial is still unfinished in the database (one
        conditional UPDATE, so a trial failed by another process is refused with
        ``UpdateFinishedTrialError`` as before), then the values are inserted.

        Returns:
            The completion time (naive local time, as the RDB storage reads it back), or None
            when the database refused the write as a duplicate (as Optuna returns False).
        """
        trials = models.TrialModel.__table__
        completed = datetime.now(UTC)
        try:
            with _create_scoped_session(self._backend.scoped_session) as session:
                updated = session.execute(
                    sqlalchemy.update(trials)
                    .where(trials.c.trial_id == trial_id)
                    .where(trials.c.state.in_([TrialState.RUNNING, TrialState.WAITING]))
                    .values(state=state, datetime_complete=completed.replace(tzinfo=None))
                ).rowcount
                if updated == 0:
                    found = session.execute(
                        sqlalchemy.select(trials.c.trial_id).where(trials.c.trial_id == trial_id)
                    ).first()
                    if found is None:
                        raise KeyError(models.NOT_FOUND_MSG)
                    raise UpdateFinishedTrialError(
                        f"Trial#{number} has already finished and can not be updated."
                    )
                if values:
                    stored = [models.TrialValueModel.value_to_stored_repr(v) for v in values]
                    session.execute(
                        sqlalchemy.insert(models.TrialValueModel),
                        [
                            {"trial_id": trial_id, "objective": i, "value": v, "value_type": kind}
                            for i, (v, kind) in enumerate(stored)
                        ],
                    )
        except sqlalchemy.exc.IntegrityError:
            return None
        return completed.astimezone().replace(tzinfo=None)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        with self._writing(trial_id):
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.intermediate_values[step] = intermediate_value

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._writing(trial_id):
            super().set_trial_user_attr(trial_id, key, value)
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.user_attrs[key] = _json_roundtrip(value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._writing(trial_id):
            super().set_trial_system_attr(trial_id, key, value)
        with self._owned_lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.system_attrs[key] = _json_roundtrip(value)


def _json_roundtrip(value: Any) -> Any:
    """The value as the RDB storage gives it back (it stores attributes as JSON)."""
    return json.loads(json.dumps(value))


__all__ = ["OwnedTrialStorage", "check_optuna_internals"]
