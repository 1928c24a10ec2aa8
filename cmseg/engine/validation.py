"""What every task's validator shares: sharding over ranks, the distributed reduction of an
additive evaluator, and the mean over several validation sets.

A validator (``tasks/<task>/validate.py``) is ``validate(model) -> metrics``, called by
the trainer on every rank in eval mode under ``torch.no_grad()``. It scores each of its sets
with :func:`validate_sets`: the rank predicts its shard of the set's items into a fresh
evaluator, the evaluators of all ranks are merged (so every rank returns the scores of the
whole set), and the per-set metrics are combined by :func:`combine_sets`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from cmseg.engine import distributed

__all__ = ["shard", "reduce_evaluator", "combine_sets", "validate_sets"]

E = TypeVar("E")

#: Keys of an evaluator's result that are counts, not metrics: never averaged over sets.
COUNT_KEYS = ("num_items",)


def shard(items: Sequence[Any]) -> list[Any]:
    """This rank's share of ``items``: every ``world_size``-th one, starting at its rank."""
    return list(items[distributed.rank() :: distributed.world_size()])


def reduce_evaluator(local: E, new: Callable[[], E]) -> E:
    """The evaluators of all ranks merged in rank order (``local`` itself when alone).

    Any evaluator with additive state and ``merge`` works; ``new()`` makes the empty one the
    parts are merged into.
    """
    if not distributed.is_distributed():
        return local
    merged = new()
    for part in distributed.all_gather_objects(local):
        merged.merge(part)  # type: ignore[attr-defined]
    return merged


def combine_sets(per_set: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Metrics of several validation sets as one dict.

    One set: its metrics. Several: each metric's plain name is the mean over the sets (counts
    such as ``num_items`` are not averaged), and ``<set>/<metric>`` holds every set's own value.
    """
    if not per_set:
        return {}
    first = next(iter(per_set.values()))
    if len(per_set) == 1:
        return {k: float(v) for k, v in first.items()}
    names = [k for k in first if k not in COUNT_KEYS]
    metrics = {k: float(np.mean([m[k] for m in per_set.values()])) for k in names}
    for name, values in per_set.items():
        metrics.update({f"{name}/{k}": float(v) for k, v in values.items()})
    return metrics


def validate_sets(
    sets: Mapping[str, Any],
    *,
    new_evaluator: Callable[[], E],
    score_shard: Callable[[Any, E], None],
    summarise: Callable[[E], Mapping[str, float]],
) -> dict[str, float]:
    """Score every set on this rank's shard, reduce over ranks, combine the sets.

    Args:
        sets: ``{set name: set}`` in the task's own form.
        new_evaluator: an empty evaluator.
        score_shard: ``score_shard(set, evaluator)`` predicts this rank's share of the set
            (e.g. through :func:`shard`) into the evaluator.
        summarise: the flat metrics of a merged evaluator (``{name: float}``).

    Returns:
        :func:`combine_sets` of the sets that had any item.
    """
    per_set: dict[str, Mapping[str, float]] = {}
    for name, one_set in sets.items():
        evaluator = new_evaluator()
        score_shard(one_set, evaluator)
        evaluator = reduce_evaluator(evaluator, new_evaluator)
        if len(evaluator):  # type: ignore[arg-type]
            per_set[name] = summarise(evaluator)
    return combine_sets(per_set)
