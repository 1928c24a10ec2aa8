"""Typed configs: YAML files, key=value overrides, type checks and unknown-key suggestions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from cmseg.config import RunConfig, apply_overrides, from_dict, load_config, save_config, to_dict
from cmseg.errors import ConfigError, InputError


def test_defaults_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: ris\noptim:\n  lr: 2.5e-4\n  name: adamw\ntrain:\n  max_steps: 50\n")
    cfg = load_config(RunConfig, path, ["train.max_steps=70", "model.image_size=320"])
    assert cfg.task == "ris"
    assert cfg.optim.lr == 2.5e-4 and cfg.optim.name == "adamw"
    assert cfg.train.max_steps == 70 and cfg.model.image_size == 320
    assert cfg.schedule.name == "constant"  # untouched default


def test_override_types_are_parsed_and_checked():
    cfg = apply_overrides(
        RunConfig(),
        [
            "optim.lr=1e-4",  # YAML reads 1e-4 as a string: still a float
            "optim.betas=[0.5, 0.99]",
            "train.grad_clip=0.5",
            "train.ema_decay=null",
            "data.train_sets=[NJU2K, NLPR]",
            "model.name=007",  # a str field keeps the text as written
            "model.options.depth=3",  # free-form dict keys, values parsed
            "model.options.nested.flag=true",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.5, 0.99)
    assert cfg.train.grad_clip == 0.5 and cfg.train.ema_decay is None
    assert cfg.data.train_sets == ["NJU2K", "NLPR"]
    assert cfg.model.name == "007"
    assert cfg.model.options == {"depth": 3, "nested": {"flag": True}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_steps=1.5", "train.max_steps: expected an integer, got 1.5"),
        ("train.max_steps=true", "train.max_steps: expected an integer, got True"),
        ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
        ("train.amp=fp32", "train.amp: expected one of 'off', 'bf16', 'fp16', got 'fp32'"),
        ("optim.betas=[0.9]", "optim.betas: expected 2 values, got 1"),
        ("train.grad_clip=yes", "train.grad_clip: expected float or null, got True"),
        ("data.train_sets=NJU2K", "data.train_sets: expected a list, got 'NJU2K'"),
        ("optim.lr.x=1", "config key 'optim.lr' is a value, not a section"),
        ("novalue", "override 'novalue' is not of the form key=value"),
    ],
)
def test_bad_override_values(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("optim.lrr=1", "optim.lr"),
        ("train.max_step=3", "train.max_steps"),
        ("lr=3", "optim.lr"),  # a leaf typed without its section
        ("optm.lr=3", "optim.lr"),
        ("schedule.warmup=10", "schedule.warmup_steps"),
    ],
)
def test_unknown_override_key_suggests_closest(override, suggestion):
    with pytest.raises(ConfigError, match=rf"unknown config key .*did you mean '{suggestion}'\?$"):
        apply_overrides(RunConfig(), [override])


def test_unknown_yaml_key_suggests_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"
    ):
        load_config(RunConfig, path)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_config(RunConfig, bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_config(RunConfig, scalar)
    with pytest.raises(InputError, match="no such file"):
        load_config(RunConfig, tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_config(RunConfig, tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(RunConfig, empty) == RunConfig()


def test_save_and_reload_is_identity(tmp_path):
    cfg = apply_overrides(
        RunConfig(), ["optim.betas=[0.5,0.9]", "model.options.k=[1,2]", "task=rvos"]
    )
    save_config(cfg, tmp_path / "run" / "config.yaml")
    text = (tmp_path / "run" / "config.yaml").read_text()
    assert yaml.safe_load(text) == to_dict(cfg)
    assert load_config(RunConfig, tmp_path / "run" / "config.yaml") == cfg


@dataclass
class Inner:
    size: tuple[int, ...] = (1, 2)
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    names: list[str] = field(default_factory=list)
    scale: float | None = None


def test_from_dict_on_custom_dataclasses():
    cfg = from_dict(
        Outer, {"inner": {"size": [3, 4, 5], "mode": "b"}, "names": ["x", 1], "scale": 2}
    )
    assert cfg.inner.size == (3, 4, 5) and cfg.inner.mode == "b"
    assert cfg.names == ["x", "1"] and cfg.scale == 2.0
    with pytest.raises(ConfigError, match=r"inner.size\[1\]: expected an integer"):
        from_dict(Outer, {"inner": {"size": [3, "x"]}})
    with pytest.raises(ConfigError, match="inner: expected a mapping"):
        from_dict(Outer, {"inner": 3})
    with pytest.raises(
        ConfigError, match="unknown config key 'inner.mod'; did you mean 'inner.mode'"
    ):
        from_dict(Outer, {"inner": {"mod": "a"}})


def test_a_wrong_type_or_key_in_a_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batch_size: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, bad)
    assert str(err.value).startswith(f"{bad}: data.batch_size") and "\n" not in str(err.value)
    bad.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: .*optim.lrr"):
        load_config(RunConfig, bad)
    with pytest.raises(ConfigError) as err:  # an override is not from the file
        load_config(RunConfig, overrides=["data.batch_size=many"])
    assert not str(err.value).startswith(str(bad))
