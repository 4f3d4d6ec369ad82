"""The reference table's variants: presets, loss switches and MARS-to-PRID ``--init-from``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import SpecError
from hpo.spec import parse_spec
from hpo.spec import to_train_config
from reid_core.config import TrainConfig
from reid_core.data import write_synthetic
from reid_core.engine import load_checkpoint
from reid_core.engine import save_checkpoint
from reid_core.engine import transferable_state
from reid_core.engine._checkpoint import checksum_path
from reid_core.losses import ReidCriterion
from reid_core.models import build_model_from_config
from reid_core.presets import PRESETS
from reid_core.presets import apply_preset
from tests._helpers.specs import tiny_spec_dict
from tests.hpo._worker_support import spec_dict

runner = CliRunner()
TINY = [
    "--backbone", "resnet10", "--attention", "pooled", "--no-pretrained",
    "--height", "32", "--width", "16", "--seq-len", "2", "--batch-size", "4",
    "--num-instances", "2", "--eval-every", "1", "--num-workers", "0", "--device", "cpu",
    "--warmup-epochs", "0", "--milestones", "100", "--lr", "1e-3",
]  # fmt: skip

# preset -> (arch, last stride, CE epsilon, triplet factor, triplet distance, center weight,
#            beta (OSM weight), prototypes) as README documents them
PRID_BETA = 0.7103921571238655  # bagoftricks.py:145
DOCUMENTED = {
    "baseline": ("ta", 2, 0.1, 1.0, "euclidean", 0.0, 0.0, "centers"),
    "bot": ("ta_bt", 1, 0.1, 1.0, "cosine", 5e-4, 0.0, "centers"),
    "bot_osm": ("ta_bt", 1, 0.1, 0.0, "cosine", 5e-4, 1.0, "classifier"),
    "bot_osm_cl": ("ta_bt", 1, 0.1, 0.0, "cosine", 5e-4, 1.0, "centers"),
    "bbot_attn_cl": ("ta_bt", 1, 0.1, 0.0, "cosine", 5e-4, 1.0, "centers"),
    "bot_osm_cl_prid": ("ta_bt", 1, 0.1, 1.0 - PRID_BETA, "cosine", 5e-4, PRID_BETA, "centers"),
}


def epoch_log(run: Path) -> list[dict]:
    """The run's ``metrics.jsonl``: one entry (epoch, losses, lr, metrics) per epoch."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mars") / "mars"
    return write_synthetic(root, "mars", ids=8, frames=6, height=32, width=16, seed=0)


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_builds_the_documented_losses(name: str) -> None:
    cfg = apply_preset(TrainConfig(), name)
    criterion = ReidCriterion(cfg.loss, num_classes=5, feat_dim=8)
    arch, stride, eps, triplet, distance, center, beta, prototypes = DOCUMENTED[name]
    assert (cfg.model.arch, cfg.model.last_stride) == (arch, stride)
    assert criterion.cross_entropy.epsilon == eps
    assert criterion.triplet_factor == pytest.approx(triplet)
    assert cfg.loss.triplet_distance == distance
    assert (criterion.center_weight, criterion.beta, criterion.prototypes) == (
        center,
        beta,
        prototypes,
    )
    assert cfg.data.random_erasing == (0.0 if name == "baseline" else 0.5)
    assert cfg.optim.warmup_epochs == (0 if name == "baseline" else 10)


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_short_training_of_each_preset_runs(name: str, mars: Path, tmp_path: Path) -> None:
    out = tmp_path / name
    args = ["train", "--dataset", "mars", "--root", str(mars), "--output", str(out), *TINY]
    result = runner.invoke(app, [*args, "--preset", name, "--epochs", "2"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    arch, _, eps, _, distance, center, beta, prototypes = DOCUMENTED[name]
    assert saved["model"]["arch"] == arch
    assert saved["loss"]["label_smoothing"] == eps
    assert (saved["loss"]["center_weight"], saved["loss"]["beta"]) == (center, beta)
    assert (saved["loss"]["triplet_distance"], saved["loss"]["prototypes"]) == (
        distance,
        prototypes,
    )
    history = epoch_log(out)
    assert len(history) == 2
    assert all(h["losses"]["total"] > 0 for h in history)
    if beta == 1:
        assert history[0]["losses"]["osm"] > 0 and history[0]["losses"]["triplet"] == 0
    elif beta > 0:
        assert history[0]["losses"]["osm"] > 0 and history[0]["losses"]["triplet"] > 0
    else:
        assert history[0]["losses"]["osm"] == 0 and history[0]["losses"]["triplet"] > 0


def test_loss_switches_override_the_preset(mars: Path, tmp_path: Path) -> None:
    out = tmp_path / "ablation"
    args = ["train", "--dataset", "mars", "--root", str(mars), "--output", str(out), *TINY]
    switches = ["--preset", "bot", "--no-triplet", "--osm", "--beta", "0.4"]
    switches += ["--prototypes", "classifier", "--sigma", "0.5", "--margin", "0.1"]
    result = runner.invoke(app, [*args, *switches, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert (loss["triplet_weight"], loss["beta"], loss["prototypes"]) == (0.0, 0.4, "classifier")
    assert (loss["osm_sigma"], loss["triplet_margin"]) == (0.5, 0.1)
    history = epoch_log(out)
    assert history[0]["losses"]["triplet"] == 0 and history[0]["losses"]["osm"] > 0


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        (["--osm", "--beta", "0"], "--osm with --beta 0"),
        (["--no-osm", "--beta", "0.5"], "--no-osm with --beta 0.5"),
        (["--preset", "bot_osm_cl", "--no-center"], "CL centers"),
        (["--preset", "bot_osm_cl", "--arch", "nope"], "Invalid value for '--arch'"),
        (["--preset", "bot", "--attention-weight", "1"], "data.labelled_erasing > 0"),
        (["--preset", "bbot_attn_cl", "--arch", "tp"], "needs a temporal attention"),
    ],
)
def test_contradictory_loss_switches_are_refused(
    switches: list[str], message: str, mars: Path, tmp_path: Path
) -> None:
    args = ["train", "--dataset", "mars", "--root", str(mars), "--output", str(tmp_path), *TINY]
    result = runner.invoke(app, [*args, *switches, "--epochs", "1"])
    assert result.exit_code == 2
    assert message in result.output


def test_a_spec_names_a_preset_and_overrides_its_fields(tmp_path: Path) -> None:
    raw = spec_dict(name="p", data_root=tmp_path, artifacts=tmp_path / "a")
    raw["preset"] = "bot_osm_cl"
    raw["training"]["beta"] = 0.3
    del raw["model"]["last_stride"]
    spec = parse_spec(raw)
    cfg = to_train_config(spec, {"sigma": 0.5, "margin": 0.1}, trial_number=0, output_dir=".")
    assert (cfg.loss.prototypes, cfg.loss.beta, cfg.model.arch) == ("centers", 0.3, "ta_bt")
    assert cfg.data.random_erasing == 0.0  # the spec's own value wins over the preset's 0.5
    assert (cfg.loss.osm_sigma, cfg.loss.triplet_margin) == (0.5, 0.1)
    assert parse_spec(spec.model_dump(mode="json")) == spec
    raw["preset"] = "bot_tricks"
    with pytest.raises(SpecError, match="unknown preset 'bot_tricks'"):
        parse_spec(raw)


def test_a_spec_with_the_attn_cl_preset_trains_its_attention_loss(tmp_path: Path) -> None:
    raw = spec_dict(name="p", data_root=tmp_path, artifacts=tmp_path / "a")
    raw["preset"] = "bbot_attn_cl"
    del raw["training"]["random_erasing"]
    cfg = to_train_config(parse_spec(raw), {}, trial_number=0, output_dir=".")
    assert (cfg.loss.attention_weight, cfg.data.labelled_erasing) == (1.0, 0.5)
    assert (cfg.data.random_erasing, cfg.data.erasing_style) == (0.5, "reference")
    raw["training"]["attention_weight"] = 0.25
    cfg = to_train_config(parse_spec(raw), {}, trial_number=0, output_dir=".")
    assert cfg.loss.attention_weight == 0.25
    raw["training"]["labelled_erasing"] = 0.0
    with pytest.raises(SpecError, match=r"training.labelled_erasing > 0"):
        parse_spec(raw)
    raw["training"]["labelled_erasing"], raw["model"]["arch"] = 0.5, "tp"
    with pytest.raises(SpecError, match="needs a temporal attention"):
        parse_spec(raw)


def test_mars_model_fine_tuned_on_prid(mars: Path, tmp_path: Path) -> None:
    source_run = tmp_path / "mars-run"
    args = ["train", "--dataset", "mars", "--root", str(mars), *TINY, "--epochs", "2"]
    assert runner.invoke(app, [*args, "--output", str(source_run)]).exit_code == 0
    source = load_checkpoint(source_run / "last.pt")

    prid = write_synthetic(tmp_path / "prid", "prid", ids=16, frames=6, height=32, width=16)
    cfg = TrainConfig.from_dict(json.loads((source_run / "config.json").read_text()))
    model = build_model_from_config(cfg.model, num_classes=3, input_size=(32, 16))
    tensors, info = transferable_state(model, source_run / "last.pt")
    assert tensors and all(torch.equal(tensors[k], source["model"][k]) for k in tensors)
    assert not any(k.startswith(("neck.", "classifier.")) for k in tensors)

    out = tmp_path / "prid-run"
    fine_tune = ["train", "--dataset", "prid", "--root", str(prid), *TINY, "--epochs", "3"]
    fine_tune += ["--init-from", str(source_run / "last.pt"), "--output", str(out)]
    result = runner.invoke(app, fine_tune)
    assert result.exit_code == 0, result.output
    assert "initialised from" in result.output
    tuned = load_checkpoint(out / "last.pt")
    recorded = tuned["init_from"]
    sha = checksum_path(Path(recorded["checkpoint"])).read_text().split()[0]
    assert (recorded["sha256"], recorded["dataset"]) == (sha, "mars")
    assert recorded["sha256"] == info.sha256
    assert json.loads((out / "results.json").read_text())["init_from"] == recorded
    prid_ids = tuned["num_classes"]
    assert tuned["model"]["classifier.weight"].shape[0] == prid_ids != source["num_classes"]
    history = epoch_log(out)
    assert history[-1]["losses"]["total"] < history[0]["losses"]["total"]  # it learns


def test_the_first_fine_tuning_step_starts_from_the_source_weights(
    mars: Path, tmp_path: Path
) -> None:
    """Bit-exact: the trainer's model, before any step, holds the source's backbone tensors."""
    from reid_core.engine import Trainer

    source_run = tmp_path / "src"
    args = ["train", "--dataset", "mars", "--root", str(mars), *TINY, "--epochs", "1"]
    assert runner.invoke(app, [*args, "--output", str(source_run)]).exit_code == 0
    source = load_checkpoint(source_run / "last.pt")["model"]
    prid = write_synthetic(tmp_path / "prid", "prid", ids=16, frames=6, height=32, width=16)
    cfg = TrainConfig.from_dict(json.loads((source_run / "config.json").read_text()))
    raw = cfg.to_dict()
    raw["data"].update(dataset="prid", root=str(prid))
    raw.update(init_from=str(source_run / "last.pt"), output_dir=str(tmp_path / "t"), epochs=1)
    trainer = Trainer(TrainConfig.from_dict(raw), progress=False)
    fresh_head = trainer.model.classifier.weight.detach().clone()
    seen: dict[str, torch.Tensor] = {}

    class Snapshot:
        def on_train_start(self, view: object) -> None:
            seen.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

        def on_epoch_end(self, report: object) -> None:
            pass

        def on_train_end(self, result: object) -> None:
            pass

    trainer.fit(callbacks=[Snapshot()])
    backbone = [k for k in source if k.startswith(("backbone.", "temporal."))]
    assert backbone and all(torch.equal(seen[k], source[k]) for k in backbone)
    assert torch.equal(seen["classifier.weight"], fresh_head)
    assert seen["classifier.weight"].shape[0] != source["classifier.weight"].shape[0]


def test_an_incompatible_checkpoint_is_refused_naming_the_layer(mars: Path, tmp_path: Path) -> None:
    source_run = tmp_path / "r18"
    args = ["train", "--dataset", "mars", "--root", str(mars), *TINY, "--epochs", "1"]
    made = runner.invoke(app, [*args, "--backbone", "resnet18", "--output", str(source_run)])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        app, [*args, "--init-from", str(source_run), "--output", str(tmp_path / "r10")]
    )
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith("Error: --init-from ") and "does not fit this model: layer " in line
    assert "backbone." in line and len(line.splitlines()) == 1

    # The same checkpoint with its floating-point weights turned into integers.
    state = load_checkpoint(source_run / "last.pt")
    state["model"] = {
        k: v.long() if v.is_floating_point() else v for k, v in state["model"].items()
    }
    integers = save_checkpoint(tmp_path / "integers.pt", state)
    result = runner.invoke(
        app,
        [
            *args,
            "--backbone",
            "resnet18",
            "--init-from",
            str(integers),
            "--output",
            str(tmp_path / "i"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "torch.int64 values in the checkpoint, torch.float32 here" in result.output


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_spec_naming_only_a_preset_trains_its_whole_recipe(name: str) -> None:
    raw = tiny_spec_dict(preset=name, model={}, training={})
    cfg = to_train_config(parse_spec(raw), {}, trial_number=3, output_dir="x")
    expected = apply_preset(TrainConfig(), name)
    for path in PRESETS[name].values:
        section, _, leaf = path.rpartition(".")
        got, want = (getattr(c, section) if section else c for c in (cfg, expected))
        assert getattr(got, leaf) == getattr(want, leaf), path  # the seed too (shared policy)
