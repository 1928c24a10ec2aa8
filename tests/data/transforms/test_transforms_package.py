"""The package keeps every name the single-module ``cmseg.data.transforms`` exported."""

from __future__ import annotations

import importlib

import pytest

from cmseg.data import transforms as T

# Every public name of the module before it became a package (``__all__`` plus the type
# aliases and the spatial roles), importable from the package itself.
NAMES = [*T.__all__, "RngLike", "Sample", "HW", "SPATIAL_ROLES"]


@pytest.mark.parametrize("name", NAMES)
def test_name_importable_from_the_package(name):
    module = importlib.import_module("cmseg.data.transforms")
    assert hasattr(module, name), f"cmseg.data.transforms.{name} is gone"


def test_all_lists_the_public_transforms():
    assert len(T.__all__) == 22 and len(set(T.__all__)) == 22
    assert T.SPATIAL_ROLES == ("rgb", "aux", "valid", "mask")
    assert T.IMAGENET_MEAN == (0.485, 0.456, 0.406) and T.IMAGENET_STD == (0.229, 0.224, 0.225)
