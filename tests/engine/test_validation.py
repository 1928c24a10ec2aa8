"""The validation helpers every task's validator uses."""

from __future__ import annotations

import numpy as np
import pytest

from cmseg.engine.validation import combine_sets, reduce_evaluator, shard, validate_sets
from cmseg.metrics.masks import RISEvaluator


def test_one_set_keeps_its_metrics_and_several_are_averaged():
    assert combine_sets({}) == {}
    assert combine_sets({"a": {"oIoU": 0.5, "num_items": 3}}) == {"oIoU": 0.5, "num_items": 3.0}
    both = combine_sets({"a": {"oIoU": 0.5, "num_items": 3}, "b": {"oIoU": 0.7, "num_items": 1}})
    assert both["oIoU"] == pytest.approx(0.6)
    assert "num_items" not in both  # a count is not averaged over sets
    assert both["a/oIoU"] == 0.5 and both["b/num_items"] == 1.0


def test_alone_the_shard_is_everything_and_the_evaluator_is_returned_as_it_is():
    assert shard(list(range(5))) == [0, 1, 2, 3, 4]
    ev = RISEvaluator()
    assert reduce_evaluator(ev, RISEvaluator) is ev


def test_validate_sets_scores_each_set_and_skips_empty_ones():
    sets = {"a": [(1, 2), (2, 2)], "b": [(0, 4)], "empty": []}

    def score_shard(items, evaluator):
        for inter, union in shard(items):
            evaluator.update_counts(inter, union)

    metrics = validate_sets(
        sets, new_evaluator=RISEvaluator, score_shard=score_shard, summarise=RISEvaluator.compute
    )
    assert metrics["a/oIoU"] == pytest.approx(3 / 4) and metrics["b/oIoU"] == 0.0
    assert metrics["oIoU"] == pytest.approx(np.mean([3 / 4, 0.0]))
    assert "empty/oIoU" not in metrics
