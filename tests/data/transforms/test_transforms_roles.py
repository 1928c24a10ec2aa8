"""Key roles and the left/right swap of sentences under a flip."""

from __future__ import annotations

import numpy as np
import pytest
from transforms_helpers import identical, sod_sample, textured_sample

from cmseg.data import transforms as T


@pytest.mark.parametrize(
    "key, role",
    [
        ("image", "rgb"),
        ("images", "rgb"),
        ("frames", "rgb"),
        ("support_frames", "rgb"),
        ("aux", "aux"),
        ("aux_valid", "valid"),
        ("mask", "mask"),
        ("masks", "mask"),
        ("support_masks", "mask"),
        ("sentence", "text"),
        ("sentences", "text"),
        ("name", None),
        ("set", None),
        ("valid_indices_x", None),
    ],
)
def test_key_roles(key, role):
    assert T.key_role(key) == role


@pytest.mark.parametrize(
    "before, after",
    [
        ("the cat on the left", "the cat on the right"),
        ("Right man", "Left man"),
        ("LEFT ONE", "RIGHT ONE"),
        ("leftmost zebra", "rightmost zebra"),
        ("Rightmost zebra", "Leftmost zebra"),
        ("the cup left of the plate", "the cup right of the plate"),
        ("person right of the car, left of the tree", "person left of the car, right of the tree"),
        ("left-hand glove", "right-hand glove"),
        ("moving leftwards", "moving rightwards"),
        ("a bright light, copyright", "a bright light, copyright"),
        ("leftover pizza", "leftover pizza"),
        ("", ""),
    ],
)
def test_swap_left_right(before, after):
    assert T.swap_left_right(before) == after
    assert T.swap_left_right(after) == before


def test_flip_swaps_sentences_only_when_it_flips():
    sample = {**sod_sample(), "sentence": "the Left dog", "sentences": ["left", "a right b"]}
    flipped = T.HorizontalFlip(p=1.0)(sample, rng=0)
    assert flipped["sentence"] == "the Right dog"
    assert flipped["sentences"] == ["right", "a left b"]
    np.testing.assert_array_equal(flipped["image"], sample["image"][:, ::-1])
    np.testing.assert_array_equal(flipped["mask"], sample["mask"][:, ::-1])
    np.testing.assert_array_equal(flipped["aux"], sample["aux"][:, ::-1])
    kept = T.HorizontalFlip(p=0.0)(sample, rng=0)
    assert kept["sentence"] == "the Left dog"
    assert kept["image"] is sample["image"]
    no_swap = T.HorizontalFlip(p=1.0, swap_text=False)(sample, rng=0)
    assert no_swap["sentence"] == "the Left dog"


def test_flip_twice_is_identity_and_swaps_back():
    sample = {**textured_sample(), "sentence": "leftmost"}
    twice = T.Compose([T.HorizontalFlip(p=1.0), T.HorizontalFlip(p=1.0)])(sample, rng=3)
    assert identical(twice, sample)
