"""Security: storage passwords never leak; user strings never reach SQL or a shell.

Covered elsewhere (referenced in RELIABILITY.md): the dashboard binds 127.0.0.1 by default
and warns when exposed (``tests/hpo/test_dashboard.py``); docker-compose takes its secret from
the environment / a git-ignored ``.env``, the image runs as a non-root user and bakes in no
secret (``tests/test_deploy.py``).

The password tests run against a private PostgreSQL server with real password
authentication, so the password is needed (and therefore present) in every URL used here.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import optuna
import psycopg2
import pytest
import sqlalchemy
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from hpo.errors import StorageError
from hpo.storage import open_storage
from hpo.study import list_studies
from hpo.worker import _supervisor
from hpo.worker import run_worker
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import write_spec
from tests.reliability._private_pg import PrivatePostgres
from tests.reliability._procs import run_cli


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def secret_study(tmp_path: Path, private_pg: PrivatePostgres, mars_root: Path) -> tuple[str, Path]:
    """A study on the password-protected server: created and run (2 fake trials) via its URL."""
    url = private_pg.database()
    spec = spec_dict(name="secret", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=2)
    spec_file = write_spec(tmp_path / "secret.yaml", spec)
    assert _invoke("study", "create", str(spec_file), "--storage", url).exit_code == 0
    run_worker("secret", url, trainer_factory=fake_trainer_factory(), poll_interval_s=0.2)
    return url, spec_file


def test_password_is_never_printed_by_any_command(
    secret_study: tuple[str, Path], tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    url, spec_file = secret_study
    results = [
        _invoke("study", "create", str(spec_file), "--storage", url),  # exists: an error line
        _invoke("study", "create", str(spec_file), "--storage", url, "--resume"),
        _invoke("study", "list", "--storage", url),
        _invoke("study", "status", "secret", "--storage", url),
        _invoke("study", "status", "secret", "--storage", url, "--format", "json"),
        _invoke("study", "best", "secret", "--storage", url, "--format", "json"),
        _invoke("study", "export", "secret", "--format", "json", "--storage", url),
        _invoke("study", "status", "nope", "--storage", url),
        _invoke("study", "list", "--storage", url.replace(private_pg.password, "wrong-pw")),
        _invoke("study", "delete", "secret", "--storage", url, "--yes"),
    ]
    assert [r.exit_code for r in results] == [2, 0, 0, 0, 0, 0, 0, 2, 2, 0]
    assert "postgres:***@" in results[1].output
    for result in results:
        assert private_pg.password not in result.output
        assert "wrong-pw" not in result.output


def test_password_is_never_logged(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, private_pg: PrivatePostgres, mars_root: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    url = private_pg.database()
    spec = spec_dict(name="logged", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=2)
    spec_file = write_spec(tmp_path / "logged.yaml", spec)
    assert _invoke("--verbose", "study", "create", str(spec_file), "--storage", url).exit_code == 0
    run_worker("logged", url, trainer_factory=fake_trainer_factory(), poll_interval_s=0.2)
    assert _invoke("--verbose", "study", "status", "logged", "--storage", url).exit_code == 0
    with pytest.raises(StorageError):
        open_storage(url.replace(private_pg.password, "wrong-pw"))
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert private_pg.password not in caplog.text
    assert "wrong-pw" not in caplog.text


def _all_text_in_database(url: str) -> str:
    """Every value of every table of the database, as text."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            metadata = sqlalchemy.MetaData()
            metadata.reflect(conn)
            chunks = []
            for table in metadata.sorted_tables:
                chunks.extend(repr(tuple(row)) for row in conn.execute(table.select()))
        return "\n".join(chunks)
    finally:
        engine.dispose()


def test_password_is_not_stored_in_the_database(
    secret_study: tuple[str, Path], private_pg: PrivatePostgres
) -> None:
    url, _ = secret_study
    study = optuna.load_study(study_name="secret", storage=url)
    assert "spec" in study.user_attrs and len(study.trials) == 2
    dump = _all_text_in_database(url)
    assert "secret" in dump and "127.0.0.1" not in dump
    assert private_pg.password not in dump


def test_password_is_not_written_in_reports_or_exports(
    secret_study: tuple[str, Path], tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    url, _ = secret_study
    report = tmp_path / "report.html"
    exported = tmp_path / "trials.csv"
    assert (
        _invoke("study", "report", "secret", "--out", str(report), "--storage", url).exit_code == 0
    )
    assert (
        _invoke(
            "study", "export", "secret", "--format", "csv", "--out", str(exported), "--storage", url
        )
    ).exit_code == 0
    assert "secret" in report.read_text(encoding="utf-8")  # the report names its study
    assert len(exported.read_text(encoding="utf-8").splitlines()) > 1  # a header and trials
    for path in (report, exported):
        assert private_pg.password not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:{pw}@127.0.0.1:1/reid",
        "postgresql://alice:{pw}@127.0.0.1:{port}/no_such_db",
        "postgresql://postgres:{pw}@127.0.0.1:{port}/postgres",
        "mysql://alice:{pw}@127.0.0.1/reid",
        "postgresql://alice:{pw}@[::1/reid",
        "postgresql://127.0.0.1:{port}/postgres?user=postgres&password={pw}",
    ],
    ids=[
        "unreachable",
        "no_database",
        "wrong_password",
        "no_driver",
        "malformed",
        "query_password",
    ],
)
def test_password_is_never_in_exception_messages(url: str, private_pg: PrivatePostgres) -> None:
    secret = "Sup3r-S3cret-Pw"
    with pytest.raises(StorageError) as info:
        open_storage(url.format(pw=secret, port=private_pg.port))
    assert secret not in str(info.value)
    assert secret not in repr(info.value.args)


def test_password_reaches_worker_processes_through_the_environment_not_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    class _Recorder:
        def __init__(self, command: list[str], *, env: dict[str, str], **_: object) -> None:
            seen.append((command, env))
            self.pid = 1

    monkeypatch.setattr(_supervisor.subprocess, "Popen", _Recorder)
    url = "postgresql+psycopg2://alice:Sup3r-S3cret-Pw@db/reid"
    _supervisor._spawn("study", url, None, None, None)
    ((command, env),) = seen
    assert not any("Sup3r-S3cret-Pw" in part for part in command)  # argv is visible in `ps`
    assert env["REID_HPO_STORAGE"] == url


# ----------------------------------------------------------------- SQL and shell injection

_SQL_CALLS = {"execute", "exec_driver_sql", "executemany", "text", "mogrify"}
_SHELL_CALLS = {"system", "popen", "getoutput", "getstatusoutput"}
# Identifiers cannot be bound parameters: these interpolate a name the code generated itself.
_ALLOWED = {
    ("hpo/bench/_storage.py", "CREATE DATABASE"),
    ("hpo/bench/_storage.py", "DROP DATABASE"),
}


def _is_built_string(node: ast.AST) -> bool:
    """An f-string, ``"..." % x``, ``"..." + x`` or ``"...".format(x)``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _findings() -> list[str]:
    findings = []
    for path in sorted((REPO_ROOT / "hpo").rglob("*.py")) + sorted(
        (REPO_ROOT / "reid_core").rglob("*.py")
    ):
        relative = path.relative_to(REPO_ROOT).as_posix()
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            where = f"{relative}:{node.lineno}"
            segment = ast.get_source_segment(source, node) or ""
            built_sql = name in _SQL_CALLS and node.args and _is_built_string(node.args[0])
            allowed = any(relative == f and marker in segment for f, marker in _ALLOWED)
            if built_sql and not allowed:
                findings.append(f"{where}: SQL built from a string: {segment[:80]}")
            module = getattr(getattr(node.func, "value", None), "id", "")
            if name in _SHELL_CALLS and (module == "os" or name.startswith("get")):
                findings.append(f"{where}: shell call {name}()")
            for keyword in node.keywords:
                is_true = isinstance(keyword.value, ast.Constant) and keyword.value.value is True
                if keyword.arg == "shell" and is_true:
                    findings.append(f"{where}: subprocess with shell=True")
    return findings


def test_no_sql_or_shell_command_is_built_from_strings() -> None:
    assert _findings() == []


def test_the_scanner_flags_interpolated_sql(tmp_path: Path) -> None:
    bad = ast.parse("conn.execute(f\"SELECT * FROM studies WHERE name = '{name}'\")")
    call = next(n for n in ast.walk(bad) if isinstance(n, ast.Call) and _call_name(n) == "execute")
    assert _is_built_string(call.args[0])
    good = ast.parse('conn.execute(text("SELECT 1 WHERE x = :x"), {"x": name})')
    call = next(n for n in ast.walk(good) if isinstance(n, ast.Call) and _call_name(n) == "execute")
    assert not _is_built_string(call.args[0])


HOSTILE_NAMES = ["x'; DROP TABLE studies; --", "$(touch {tmp}/pwned)", 'a"; DROP TABLE trials; --']


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_study_names_work_and_harm_nothing(
    hostile: str, tmp_path: Path, postgres_url: str
) -> None:
    name = hostile.format(tmp=tmp_path)
    optuna.create_study(study_name=name, storage=postgres_url)
    optuna.create_study(study_name="bystander", storage=postgres_url)
    results = [
        _invoke("study", "list", "--storage", postgres_url),
        _invoke("study", "status", name, "--storage", postgres_url),
        _invoke("study", "export", name, "--format", "json", "--storage", postgres_url),
        _invoke("study", "delete", name, "--yes", "--storage", postgres_url),
        _invoke("study", "status", name, "--storage", postgres_url),
    ]
    assert [r.exit_code for r in results] == [0, 0, 0, 0, 2], [r.output for r in results]
    assert [info.name for info in list_studies(postgres_url)] == ["bystander"]
    assert not (tmp_path / "pwned").exists()


def test_hostile_name_in_a_spec_is_refused_in_one_line(tmp_path: Path) -> None:
    spec = spec_dict(name="x'; DROP TABLE studies; --", data_root=tmp_path, artifacts=tmp_path)
    spec_file = write_spec(tmp_path / "hostile.yaml", spec)
    result = _invoke("study", "create", str(spec_file), "--storage", f"sqlite:///{tmp_path}/s.db")
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "name" in result.output


def test_hostile_name_given_to_a_worker_runs_no_shell(tmp_path: Path, postgres_url: str) -> None:
    marker = tmp_path / "pwned"
    name = f"$(touch {marker}); `touch {marker}`"
    done = run_cli("worker", name, "--gpus", "none", "--storage", postgres_url)
    assert done.returncode == 2
    assert "no study" in done.stderr
    assert not marker.exists()


def test_injection_leaves_the_schema_intact(postgres_url: str) -> None:
    name = "x'; DROP TABLE studies; --"
    study = optuna.create_study(study_name=name, storage=postgres_url)
    study.set_user_attr("note", "'); DELETE FROM trials; --")
    conn = psycopg2.connect(postgres_url.replace("postgresql+psycopg2", "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT study_name FROM studies")
            assert cur.fetchall() == [(name,)]
    finally:
        conn.close()


def test_every_libpq_secret_parameter_is_known_and_masked() -> None:
    from psycopg import pq

    from hpo.url_secrets import SECRET_PARAMETERS
    from hpo.url_secrets import mask_url

    options = {o.keyword.decode(): (o.dispchar or b"").decode() for o in pq.Conninfo.get_defaults()}
    secret = {keyword for keyword, dispchar in options.items() if dispchar == "*"}
    assert {"password", "sslpassword"} <= secret  # libpq still marks its password fields
    assert secret <= SECRET_PARAMETERS
    assert {
        k for k in options if k.startswith("scram_") and k.endswith("_key")
    } <= SECRET_PARAMETERS
    for keyword in options:
        masked = mask_url(f"postgresql://u@h/db?{keyword}=Zq9xK&{keyword.upper()}=Zq9xK")
        assert ("Zq9xK" in masked) == (keyword not in SECRET_PARAMETERS), keyword


SECRET_URLS = {
    "sslpassword": "postgresql://postgres@127.0.0.1:{port}/postgres?sslpassword={pw}",
    "encoded_key": "postgresql://postgres@127.0.0.1:{port}/postgres?sslpass%77ord={pw}",
    "oauth_client_secret": "postgresql://postgres@127.0.0.1:1/reid?oauth_client_secret={pw}",
    "password_with_hash": "postgresql://postgres@127.0.0.1:1/reid?password=a%23{pw}",
}


@pytest.mark.parametrize("case", sorted(SECRET_URLS))
def test_secret_parameters_are_never_printed(case: str, tmp_path: Path) -> None:
    secret = "Sup3r-S3cret-Pw"
    url = SECRET_URLS[case].format(pw=secret, port=1)
    result = _invoke("study", "list", "--storage", url)
    assert result.exit_code == 2 and result.output.startswith("Error: cannot open storage")
    assert secret not in result.output and "***" in result.output


@pytest.mark.parametrize("parameter", ["password", "sslpassword", "oauth_client_secret"])
def test_a_warm_start_url_with_a_secret_is_not_stored(
    parameter: str, tmp_path: Path, postgres_url: str, mars_root: Path
) -> None:
    spec = spec_dict(name="warm", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=2)
    spec["warm_start"] = {
        "from_study": {"name": "old", "storage": f"{postgres_url}?{parameter}=Zq9xKsecret"}
    }
    spec_file = write_spec(tmp_path / "warm.yaml", spec)
    result = _invoke("study", "create", str(spec_file), "--storage", postgres_url)
    assert result.exit_code == 2, result.output
    assert "warm_start.from_study.storage" in result.output
    assert "carries a credential" in result.output
    assert "Zq9xKsecret" not in result.output
    assert list_studies(postgres_url) == []


def test_study_list_prints_control_characters_escaped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'names.db'}"
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\nsecond line\r[bold]x[/bold]"
    optuna.create_study(study_name=hostile, storage=url)
    optuna.create_study(study_name="café-ü", storage=url)
    result = _invoke("study", "list", "--storage", url)
    assert result.exit_code == 0, result.output
    assert not any(c in result.output for c in "\x1b\x07\r")
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\nsecond line\\r[bold]x[/bold]" in result.output
    assert "café-ü" in result.output
    assert not any(line.startswith("second line") for line in result.output.splitlines())
