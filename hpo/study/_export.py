"""Exporting a study's trials as CSV (one row per trial) or JSON (study + trials)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from hpo.errors import ReidHpoError
from hpo.study._accounting import compute_account
from hpo.study._lifecycle import StorageLike
from hpo.study._lifecycle import reading
from hpo.study.records import direction_name
from hpo.study.records import read_spec_or_none
from hpo.study.records import stored_retrain_result
from hpo.study.records import stored_test_result
from reid_core.files import output_file_target
from reid_core.files import write_output_file


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _trial_record(t: FrozenTrial) -> dict[str, Any]:
    duration = t.duration.total_seconds() if t.duration else None
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "datetime_start": _iso(t.datetime_start),
        "datetime_complete": _iso(t.datetime_complete),
        "duration_s": duration,
        "params": dict(t.params),
        # Optuna's steps are 0-based epoch indices; a person reads the epoch after which the
        # value was reported (1-based), as everywhere else.
        "val_by_epoch": {str(k + 1): v for k, v in sorted(t.intermediate_values.items())},
        "user_attrs": dict(t.user_attrs),
        "retry_of": t.system_attrs.get("failed_trial"),
    }


def _flat_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k not in ("params", "user_attrs")}
    row["val_by_epoch"] = json.dumps(record["val_by_epoch"])
    for key, value in record["params"].items():
        row[f"params_{key}"] = value
    for key, value in record["user_attrs"].items():
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            for sub, sub_value in value.items():
                row[f"user_attrs_{key}_{sub}"] = sub_value
        elif isinstance(value, dict | list):
            row[f"user_attrs_{key}"] = json.dumps(value)
        else:
            row[f"user_attrs_{key}"] = value
    return row


def _add_result_columns(
    rows: list[dict[str, Any]], prefix: str, result: dict[str, Any] | None
) -> None:
    """The stored test (or retrain) metrics as ``<prefix>_<metric>`` columns of the row of the
    trial they belong to."""
    if not result or not isinstance(result.get("metrics"), dict):
        return
    for row in rows:
        if row["number"] == result.get("trial"):
            for key, value in result["metrics"].items():
                row[f"{prefix}_{key}"] = value


def export_trials(
    name: str, storage_url: StorageLike, fmt: str, out: str | Path | None = None
) -> str:
    """Every trial of a study as CSV (one row per trial) or JSON (study + trials).

    CSV columns: number, state, value, datetimes, duration_s, val_by_epoch (JSON: the
    objective reported after each evaluated epoch, keyed by the 1-based epoch; Optuna's
    intermediate values, whose steps are 0-based),
    retry_of, then ``params_<name>`` and ``user_attrs_<key>`` (dict attrs such as
    ``val_metrics`` are spread into ``user_attrs_val_metrics_<metric>``), and on the row of the
    trial they belong to the stored one-off test metrics (``test_<metric>``, fractions) and the
    retrained model's (``retrain_<metric>``). The JSON adds the study's ``compute`` account.

    Args:
        name: The study name.
        storage_url: Storage URL or an open storage.
        fmt: ``"csv"`` or ``"json"``.
        out: Also write the text to this file.

    Returns:
        The exported text.

    Raises:
        StudyNotFoundError: No such study.
        ReidHpoError: Unknown format.
        OutputFileError: ``out`` is refused by :func:`reid_core.files.write_output_file`.
    """
    if fmt not in ("csv", "json"):
        raise ReidHpoError(f"unknown export format {fmt!r}; expected csv or json")
    if out is not None:
        output_file_target(out, what="the export")
    with reading(name, storage_url, "`study export` read it") as (storage, _, study_id):
        trials = storage.get_all_trials(study_id, deepcopy=False)
        direction = direction_name(storage.get_study_directions(study_id))
        attrs = storage.get_study_user_attrs(study_id)
    records = [_trial_record(t) for t in sorted(trials, key=lambda t: t.number)]
    if fmt == "json":
        spec = read_spec_or_none(attrs, name)
        document = {
            "study": name,
            "direction": direction,
            "spec": spec.model_dump(mode="json") if spec else None,
            "test_result": stored_test_result(attrs),
            "retrain_result": stored_retrain_result(attrs),
            "compute": compute_account(trials, spec.training.epochs if spec else None).to_dict(),
            "trials": records,
        }
        text = json.dumps(document, indent=2, default=str) + "\n"
    else:
        rows = [_flat_row(r) for r in records]
        _add_result_columns(rows, "test", stored_test_result(attrs))
        _add_result_columns(rows, "retrain", stored_retrain_result(attrs))
        fixed = ["number", "state", "value", "datetime_start", "datetime_complete", "duration_s"]
        fixed += ["val_by_epoch", "retry_of"]
        extra = sorted({key for row in rows for key in row} - set(fixed))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fixed + extra, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if out is not None:
        write_output_file(out, text, what="the export")
    return text


__all__ = ["export_trials"]
