"""Building a network from a model section; the input-size check."""

from __future__ import annotations

import pytest

from cmseg.config import ModelConfig
from cmseg.engine.model_building import build_from_section, check_input_side
from cmseg.errors import ConfigError


def test_input_side_must_be_an_integer_multiple():
    assert check_input_side(64, 32) == 64 and check_input_side("320", 8) == 320
    for bad, match in (
        (True, "integer"),
        (64.5, "integer"),
        ("x", "integer"),
        (48, "multiple of 32"),
        (16, ">= 32"),
    ):
        with pytest.raises(ConfigError, match=match):
            check_input_side(bad, 32)


def test_a_section_builds_its_model_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="model.name is not set"):
        build_from_section(ModelConfig())
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_from_section({"name": "nope"})
    with pytest.raises(ConfigError, match=r"model.options: xmsnet_tiny does not take .*; hint"):
        build_from_section({"name": "xmsnet_tiny", "options": {"flavour": 1}}, options_hint="hint")
