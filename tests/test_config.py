from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from lmmsn.config import ConfigError, load_config, save_config


@dataclass
class Inner:
    dim: int = 16
    "Width."
    act: Literal["gelu", "relu"] = "gelu"
    "Activation."


@dataclass
class Outer:
    lr: float = 1e-4
    "Learning rate."
    name: str | None = None
    "Run name."
    sizes: tuple[int, ...] = (1, 2)
    "Sizes."
    inner: Inner = field(default_factory=Inner)
    "Sub-config."

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be positive")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_are_typed_and_nested(tmp_path):
    path = write(tmp_path, "lr: 3\ninner:\n  dim: 32\nsizes: [4, 5, 6]\n")
    cfg = load_config(Outer, path, ["inner.act=relu", "name=run1"])
    assert cfg.lr == 3.0 and isinstance(cfg.lr, float)
    assert cfg.inner == Inner(dim=32, act="relu")
    assert cfg.sizes == (4, 5, 6)
    assert cfg.name == "run1"


def test_override_wins_over_file(tmp_path):
    path = write(tmp_path, "inner:\n  dim: 32\n")
    assert load_config(Outer, path, ["inner.dim=8"]).inner.dim == 8


def test_unknown_key_names_file_and_key_with_suggestion(tmp_path):
    path = write(tmp_path, "inner:\n  dimm: 32\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, path)
    message = str(info.value)
    assert str(path) in message and "inner.dimm" in message and "inner.dim" in message


def test_unknown_override_is_an_error():
    with pytest.raises(ConfigError, match="'learning_rate' is not a field"):
        load_config(Outer, None, ["learning_rate=1"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("inner.dim=abc", "must be int"),
        ("inner.act=tanh", "not one of"),
        ("lr=true", "must be float"),
        ("lr=-1", "lr must be positive"),
        ("noequals", "key=value"),
        # NaN slips through every `lr <= 0` check; inf is never a meaningful setting (issue 14).
        ("lr=.nan", "'lr' must be a finite number, got nan"),
        ("lr=.inf", "'lr' must be a finite number, got inf"),
    ],
)
def test_bad_values_are_rejected(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(Outer, None, [override])


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(Outer, None, ["inner.dim=3", "sizes=[7]", "name=x"])
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Outer, tmp_path / "out.yaml") == cfg


def test_a_nan_in_a_yaml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("inner:\n  dim: 3\nlr: .nan\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: 'lr' must be a finite number"):
        load_config(Outer, path)


@dataclass
class WithOptionalSection:
    inner: Inner | None = None
    "An optional sub-config."


def test_an_unknown_key_inside_an_optional_section_is_named():
    """`inner: Inner | None` given a mapping reports the mapping's own error, not 'matches none of ...'."""
    with pytest.raises(ConfigError, match=r"'inner\.dimm' is not a field of Inner.*did you mean inner\.dim"):
        load_config(WithOptionalSection, None, ["inner.dimm=3"])
    assert load_config(WithOptionalSection, None, ["inner.dim=3"]).inner == Inner(dim=3)
    assert load_config(WithOptionalSection, None, ["inner=null"]).inner is None
