"""`compile: true` needs a C compiler: refused in one line where none is found."""

from __future__ import annotations

import pytest
import torch

from reid_core.config import DataConfig
from reid_core.config import ModelConfig
from reid_core.config import TrainConfig
from reid_core.engine import build_step_parts
from reid_core.engine import c_compiler
from reid_core.engine import require_c_compiler
from reid_core.errors import ConfigError


def _cfg(compile_: bool) -> TrainConfig:
    model = ModelConfig(arch="ta_bt", backbone="resnet10", attention="pooled", pretrained=False)
    data = DataConfig(height=32, width=16, batch_size=4, num_instances=2, validation=None)
    return TrainConfig(data=data, model=model, compile=compile_, device="cpu")


@pytest.fixture()
def no_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without cc, gcc or clang (and no $CC)."""
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr("reid_core.engine._compiler.shutil.which", lambda _name: None)


def test_compile_is_refused_in_one_line_without_a_compiler(no_compiler: None) -> None:
    assert c_compiler() is None
    with pytest.raises(ConfigError) as caught:
        build_step_parts(_cfg(True), 4, torch.device("cpu"))
    assert str(caught.value) == (
        "compile: true needs a C compiler and none was found (cc, gcc or clang on PATH): "
        "install gcc (the reid-hpo image has it) or set compile: false"
    )
    build_step_parts(_cfg(False), 4, torch.device("cpu"))  # no compile, no compiler needed


def test_compile_goes_ahead_where_a_compiler_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr("reid_core.engine._compiler.shutil.which", lambda name: f"/usr/bin/{name}")
    assert require_c_compiler() == "/usr/bin/cc"
    parts = build_step_parts(_cfg(True), 4, torch.device("cpu"))
    assert parts.model._compiled_call_impl is not None  # model.compile() ran, in place


def test_cc_names_the_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "my-cc")
    monkeypatch.setattr("reid_core.engine._compiler.shutil.which", lambda _name: None)
    with pytest.raises(ConfigError, match=r"\(\$CC=my-cc\)"):
        require_c_compiler()
