"""Bad inputs a user can type, through the CLI: how many get one ``Error:`` line and exit 2.

Usage (from the repository root; about a minute on a CPU):

    python benchmarks/bad_inputs.py

Each input runs in process through the Typer app, as ``reid-hpo ARGS`` would (Click's runner;
stdout and stderr together). An input is *clean* when the command exits with 2 and prints
exactly one non-empty line, starting with ``Error:``, and no traceback. The script prints one
row per input and the count; RELIABILITY.md quotes it. Races and the dashboard's HTTP answers
are tested in ``tests/reliability/test_races.py`` and ``tests/hpo/test_dashboard_security.py``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpo.cli import app  # noqa: E402

LONG = "x" * 300


def _spec(tmp: Path) -> dict[str, Any]:
    """The demo study's spec with a dataset root that does not exist here."""
    spec = yaml.safe_load((REPO / "studies" / "demo.yaml").read_text(encoding="utf-8"))
    spec["dataset"]["root"] = str(tmp / "no_data")
    spec["artifacts"] = {"root": str(tmp / "runs")}
    return spec


def _spec_file(tmp: Path, name: str, change: Callable[[dict[str, Any]], None] | str) -> str:
    path = tmp / f"{name}.yaml"
    if isinstance(change, str):
        path.write_text(change, encoding="utf-8")
        return str(path)
    spec = copy.deepcopy(_spec(tmp))
    change(spec)
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return str(path)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``a.b.c`` of the spec to ``value``."""

    def change(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return change


SPEC_INPUTS: dict[str, Callable[[dict[str, Any]], None] | str] = {
    "malformed YAML": "name: demo\n  dataset: [mars\n",
    "empty file": "",
    "a list at the top": "- 1\n- 2\n",
    "unknown key": _set("epochz", 3),
    "unknown nested key": _set("budget.n_trails", 5),
    "n_trials a word": _set("budget.n_trials", "many"),
    "no budget limit": _set("budget", {}),
    "epochs: true": _set("training.epochs", True),
    "batch_size a string": _set("training.batch_size", "16"),
    "batch_size not a multiple of num_instances": _set("training.batch_size", 18),
    "eval_every above epochs": _set("training.eval_every", 7),
    "decreasing milestones": _set("training.milestones", [4, 2]),
    "device bogus": _set("training.device", "bogus"),
    "low above high": _set("search_space.sigma", {"type": "float", "low": 2.0, "high": 1.0}),
    "log with low 0": _set(
        "search_space.margin", {"type": "float", "low": 0.0, "high": 1.0, "log": True}
    ),
    "unknown search parameter": _set("search_space.sigmaa", {"type": "float", "low": 0, "high": 1}),
    "empty search space": _set("search_space", {}),
    "device searched": _set("search_space.device", {"type": "categorical", "choices": ["cpu"]}),
    "unknown sampler": _set("sampler.name", "tpee"),
    "unknown pruner": _set("pruner.name", "medain"),
    "unknown metric": _set("objective.metric", "map5"),
    "unknown dataset": _set("dataset.name", "marss"),
    "name with a slash": _set("name", "../escape"),
    "name with a quote": _set("name", "x'; DROP TABLE studies; --"),
    "sampler seed 2**32": _set("sampler.seed", 2**32),
    "negative seed": _set("seed", -1),
    "validation seed 2**40": _set("validation.seed", 2**40),
    "heartbeat interval 10**12": _set("heartbeat.interval", 10**12),
    "heartbeat grace 10**12": _set("heartbeat.grace", 10**12),
    "grace below two intervals": _set("heartbeat", {"interval": 30, "grace": 40}),
    "gamma searched, milestones past the epochs": _set("training.milestones", [6, 10]),
    "gamma searched, no milestone": _set("training.milestones", []),
    "warm start with a password in its URL": _set(
        "warm_start.from_study", {"name": "a", "storage": "postgresql://u:pw@h/db"}
    ),
    "warm start from its own name": _set("warm_start.from_study", {"name": "demo"}),
    "unknown preset": _set("preset", "nope"),
}


def _inputs(tmp: Path, db: str) -> dict[str, list[str]]:
    """Every bad input: its label and the argv after ``reid-hpo``."""
    storage = ["--storage", db]
    found = {
        f"spec: {label}": ["study", "create", _spec_file(tmp, f"s{i}", change), *storage]
        for i, (label, change) in enumerate(SPEC_INPUTS.items())
    }
    found["spec: missing file"] = ["study", "create", str(tmp / "nope.yaml"), *storage]
    for words in (
        ["status", "ghost"],
        ["best", "ghost"],
        ["export", "ghost", "--format", "csv"],
        ["delete", "ghost", "--yes"],
        ["report", "ghost", "--out", str(tmp / "r.html")],
        ["rekey", "ghost"],
        ["tensorboard", "ghost"],
        ["test", "ghost"],
        ["retrain", "ghost"],
        ["run", "ghost", "--gpus", "none"],
    ):
        found[f"missing study: study {words[0]}"] = ["study", *words, *storage]
    found["missing study: worker"] = ["worker", "ghost", "--gpus", "none", *storage]
    for label, url in {
        "unreachable PostgreSQL": "postgresql://u:pw@127.0.0.1:1/db",
        "unsupported scheme": "mysqlx://h/db",
        "not a URL": "just words",
        "SQLite file that does not exist": f"sqlite:///{tmp}/none.db",
    }.items():
        found[f"storage: {label}"] = ["study", "status", "demo", "--storage", url]
    found["output: report --out a folder"] = ["study", "report", "ok", "--out", str(tmp), *storage]
    found["output: report --out /dev/null"] = [
        "study",
        "report",
        "ok",
        "--out",
        "/dev/null",
        *storage,
    ]
    found["output: report --out ''"] = ["study", "report", "ok", "--out", "", *storage]
    found["output: export --out a folder"] = [
        "study", "export", "ok", "--format", "csv", "--out", str(tmp), *storage,
    ]  # fmt: skip
    found["output: report --out 300 characters"] = [
        "study", "report", "ok", "--out", f"{tmp}/{LONG}.html", *storage,
    ]  # fmt: skip
    found["path: data synth 300 characters"] = [
        "data",
        "synth",
        f"{tmp}/{LONG}/d",
        "--layout",
        "mars",
    ]
    found["path: data check 300 characters"] = [
        "data",
        "check",
        f"{tmp}/{LONG}",
        "--dataset",
        "mars",
    ]
    found["path: study plan 300 characters"] = ["study", "plan", f"{tmp}/{LONG}.yaml"]
    found["path: evaluate 300 characters"] = ["evaluate", f"{tmp}/{LONG}.pt"]
    found["checkpoint: evaluate a text file"] = ["evaluate", _text_file(tmp)]
    found["checkpoint: evaluate with a binary sidecar"] = ["evaluate", _binary_sidecar(tmp)]
    data = _tiny_dataset(tmp)
    train = [
        "train",
        "--dataset",
        "mars",
        "--root",
        data,
        "--backbone",
        "resnet10",
        "--no-pretrained",
        "--epochs",
        "1",
    ]
    found["checkpoint: train --init-from integer tensors"] = [
        *train, "--init-from", _integer_checkpoint(tmp), "--output", str(tmp / "t1"),
    ]  # fmt: skip
    found["checkpoint: train --init-from a missing file"] = [
        *train, "--init-from", str(tmp / "none.pt"), "--output", str(tmp / "t2"),
    ]  # fmt: skip
    found["train: CPU bf16 whose strided layer4 sees one column"] = [
        *train, "--attention", "pooled", "--height", "32", "--width", "16", "--seq-len", "2",
        "--last-stride", "2", "--amp", "bf16", "--device", "cpu", "--output", str(tmp / "t3"),
    ]  # fmt: skip
    found["train: a dataset root that does not exist"] = [
        "train", "--dataset", "mars", "--root", str(tmp / "no_data"),
    ]  # fmt: skip
    return found


def _tiny_dataset(tmp: Path) -> str:
    from reid_core.data import write_synthetic

    root = write_synthetic(
        tmp / "mars", "mars", ids=8, cameras=2, tracklets=2, frames=4, seed=0, height=32, width=16
    )
    return str(root)


def _text_file(tmp: Path) -> str:
    path = tmp / "notes.pt"
    path.write_text("not a checkpoint\n", encoding="utf-8")
    return str(path)


def _binary_sidecar(tmp: Path) -> str:
    from reid_core.engine._checkpoint import checksum_path
    from reid_core.engine._checkpoint import save_checkpoint

    path = save_checkpoint(tmp / "ck" / "epoch_0000.pt", {"model": {}})
    checksum_path(path).write_bytes(b"\xff\xfe\x00binary")
    return str(path)


def _integer_checkpoint(tmp: Path) -> str:
    from reid_core.engine._checkpoint import save_checkpoint

    weights = {"backbone.conv1.weight": torch.ones(64, 3, 7, 7, dtype=torch.int64)}
    path = save_checkpoint(tmp / "int" / "epoch_0000.pt", {"model": weights, "epoch": 0})
    return str(path)


def is_clean(exit_code: int, output: str, exception: BaseException | None) -> bool:
    """One ``Error:`` line, exit 2, no traceback."""
    lines = [line for line in output.splitlines() if line.strip()]
    return (
        exit_code == 2
        and isinstance(exception, SystemExit)
        and len(lines) == 1
        and lines[0].startswith("Error: ")
    )


def _run(runner: CliRunner, argv: list[str]) -> tuple[int, str, bool]:
    """Exit code, output and verdict of ``reid-hpo ARGV``: in process, except ``train``, which
    logs to the console and so runs as its own process (the runner closes its streams)."""
    if argv[0] != "train":
        result = runner.invoke(app, argv)
        good = is_clean(result.exit_code, result.output, result.exception)
        return result.exit_code, result.output, good
    done = subprocess.run(
        [sys.executable, "-m", "hpo.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    # train logs its progress (INFO lines) before it fails: one Error: line, no traceback.
    good = done.returncode == 2 and len(errors) == 1 and "Traceback" not in output
    return done.returncode, errors[0] if errors else output, good


def main() -> int:
    """Run every input; print a row each and the count. Exit 0 (a measurement, not a test)."""
    with tempfile.TemporaryDirectory(prefix="reid-hpo-bad-inputs-") as name:
        tmp = Path(name)
        db = f"sqlite:///{tmp / 'study.db'}"
        ok_spec = _spec_file(tmp, "ok", _set("name", "ok"))
        runner = CliRunner()
        assert runner.invoke(app, ["study", "create", ok_spec, "--storage", db]).exit_code == 0
        inputs = _inputs(tmp, db)
        clean = 0
        for label, argv in inputs.items():
            code, output, good = _run(runner, argv)
            clean += good
            first = (output.strip().splitlines() or [""])[0]
            verdict = "clean" if good else "NOT CLEAN"
            print(f"{verdict}\t{label}\texit {code}\t{first[:150]}")
        print(f"{clean} of {len(inputs)} bad inputs refused cleanly (one Error: line, exit 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
