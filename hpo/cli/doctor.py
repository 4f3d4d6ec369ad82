"""``reid-hpo doctor``: the acceptance check of a node or image, one line per check."""

from __future__ import annotations

from pathlib import Path

import typer

from hpo.cli._app import app

_HELP = """\
Check a GPU node or image in a few minutes: one line per check, PASS, FAIL or SKIP.

Node: torch/CUDA/driver versions (FAIL when the driver lists GPUs that torch cannot use),
the mapping of each GPU slot to its physical UUID, a C compiler for compile: true, the
ImageNet weights, the storage and the artifacts root (writable; the study's marker visible
when --spec names a study in the storage). Each selected GPU: the precision amp resolves
to, training steps of the faithful model (ResNet50 TA_BT, 224x112, T=4, batch 32; 4 on a
CPU) without a host synchronisation, clips/s in float32 vs bfloat16, GPU busy, an
out-of-memory error handled as a clean trial failure, and MARS-size ranking + re-ranking
(1,980 x 9,330). With no GPU visible the CPU subset runs and the GPU-only checks SKIP.

Exit code: 0 when nothing FAILed, 1 when a check FAILed, 2 for a bad option.

Examples:

\b
  reid-hpo doctor
  reid-hpo doctor --gpus 0,1 --spec studies/mars_map_random.yaml
"""


@app.command("doctor", help=_HELP)
def doctor(
    gpus: str = typer.Option(
        "all", "--gpus", help="all (the CPU when no GPU is visible), none, or 0,1,..."
    ),
    spec_file: Path | None = typer.Option(
        None, "--spec", help="Study spec: its model, amp, backbone weights, artifacts root."
    ),
    storage: str | None = typer.Option(
        None, "--storage", help="Study storage URL (default $REID_HPO_STORAGE; else SKIP)."
    ),
    artifacts_root: Path | None = typer.Option(
        None, "--artifacts-root", help="Artifacts root to check (default: the spec's)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Tiny model and a tenth of MARS: seconds, for tests."
    ),
) -> None:
    import os

    from hpo.doctor import FULL
    from hpo.doctor import QUICK
    from hpo.doctor import exit_code
    from hpo.doctor import run_doctor
    from hpo.spec import load_spec
    from hpo.storage import ENV_STORAGE

    spec = load_spec(spec_file) if spec_file is not None else None
    checks = []
    for check in run_doctor(
        gpus=gpus,
        size=QUICK if quick else FULL,
        spec=spec,
        storage_url=storage or os.environ.get(ENV_STORAGE),
        artifacts_root=artifacts_root,
    ):
        typer.echo(check.line())
        checks.append(check)
    raise typer.Exit(code=exit_code(checks))
