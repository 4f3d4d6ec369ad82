"""Every command example a user reads is run here, as typed.

The examples are extracted from README.md and deploy/README.md (``bash`` code blocks) and from
the ``Example:`` / ``Examples:`` lines of every command's ``--help``
(:mod:`tests._helpers.doc_examples`). Each test below names the examples it runs; the first
test fails when a documented example is named by no test (a new example needs a test) or a
named one is no longer documented. README's "From a study to the reference's table" lines are
run by tests/hpo/test_readme_table.py, from that module's own extraction.

``reid-hpo`` examples run in process through the Typer app (the console script's code), in a
fresh working directory laid out as the example expects (``data/mars``, ``studies/``), with
the storage the example names: the default ``sqlite:///reid_hpo.db`` of that directory, or
the real PostgreSQL through a plain ``postgresql://`` URL on a fresh database. Cheap settings
are appended to an example where its full cost does not fit a test (the last occurrence of an
option wins); each such place says so. Examples that cannot run here (Docker, Kubernetes,
SLURM, GPUs) are checked as far as this machine allows, and say why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from tests._helpers.doc_examples import ROOT
from tests._helpers.doc_examples import documented_examples
from tests._helpers.fake_study import add_fake_trials
from tests._helpers.fake_study import make_study
from tests._helpers.net import free_port
from tests._helpers.net import get_json
from tests._helpers.postgres import fresh_database
from tests._helpers.waits import scaled
from tests.test_deploy import ENTRYPOINT
from tests.test_deploy import run_entrypoint

DOCUMENTED = documented_examples()
BIN = Path(sys.executable).parent
SERVER_START_S = 60

# ----------------------------------------------------------------- the tested examples

MAKE = ["make demo", "make test", "source .venv/bin/activate"]
README_FIRST_RUN = [
    "reid-hpo --version",
    "reid-hpo data synth data/mars --layout mars --seed 0 --ids 32",
    "reid-hpo data check data/mars --dataset mars",
    "reid-hpo train --dataset mars --root data/mars --backbone resnet10 --no-pretrained "
    "--attention pooled --height 64 --width 32 --pad 4 --batch-size 16 --epochs 6 "
    "--eval-every 2 --warmup-epochs 1 --lr 1e-3 --milestones 4 --num-workers 0 "
    "--output runs/train",
    "reid-hpo evaluate runs/train/last.pt --rerank",
]
HELP_TRAIN = [
    "reid-hpo data synth data/mars --layout mars",
    "reid-hpo train --dataset mars --root data/mars --backbone resnet18 --no-pretrained "
    "--height 64 --width 32 --epochs 5 --eval-every 1 --output runs/train",
]
HELP_DATA = [
    "reid-hpo data synth data/mars --layout mars --ids 32 --seed 0",
    "reid-hpo data check /datasets/MARS --dataset mars --mars-gallery official",
    "reid-hpo data check data/prid --dataset prid --split-id 3",
]
README_POSTGRES_STUDY = [
    "export REID_HPO_STORAGE=postgresql://reid@dbhost/reid_hpo",
    "reid-hpo study create studies/mars_map_random.yaml",
    "reid-hpo worker mars-map-random --gpus all",
    "reid-hpo study status mars-map-random --watch",
    "reid-hpo study best mars-map-random",
    "reid-hpo study test mars-map-random",
    "reid-hpo study report mars-map-random --out report.html",
    "reid-hpo study list --format json",
    "reid-hpo study retrain mars-map-random --gpus 0",
    "reid-hpo study test mars-map-random --device cuda",
    "reid-hpo dashboard",
    "reid-hpo study tensorboard mars-map-random",
]
SHIPPED_SPEC_ON_SQLITE = [
    "reid-hpo study plan studies/mars_map_random.yaml --root data/mars",
    "reid-hpo study plan studies/mars_map_random.yaml --measure 20 --format json",
    "reid-hpo study status mars-map-random",
    "reid-hpo study status mars-map-random --watch --interval 10",
    "reid-hpo study best mars-map-random --format json",
    "reid-hpo study list --storage sqlite:///reid_hpo.db --format json",
    "reid-hpo study export mars-map-random --format csv --out trials.csv",
    "reid-hpo study delete old-study --yes",
    "reid-hpo worker mars-map-random --gpus 0,1",
    "reid-hpo dashboard --port 8080",
]
DEMO = [
    "reid-hpo demo",
    "reid-hpo demo --storage postgresql://postgres@127.0.0.1/reid_hpo --trials 4",
    "reid-hpo study plan studies/demo.yaml --measure 5 --format json",
    "reid-hpo study run studies/demo.yaml --gpus none",
]
BENCH = [
    "reid-hpo bench --list",
    "reid-hpo bench ranking --quick --out bench-results",
    "reid-hpo bench rerank --out bench-results",
]
DOCTOR_WEIGHTS = [
    "reid-hpo doctor",
    "reid-hpo doctor --gpus 0,1 --spec studies/mars_map_random.yaml",
    "reid-hpo weights fetch",
    "reid-hpo weights fetch --dest weights",
]
COMPOSE = [
    "cp .env.example .env && chmod 600 .env",
    "install -d -m 700 secrets",
    "openssl rand -hex 24 > secrets/postgres_password && chmod 644 secrets/postgres_password",
    "docker compose build",
    "docker compose up -d postgres dashboard",
    "docker compose run --rm fetch-weights",
    "docker compose run --rm create-study",
    "docker compose up -d worker-gpu0 worker-gpu1",
    "docker compose logs -f worker-gpu0",
    "docker compose run --rm dashboard study status mars-map-random",
    "docker compose down",
]
KUBERNETES = [
    "kubectl create namespace reid-hpo",
    "install -D -m 600 /dev/null ~/.config/reid-hpo/postgres-password",
    "openssl rand -hex 24 > ~/.config/reid-hpo/postgres-password",
    "kubectl -n reid-hpo create secret generic reid-hpo-postgres "
    '--from-file="$HOME/.config/reid-hpo/postgres-password"',
    "kubectl apply -f deploy/kubernetes/postgres.yaml",
    "kubectl -n reid-hpo rollout status statefulset/postgres --timeout=5m",
    "kubectl apply -f deploy/kubernetes/pvc.yaml",
    "kubectl apply -f deploy/kubernetes/weights.yaml",
    "kubectl -n reid-hpo wait --for=condition=complete job/reid-hpo-weights --timeout=10m",
    "install -D -m 600 /dev/null ~/.config/reid-hpo/storage-url",
    "url='postgresql://reid:<password>@postgres.reid-hpo.svc.cluster.local:5432/reid_hpo'",
    "printf '%s\\n' \"${url/<password>/$(cat ~/.config/reid-hpo/postgres-password)}\" "
    "> ~/.config/reid-hpo/storage-url",
    "kubectl -n reid-hpo create secret generic reid-hpo-storage "
    '--from-file=url="$HOME/.config/reid-hpo/storage-url"',
    "kubectl apply -f deploy/kubernetes/worker-job.yaml",
    "kubectl -n reid-hpo get pods -l app.kubernetes.io/component=worker",
    "kubectl -n reid-hpo logs -f job/reid-hpo-worker",
    "kubectl -n reid-hpo delete job reid-hpo-worker",
]
SLURM = [
    "mkdir -p ~/.config/reid-hpo",
    "install -m 600 /dev/null ~/.config/reid-hpo/storage.env",
    "echo 'REID_HPO_STORAGE=postgresql://reid:<password>@dbhost:5432/reid_hpo' "
    ">> ~/.config/reid-hpo/storage.env",
    "REID_HPO_STORAGE=\"$(sed -n 's/^REID_HPO_STORAGE=//p' ~/.config/reid-hpo/storage.env)\" "
    "reid-hpo study create studies/mars_map_random.yaml",
    "sbatch deploy/slurm/worker_array.sbatch mars-map-random",
    "sbatch --array=0-31%8 deploy/slurm/worker_array.sbatch mars-map-random",
    "squeue --me",
]
REPRODUCTION = [
    "reid-hpo train --preset bot_osm_cl --dataset mars --root data/mars --no-validation "
    "--output runs/bot_osm_cl",
    "reid-hpo evaluate runs/bot_osm_cl/last.pt --rerank",
]
TESTED = [
    *MAKE,
    *REPRODUCTION,
    *README_FIRST_RUN,
    *HELP_TRAIN,
    *HELP_DATA,
    *README_POSTGRES_STUDY,
    *SHIPPED_SPEC_ON_SQLITE,
    *DEMO,
    *BENCH,
    *DOCTOR_WEIGHTS,
    *COMPOSE,
    *KUBERNETES,
    *SLURM,
]


def _run_by_other_tests() -> set[str]:
    """Examples another test module runs: README's "From a study to the reference's table"
    lines, each run by tests/hpo/test_readme_table.py from its own extraction."""
    from tests.hpo.test_readme_table import readme_table_commands

    return {shlex.join(["reid-hpo", *command]) for command in readme_table_commands()}


def test_every_documented_example_is_tested() -> None:
    tested = {*TESTED, *_run_by_other_tests()}
    untested = {example: DOCUMENTED[example] for example in DOCUMENTED if example not in tested}
    assert not untested, f"documented examples no test runs (add them here): {untested}"
    stale = [example for example in TESTED if example not in DOCUMENTED]
    assert not stale, f"tested examples no longer documented: {stale}"


def test_the_extraction_sees_each_kind_of_source() -> None:
    where = {source for sources in DOCUMENTED.values() for source in sources}
    assert {"README.md", "deploy/README.md", "reid-hpo study status --help"} <= where
    # Continuation lines are joined and comments cut, in code blocks and in --help epilogs.
    assert DOCUMENTED[README_FIRST_RUN[3]] == ["README.md"]
    assert DOCUMENTED[HELP_TRAIN[1]] == ["reid-hpo train --help"]
    assert "reid-hpo study create studies/mars_map_random.yaml" in DOCUMENTED


# ----------------------------------------------------------------------------- helpers


class Examples:
    """The examples one test runs: each must be documented and run (or checked) once."""

    def __init__(self, examples: list[str]) -> None:
        self.left = list(examples)

    def take(self, example: str) -> str:
        assert example in DOCUMENTED, example
        self.left.remove(example)
        return example

    def cli(self, example: str, *extra: str, code: int = 0) -> Result:
        """Run a ``reid-hpo`` example (plus ``extra`` arguments) and check its exit code."""
        words = shlex.split(self.take(example))
        assert words[0] == "reid-hpo", example
        result = CliRunner().invoke(app, [*words[1:], *extra])
        assert result.exit_code == code, f"{example} {' '.join(extra)}\n{result.output}"
        if code == 2:  # a user error: one line
            assert [line for line in result.output.splitlines() if line.strip()][-1].startswith(
                "Error: "
            ), result.output
        return result

    def done(self) -> None:
        assert not self.left, f"not run: {self.left}"


def _error_line(result: Result) -> str:
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    return line


class _Server:
    """A server command in a subprocess, stopped on exit."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=scaled(10))


def _metric_names_served(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Start a dashboard ``command`` on a free port (appended ``--port``) and return, per study,
    the objective names its API reports (optuna-dashboard calls them ``objective_names``)."""
    port = free_port()
    with _Server([*command, "--port", str(port)], cwd, env):
        base = f"http://127.0.0.1:{port}"  # the Host header reid-hpo's guard answers
        studies = get_json(f"{base}/api/studies", timeout_s=SERVER_START_S)["study_summaries"]
        return {
            study["study_name"]: get_json(
                f"{base}/api/studies/{study['study_id']}", timeout_s=SERVER_START_S
            ).get("objective_names")
            for study in studies
        }


def _plain_url(sqlalchemy_url: str) -> str:
    """The fresh database's URL as users type it: ``postgresql://`` without a driver."""
    assert sqlalchemy_url.startswith("postgresql+psycopg2://")
    return "postgresql://" + sqlalchemy_url.removeprefix("postgresql+psycopg2://")


def _with_database(documented_url: str, fresh_url: str) -> str:
    """The fresh database in place of the documented one (whose host and role do not exist
    here), as a URL of the documented kind: plain ``postgresql://``, no driver named."""
    assert documented_url.startswith("postgresql://"), documented_url
    return _plain_url(fresh_url)


def _env_without_storage() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REID_HPO_STORAGE"}


def _no_gpu_here() -> None:
    """The examples naming GPUs are checked for their refusal on this machine: it has none."""
    import torch

    assert not torch.cuda.is_available(), "these checks expect a machine without a GPU"


@pytest.fixture(scope="module")
def mars32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic MARS of 32 identities (seed 0), copied where a test needs ``data/mars``."""
    from reid_core.data import write_synthetic

    return Path(write_synthetic(tmp_path_factory.mktemp("mars32") / "mars", "mars", ids=32))


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory holding the shipped ``studies/``."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    return tmp_path


def _cheap_spec(name: str, root: str, artifacts: str, n_trials: int) -> dict[str, Any]:
    """studies/demo.yaml cut to 2 epochs (1 at the first LR), as ``name`` on ``root``."""
    spec = yaml.safe_load((ROOT / "studies" / "demo.yaml").read_text())
    spec["name"] = name
    spec["dataset"]["root"] = root
    spec["artifacts"]["root"] = artifacts
    spec["training"].update(epochs=2, milestones=[1])
    spec["budget"]["n_trials"] = n_trials
    return spec


# ------------------------------------------------------------------- make and the venv


def test_make_targets_as_in_readme() -> None:
    # `make demo` runs the full 8-trial demo and `make test` this whole suite (it would call
    # itself): checked by make's dry run, which names what each would run. The demo's command
    # is run below; the venv README activates is the one the Makefile creates.
    examples = Examples(MAKE)

    def dry_run(example: str) -> str:
        command = shlex.split(example)
        assert command[0] == "make", example
        result = subprocess.run(
            [*command, "-n", "-B"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert ".venv/bin/reid-hpo demo" in dry_run(examples.take("make demo"))
    assert ".venv/bin/python -m pytest" in dry_run(examples.take("make test"))
    activate = examples.take("source .venv/bin/activate").split()[1]
    assert "-m venv .venv" in dry_run("make install")
    assert activate == ".venv/bin/activate"
    examples.done()


# ------------------------------------------------------------- data, train, evaluate


def test_readme_first_run(workdir: Path) -> None:
    examples = Examples(README_FIRST_RUN)
    from hpo import __version__

    assert examples.cli("reid-hpo --version").output == f"reid-hpo {__version__}\n"
    examples.cli(README_FIRST_RUN[1])
    assert (workdir / "data/mars/info/tracks_train_info.mat").is_file()
    assert "query" in examples.cli(README_FIRST_RUN[2]).output
    examples.cli(README_FIRST_RUN[3])
    assert (workdir / "runs/train/last.pt").is_file()
    result = examples.cli(README_FIRST_RUN[4])
    assert "re-ranked" in result.output
    metrics = json.loads((workdir / "runs/train/last.test.json").read_text())
    assert json.dumps(metrics)
    examples.done()


def _reproduction_rows() -> list[list[str]]:
    """The per-row commands of docs/reproduction.md's table, as argument lists."""
    text = (ROOT / "docs" / "reproduction.md").read_text(encoding="utf-8")
    cells = re.findall(r"^\|[^|\n]*\| `(reid-hpo train [^`]*)` \|$", text, re.M)
    return [shlex.split(cell) for cell in cells]


def test_reproduction_walkthrough_and_its_row_commands(workdir: Path) -> None:
    from reid_core.data import write_synthetic
    from reid_core.presets import PRESETS

    examples = Examples(REPRODUCTION)
    write_synthetic(Path("data/mars"), "mars", ids=8, frames=6, height=32, width=16)
    # Cheap: a tiny model for one epoch (the preset's recipe is 800 full-size epochs).
    examples.cli(REPRODUCTION[0], "--backbone", "resnet10", "--attention", "pooled",
                 "--no-pretrained", "--height", "32", "--width", "16", "--seq-len", "2",
                 "--batch-size", "4", "--num-instances", "2", "--num-workers", "0",
                 "--device", "cpu", "--epochs", "1")  # fmt: skip
    result = examples.cli(REPRODUCTION[1], "--device", "cpu", "--num-workers", "0")
    assert "re-ranked" in result.output
    assert json.loads((workdir / "runs/bot_osm_cl/last.test.json").read_text())
    examples.done()
    # Each row's command is the walk-through's with its own preset, dataset and folder.
    rows = _reproduction_rows()
    assert [row[row.index("--preset") + 1] for row in rows] == [
        "baseline", "bot", "bot_osm", "bot_osm_cl", "bbot_attn_cl", "bot_osm_cl_prid",
        "bot_osm_cl_prid",
    ]  # fmt: skip
    options = {word for word in shlex.split(REPRODUCTION[0]) if word.startswith("--")}
    for row in rows:
        preset, dataset = row[row.index("--preset") + 1], row[row.index("--dataset") + 1]
        assert preset in PRESETS and dataset == ("prid" if preset.endswith("_prid") else "mars")
        assert {word for word in row if word.startswith("--")} - options <= {"--init-from"}, row
        assert options <= set(row) and row[row.index("--root") + 1] == f"data/{dataset}", row


def test_help_train_example(workdir: Path) -> None:
    examples = Examples(HELP_TRAIN)
    examples.cli(HELP_TRAIN[0])
    # Cheap: 1 epoch and batches of 8 instead of 5 epochs of the default batch.
    examples.cli(HELP_TRAIN[1], "--epochs", "1", "--batch-size", "8", "--num-workers", "0")
    assert (workdir / "runs/train/last.pt").is_file()
    examples.done()


def test_help_data_examples(workdir: Path, mars32: Path) -> None:
    examples = Examples(HELP_DATA)
    examples.cli(HELP_DATA[0])
    assert (workdir / "data/mars/info/query_IDX.mat").is_file()
    # /datasets/MARS is the real dataset's place on a user's machine, not here: the example
    # as typed ends in the one-line error naming it; the same options on a synthetic MARS pass.
    result = examples.cli(HELP_DATA[1], code=2)
    assert _error_line(result).startswith("Error: mars: /datasets/MARS not found")
    words = shlex.split(HELP_DATA[1])[1:]
    words[words.index("/datasets/MARS")] = str(mars32)
    result = CliRunner().invoke(app, words)
    assert result.exit_code == 0, result.output
    CliRunner().invoke(app, ["data", "synth", "data/prid", "--layout", "prid"])
    assert "gallery" in examples.cli(HELP_DATA[2]).output
    examples.done()


# --------------------------------------------------------- a study on the real PostgreSQL


def test_readme_study_on_postgres(
    workdir: Path, mars32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's study walk-through with the storage in $REID_HPO_STORAGE, a plain
    ``postgresql://`` URL. studies/mars_map_random.yaml is here the demo's small recipe (2
    epochs, 1 trial) under the shipped name: the shipped 121-epoch ResNet-50 spec is created,
    planned and read back by test_shipped_spec_on_sqlite."""
    examples = Examples(README_POSTGRES_STUDY)
    shutil.copytree(mars32, workdir / "data/mars")
    spec = _cheap_spec("mars-map-random", "data/mars", "runs", n_trials=1)
    (workdir / "studies/mars_map_random.yaml").write_text(yaml.safe_dump(spec))
    with fresh_database() as fresh:
        _, documented = examples.take(README_POSTGRES_STUDY[0]).split(" ", 1)[1].split("=", 1)
        url = _with_database(documented, fresh)
        monkeypatch.setenv("REID_HPO_STORAGE", url)

        assert "Created study 'mars-map-random'" in examples.cli(README_POSTGRES_STUDY[1]).output
        _no_gpu_here()
        result = examples.cli(README_POSTGRES_STUDY[2], code=2)
        assert "no CUDA device is visible" in _error_line(result)
        assert "--device cpu" in _error_line(result)
        # What that error says to do on a machine without a GPU:
        worker = CliRunner().invoke(
            app, [*shlex.split(README_POSTGRES_STUDY[2])[1:], "--device", "cpu"]
        )
        assert worker.exit_code == 0, worker.output

        # Cheap: one refresh (--count 1) instead of refreshing until Ctrl-C.
        watched = examples.cli(README_POSTGRES_STUDY[3], "--count", "1").output
        assert "Study 'mars-map-random'" in watched and "objective: val mAP (maximize)" in watched
        assert "trials: complete 1" in watched and "every 5 s (Ctrl-C to stop)" in watched
        assert (
            "Best trial of 'mars-map-random': #0" in examples.cli(README_POSTGRES_STUDY[4]).output
        )
        result = examples.cli(README_POSTGRES_STUDY[9], code=2)  # no CUDA device here
        assert "cuda" in _error_line(result).lower()
        examples.cli(README_POSTGRES_STUDY[5])
        study = optuna.load_study(study_name="mars-map-random", storage=fresh)
        assert study.user_attrs["test_result"]["trial"] == 0
        examples.cli(README_POSTGRES_STUDY[6])
        assert "val mAP" in (workdir / "report.html").read_text()
        (listed,) = json.loads(examples.cli(README_POSTGRES_STUDY[7]).output)
        assert listed["name"] == "mars-map-random" and listed["states"]["COMPLETE"] == 1

        # GPU 0 does not exist here: the example as typed is refused in one line; the same
        # retrain on the CPU (--gpus none), cut to 1 epoch, stores its test result.
        result = examples.cli(README_POSTGRES_STUDY[8], code=2)
        assert _error_line(result) == "Error: --gpus '0': GPU 0 not visible (0 CUDA device(s))"
        retrain = CliRunner().invoke(
            app, [*shlex.split(README_POSTGRES_STUDY[8])[1:], "--gpus", "none", "--epochs", "1"]
        )
        assert retrain.exit_code == 0, retrain.output

        # The dashboard serves forever on 8080: here on a free port (another process of the
        # machine may hold 8080), stopped after its API has answered.
        env = {**os.environ, "REID_HPO_STORAGE": url}
        command = shlex.split(examples.take(README_POSTGRES_STUDY[10]))
        served = _metric_names_served([str(BIN / command[0]), *command[1:]], workdir, env)
        assert served == {"mars-map-random": ["val mAP"]}

        # The TensorBoard command it prints, likewise on a free port: the trial's run is named
        # by the study and the trial, not by the uuid folder it writes in.
        printed = examples.cli(README_POSTGRES_STUDY[11]).output.strip()
        command = shlex.split(printed)
        assert command[:2] == ["tensorboard", "--logdir_spec"], printed
        port = free_port()
        with _Server([str(BIN / command[0]), *command[1:], "--port", str(port)], workdir, env):
            runs = get_json(f"http://127.0.0.1:{port}/data/runs", timeout_s=SERVER_START_S)
        assert runs == ["mars-map-random/trial_0"], runs
    examples.done()


# ---------------------------------------------------- the shipped spec, SQLite by default


def test_shipped_spec_on_sqlite(
    workdir: Path, mars32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The --help examples on the shipped studies/mars_map_random.yaml, in the default storage
    sqlite:///reid_hpo.db of the working directory. Its trials (121 ResNet-50 epochs each) are
    written directly (tests/_helpers/fake_study.py), as a worker would store them."""
    examples = Examples(SHIPPED_SPEC_ON_SQLITE)
    shutil.copytree(mars32, workdir / "data/mars")
    # No network here: a ResNet-50 state dict of ImageNet's shape stands in for the cached
    # ImageNet download the shipped spec (pretrained: true) needs.
    import torch
    import torchvision

    from reid_core.models import expected_weights_path

    monkeypatch.setenv("TORCH_HOME", str(workdir / "torch"))
    weights = expected_weights_path("resnet50")
    weights.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet50().state_dict(), weights)

    created = CliRunner().invoke(app, ["study", "create", "studies/mars_map_random.yaml"])
    assert created.exit_code == 0, created.output
    plan = examples.cli(SHIPPED_SPEC_ON_SQLITE[0]).output
    assert "121" in plan
    # 20 measured ResNet-50 steps at 224x112 take minutes on 2 CPU cores: the plan without
    # --measure is above, --measure is run on studies/demo.yaml (test_demo_examples); here the
    # command line as typed must parse, which --help of that exact command shows.
    measure = shlex.split(examples.take(SHIPPED_SPEC_ON_SQLITE[1]))
    parsed = CliRunner().invoke(app, [*measure[1:], "--help"])
    assert parsed.exit_code == 0 and "--measure" in parsed.output and "--format" in parsed.output

    storage = "sqlite:///reid_hpo.db"
    add_fake_trials(
        optuna.load_study(study_name="mars-map-random", storage=storage),
        checkpoint_root=workdir / "runs",
    )
    status = examples.cli(SHIPPED_SPEC_ON_SQLITE[2]).output
    assert "objective: val mAP (maximize)" in status and "complete 3" in status
    watched = examples.cli(SHIPPED_SPEC_ON_SQLITE[3], "--count", "1").output  # one refresh
    assert "every 10 s (Ctrl-C to stop)" in watched
    best = json.loads(examples.cli(SHIPPED_SPEC_ON_SQLITE[4]).output)
    assert best["number"] == 2
    listed = json.loads(examples.cli(SHIPPED_SPEC_ON_SQLITE[5]).output)
    assert [study["name"] for study in listed] == ["mars-map-random"]
    examples.cli(SHIPPED_SPEC_ON_SQLITE[6])
    assert len((workdir / "trials.csv").read_text().splitlines()) == 1 + 6

    # No GPU here: the examples naming one are refused in one line (exit 2).
    _no_gpu_here()
    result = examples.cli(SHIPPED_SPEC_ON_SQLITE[8], code=2)
    assert _error_line(result) == "Error: --gpus '0,1': GPU 0, 1 not visible (0 CUDA device(s))"

    make_study(storage, name="old-study")
    assert "Deleted study 'old-study'" in examples.cli(SHIPPED_SPEC_ON_SQLITE[7]).output

    # Port 8080 may be held by another process of this machine: a free port is appended.
    command = shlex.split(examples.take(SHIPPED_SPEC_ON_SQLITE[9]))
    served = _metric_names_served(
        [str(BIN / command[0]), *command[1:]], workdir, _env_without_storage()
    )
    assert served == {"mars-map-random": ["val mAP"]}
    examples.done()


# -------------------------------------------------------------------------------- demo


def test_demo_examples(workdir: Path) -> None:
    """The demo on SQLite and on PostgreSQL (plain URL), then plan and run its spec.

    Cheap: one trial (--trials 1) of the demo's recipe cut to 2 epochs (--spec, a copy of
    studies/demo.yaml), and the PostgreSQL run in the SQLite run's folder (its dataset is
    written once); tests/hpo/test_demo.py runs the shipped 6-epoch spec end to end."""
    examples = Examples(DEMO)
    cheap = _cheap_spec("demo", "demo_out/data/mars", "demo_out/runs", n_trials=8)
    (workdir / "studies/demo.yaml").write_text(yaml.safe_dump(cheap))

    result = examples.cli(DEMO[0], "--trials", "1", "--spec", "studies/demo.yaml")
    assert "reid-hpo dashboard" in result.output and (workdir / "demo_out/report.html").is_file()

    documented = shlex.split(DEMO[1])
    with fresh_database() as fresh:
        url = _with_database(documented[documented.index("--storage") + 1], fresh)
        words = [url if word.startswith("postgresql://") else word for word in documented]
        examples.take(DEMO[1])
        # In the first run's folder: its dataset is reused, not written again.
        data = workdir / "demo_out/data/mars"
        written = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
        out = ["--out", "demo_out", "--trials", "1", "--spec", "studies/demo.yaml"]
        demo = CliRunner().invoke(app, [*words[1:], *out])
        assert demo.exit_code == 0, demo.output
        assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == written
        (name,) = optuna.study.get_all_study_names(storage=fresh)
        assert optuna.load_study(study_name=name, storage=fresh).metric_names == ["val mAP"]

    plan = json.loads(examples.cli(DEMO[2]).output)
    assert plan["step_seconds"] > 0
    # Cheap: one trial (--max-trials 1) of the study's 8.
    examples.cli(DEMO[3], "--max-trials", "1")
    study = optuna.load_study(study_name="demo", storage="sqlite:///reid_hpo.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    examples.done()


def test_bench_examples(workdir: Path) -> None:
    examples = Examples(BENCH)
    assert "rerank" in examples.cli(BENCH[0]).output
    examples.cli(BENCH[1])
    # Cheap: --quick (the full re-ranking benchmark runs MARS-sized matrices for minutes).
    examples.cli(BENCH[2], "--quick")
    assert sorted(p.name for p in (workdir / "bench-results").iterdir())
    examples.done()


# ------------------------------------------------------------------ doctor and weights


def test_doctor_and_weights_examples(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor's CPU subset and the GPU list it refuses here; `weights fetch` from a local
    mirror ($REID_HPO_WEIGHTS_BASE_URL) serving a stand-in file whose name carries its hash
    (the real file is not reachable from here; tests/hpo/test_weights_fetch.py covers more)."""
    import hashlib
    import http.server
    import threading
    from functools import partial

    import torch

    import hpo.weights._fetch as fetch_module

    examples = Examples(DOCTOR_WEIGHTS)
    _no_gpu_here()
    monkeypatch.delenv("REID_HPO_STORAGE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    # Cheap: --quick (a tiny model and a tenth of MARS instead of minutes at full size);
    # exit 1: the ImageNet weights are not in this (empty) hub cache.
    result = examples.cli(DOCTOR_WEIGHTS[0], "--quick", code=1)
    assert "FAIL weights: " in result.output and "PASS ranking[cpu]: " in result.output
    refused = examples.cli(DOCTOR_WEIGHTS[1], code=2)
    assert _error_line(refused) == "Error: --gpus '0,1': GPU 0, 1 not visible (0 CUDA device(s))"

    content = b"stand-in weights"
    name = f"resnet50-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / name).write_bytes(content)
    monkeypatch.setattr(fetch_module, "weights_file_name", lambda _b: ("unused", name))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("REID_HPO_WEIGHTS_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        fetched = examples.cli(DOCTOR_WEIGHTS[2])
        assert (tmp_path / "hub" / "checkpoints" / name).read_bytes() == content
        assert ": downloaded, sha256 " in fetched.output
        again = examples.cli(DOCTOR_WEIGHTS[3])
        assert (workdir / "weights" / name).read_bytes() == content
        assert ": downloaded, sha256 " in again.output
    finally:
        server.shutdown()
    examples.done()


# ------------------------------------------------------- Optuna's own tools, plain URL


def test_optuna_tools_take_the_plain_postgresql_url(tmp_path: Path) -> None:
    """`optuna studies` and optuna-dashboard given ``postgresql://`` as users type it (they
    use psycopg 3 for it) read a study reid-hpo wrote, with its metric name."""
    from hpo.spec import parse_spec
    from hpo.study import create_study
    from tests._helpers.specs import tiny_spec_dict

    with fresh_database() as fresh:
        url = _plain_url(fresh)
        create_study(parse_spec(tiny_spec_dict(name="plain-url"), source="<test>"), url)
        result = subprocess.run(
            [str(BIN / "optuna"), "studies", "--storage", url, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=scaled(120),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert [s["name"] for s in json.loads(result.stdout)] == ["plain-url"]
        served = _metric_names_served(
            [str(BIN / "optuna-dashboard"), url], tmp_path, _env_without_storage()
        )
        assert served == {"plain-url": ["val mAP"]}


# -------------------------------------------------------------------- docker compose


def _compose_model(home: Path, env_file: Path) -> dict[str, Any]:
    from tests.test_deploy import _compose_binary

    result = subprocess.run(
        [
            str(_compose_binary()),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "--profile",
            "setup",
            "config",
            "--format",
            "json",
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_compose_examples(tmp_path: Path) -> None:
    """deploy/README's Compose block. Without a Docker engine, the shell lines run for real in
    a scratch folder, each `docker compose` line is checked against the model the compose
    binary renders (the services it names exist and do what the comment says), and the one
    that runs a reid-hpo command runs it through the services' real entrypoint."""
    examples = Examples(COMPOSE)
    # A folder the image's uid can enter (pytest's tmp_path is not), as a container's mount.
    scratch = Path(tempfile.mkdtemp(prefix="reid-hpo-compose-"))
    try:
        scratch.chmod(0o755)
        _compose_examples(examples, scratch, tmp_path)
    finally:
        shutil.rmtree(scratch)
    examples.done()


def _compose_examples(examples: Examples, scratch: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", scratch)
    for line in COMPOSE[:3]:
        _bash(examples.take(line), scratch)
    assert (scratch / ".env").stat().st_mode & 0o777 == 0o600
    assert (scratch / "secrets").stat().st_mode & 0o777 == 0o700
    secret = scratch / "secrets/postgres_password"
    assert secret.stat().st_mode & 0o777 == 0o644
    assert re.fullmatch(r"[0-9a-f]{48}\n", secret.read_text())
    # The documented modes let the image's user (uid 10001) read the secret through the
    # entrypoint (in the container only the file is mounted, not its mode-700 folder).
    (scratch / "secrets").chmod(0o755)
    ok = run_entrypoint(scratch, secret, "--version")  # as uid IMAGE_UID when run as root
    assert ok.returncode == 0 and "PGPASSWORD: the secret" in ok.stdout, ok.stderr
    (scratch / "secrets").chmod(0o700)

    model = _compose_model(tmp_path, scratch / ".env")  # the .env made above, as compose reads it
    services = model["services"]

    def compose_words(example: str) -> list[str]:
        words = shlex.split(examples.take(example))
        assert words[:2] == ["docker", "compose"]
        return words[2:]

    assert compose_words(COMPOSE[3]) == ["build"]
    built = {name for name, service in services.items() if "build" in service}
    assert built == {"dashboard", "create-study", "worker-gpu0", "worker-gpu1"}
    assert {services[name]["build"]["context"] for name in built} == {str(ROOT)}
    for example in (COMPOSE[4], COMPOSE[7]):
        named = [w for w in compose_words(example) if w not in ("up", "-d")]
        assert set(named) <= set(services), named
    assert services["dashboard"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert compose_words(COMPOSE[5]) == ["run", "--rm", "fetch-weights"]
    assert "weights" in model["volumes"]  # filled by fetch-weights (checked in test_deploy.py)
    assert compose_words(COMPOSE[6]) == ["run", "--rm", "create-study"]
    assert services["create-study"]["command"] == [
        "study",
        "create",
        "studies/mars_map_random.yaml",
    ]
    assert compose_words(COMPOSE[8])[-1] in services
    run = compose_words(COMPOSE[9])
    assert run[:3] == ["run", "--rm", "dashboard"] and run[3:] == [
        "study",
        "status",
        "mars-map-random",
    ]
    assert compose_words(COMPOSE[10]) == ["down"]
    # `down` keeps named volumes: the database and the checkpoints live in them.
    assert services["postgres"]["volumes"][0]["source"] == "pgdata"
    assert {"pgdata", "artifacts"} <= set(model["volumes"])

    # `run --rm dashboard study status mars-map-random` as the container runs it: the
    # service's entrypoint script, its storage URL pointed at a real database holding the study.
    assert services["dashboard"]["entrypoint"] == ["/bin/sh", "/opt/reid-hpo/entrypoint.sh"]
    with fresh_database() as fresh:
        make_study(fresh, name="mars-map-random")
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "REID_HPO_PASSWORD_FILE": str(secret),
            "REID_HPO_STORAGE": _plain_url(fresh),
        }
        status = subprocess.run(
            ["/bin/sh", str(ENTRYPOINT), *run[3:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(120),
            check=False,
        )
    assert status.returncode == 0, status.stderr
    assert "Study 'mars-map-random'" in status.stdout
    assert secret.read_text().strip() not in status.stdout + status.stderr


# ------------------------------------------------------------------------- Kubernetes


def test_kubernetes_examples(tmp_path: Path) -> None:
    """No cluster here: each kubectl line is checked against the manifests it acts on (they
    are validated against the Kubernetes API schema in tests/test_deploy.py); the shell lines
    run for real in a scratch home and make the two files the Secrets are created from."""
    examples = Examples(KUBERNETES)
    manifests = {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in (ROOT / "deploy/kubernetes").glob("*.yaml")
    }
    documents = [doc for docs in manifests.values() for doc in docs]
    named = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    job = named["Job", "reid-hpo-worker"]

    namespace = examples.take(KUBERNETES[0]).split()[-1]
    assert {doc["metadata"]["namespace"] for doc in documents} == {namespace}
    for example in (KUBERNETES[4], KUBERNETES[6], KUBERNETES[7], KUBERNETES[13]):
        path = ROOT / examples.take(example).split()[-1]
        assert manifests[path.name]
    assert {doc["kind"] for doc in manifests["pvc.yaml"]} == {"PersistentVolumeClaim"}
    assert {doc["kind"] for doc in manifests["postgres.yaml"]} == {"Service", "StatefulSet"}

    shell = [examples.take(line) for line in (*KUBERNETES[1:3], *KUBERNETES[9:12])]
    _bash("\n".join(shell), tmp_path, HOME=str(tmp_path))
    password_file = tmp_path / ".config/reid-hpo/postgres-password"
    url_file = tmp_path / ".config/reid-hpo/storage-url"
    for path in (password_file, url_file):
        assert path.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", password)
    # The URL written is the Secret example's, with the password the database is given.
    (example_secret,) = [doc for doc in documents if doc["kind"] == "Secret"]
    assert (
        url_file.read_text()
        == example_secret["stringData"]["url"].replace("<password>", password) + "\n"
    )

    # The database's password Secret: the name and key the StatefulSet mounts.
    db_secret = shlex.split(examples.take(KUBERNETES[3]))
    assert db_secret[:6] == ["kubectl", "-n", namespace, "create", "secret", "generic"]
    source = db_secret[-1].removeprefix("--from-file=")
    assert source == "$HOME/.config/reid-hpo/postgres-password"  # key: the file's name
    statefulset = named["StatefulSet", "postgres"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    (projected,) = volume["projected"]["sources"]
    assert projected["secret"]["name"] == db_secret[6]
    assert Path(env["POSTGRES_PASSWORD_FILE"]).name == Path(source).name

    rollout = examples.take(KUBERNETES[5]).split()
    assert rollout[-2] == "statefulset/" + statefulset["metadata"]["name"]
    wait = examples.take(KUBERNETES[8]).split()
    weights_job = named["Job", wait[-2].removeprefix("job/")]
    (filler,) = weights_job["spec"]["template"]["spec"]["containers"]
    assert filler["command"] + filler["args"] == ["reid-hpo", "weights", "fetch"]

    secret = shlex.split(examples.take(KUBERNETES[12]))
    assert secret[:6] == ["kubectl", "-n", namespace, "create", "secret", "generic"]
    key, _, source = secret[-1].removeprefix("--from-file=").partition("=")
    assert source == "$HOME/.config/reid-hpo/storage-url"  # the file the lines above made
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    ref = env["REID_HPO_STORAGE"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret[6], key)

    selector = examples.take(KUBERNETES[14]).split()[-1]
    label, _, value = selector.partition("=")
    assert job["spec"]["template"]["metadata"]["labels"][label] == value
    assert examples.take(KUBERNETES[15]).split()[-1] == f"job/{job['metadata']['name']}"
    assert examples.take(KUBERNETES[16]).split()[-1] == job["metadata"]["name"]
    examples.done()


# ------------------------------------------------------------------------------ SLURM


def test_slurm_examples(tmp_path: Path) -> None:
    """deploy/README's SLURM block run by bash in a scratch home and checkout, against the
    real PostgreSQL. No SLURM here: ``sbatch`` is a stand-in that runs the batch script as a
    task would (its ``#SBATCH`` options are checked), ``srun`` records the worker command and
    its storage instead of starting it, and ``squeue`` is checked through the job name."""
    examples = Examples(SLURM)
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "studies", checkout / "studies")
    shutil.copytree(ROOT / "deploy", checkout / "deploy")
    (checkout / ".venv").symlink_to(BIN.parent)
    fakes = tmp_path / "bin"
    fakes.mkdir()
    (fakes / "sbatch").write_text(
        '#!/bin/bash\nwhile [[ "$1" == -* ]]; do shift; done\n'
        'SLURM_SUBMIT_DIR="$PWD" SLURM_ARRAY_TASK_ID=0 exec bash "$@"\n'
    )
    (fakes / "srun").write_text(
        '#!/bin/bash\nprintf "%s\\n" "$*" "$REID_HPO_STORAGE" >> "$SRUN_LOG"\n'
    )
    for fake in fakes.iterdir():
        fake.chmod(0o755)

    with fresh_database() as fresh:
        url = _plain_url(fresh)
        lines = [examples.take(line) for line in SLURM[:3]]
        # The user edits <password> in the file: here the fresh database, which trusts its
        # local users and ignores the password.
        documented_url = "postgresql://reid:<password>@dbhost:5432/reid_hpo"
        assert documented_url in lines[2]
        lines.append(
            "sed -i 's|"
            + documented_url
            + "|"
            + url.replace("postgres@", "postgres:pw@", 1)
            + "|' ~/.config/reid-hpo/storage.env"
        )
        lines += ["source .venv/bin/activate", examples.take(SLURM[3])]
        lines += [examples.take(SLURM[4]), examples.take(SLURM[5])]
        _bash(
            "\n".join(lines),
            checkout,
            HOME=str(tmp_path),
            PATH=f"{fakes}{os.pathsep}{os.environ['PATH']}",
            SRUN_LOG=str(tmp_path / "srun.log"),
        )
        assert optuna.study.get_all_study_names(storage=fresh) == ["mars-map-random"]
    env_file = tmp_path / ".config/reid-hpo/storage.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    recorded = (tmp_path / "srun.log").read_text().splitlines()
    assert len(recorded) == 4  # two submissions, each: the command, then the storage URL
    for command, storage in zip(recorded[::2], recorded[1::2], strict=True):
        assert command.endswith("reid-hpo worker mars-map-random --gpus all")
        assert storage.startswith("postgresql://postgres:pw@127.0.0.1")
    assert re.fullmatch(r"--array=\d+-\d+%\d+", shlex.split(SLURM[5])[1])

    # `squeue --me` lists the tasks under the job name the script gives them, and each task
    # logs to the file deploy/README names.
    assert examples.take(SLURM[6]) == "squeue --me"
    script = (ROOT / "deploy/slurm/worker_array.sbatch").read_text()
    assert "#SBATCH --job-name=reid-hpo-worker\n" in script
    assert "#SBATCH --output=reid-hpo-worker-%A_%a.out\n" in script
    assert "reid-hpo-worker-<job>_<task>.out" in (ROOT / "deploy/README.md").read_text()
    examples.done()


@pytest.fixture(autouse=True)
def _no_stray_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test inherits the developer's $REID_HPO_STORAGE."""
    monkeypatch.delenv("REID_HPO_STORAGE", raising=False)
    yield
