import math

import pytest
import torch

from cmseg.engine.schedules import lr_factor, make_lr_lambda
from cmseg.errors import ConfigError


def factors(n, **kwargs):
    return [lr_factor(s, **kwargs) for s in range(n)]


def test_linear_warmup_reaches_one_on_its_last_step():
    assert factors(5, name="constant", max_steps=10, warmup_steps=4) == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_constant_without_warmup():
    assert factors(3, name="constant", max_steps=3) == [1.0, 1.0, 1.0]


def test_step_decays_every_step_size_steps_from_the_start():
    got = factors(7, name="step", max_steps=7, step_size=3, gamma=0.5)
    assert got == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    # with warm-up the milestones stay where they were (absolute steps)
    assert lr_factor(3, name="step", max_steps=7, warmup_steps=2, step_size=3, gamma=0.5) == 0.5


def test_poly_by_hand():
    # warm-up 2, then t = (s - 2) / 8
    kw = dict(name="poly", max_steps=10, warmup_steps=2, power=2.0)
    assert lr_factor(2, **kw) == 1.0
    assert lr_factor(6, **kw) == pytest.approx(0.25)  # (1 - 0.5) ** 2
    assert lr_factor(10, **kw) == 0.0
    assert lr_factor(50, **kw) == 0.0  # clipped past the end
    assert lr_factor(10, **kw, floor=0.1) == pytest.approx(0.1)
    assert lr_factor(6, **kw, floor=0.1) == pytest.approx(0.1 + 0.9 * 0.25)


def test_poly_with_a_longer_horizon_stops_part_way_like_cmpc():
    # TF polynomial_decay(2.5e-4, step, 800000, end_learning_rate=1e-5, power=0.9), stopped at
    # 700k: lr = (2.5e-4 - 1e-5) * (1 - step / 800000) ** 0.9 + 1e-5
    floor = 1e-5 / 2.5e-4
    kw = dict(name="poly", max_steps=700_000, power=0.9, floor=floor, decay_steps=800_000)
    for step in (0, 350_000, 699_999):
        expected = (2.5e-4 - 1e-5) * (1 - step / 800_000) ** 0.9 + 1e-5
        assert 2.5e-4 * lr_factor(step, **kw) == pytest.approx(expected, rel=1e-12)
    assert 2.5e-4 * lr_factor(700_000, **kw) == pytest.approx(4.7e-5, abs=5e-7)  # the note's value


def test_cosine_endpoints_and_midpoint():
    kw = dict(name="cosine", max_steps=12, warmup_steps=2)
    assert lr_factor(2, **kw) == 1.0
    assert lr_factor(7, **kw) == pytest.approx(0.5)
    assert lr_factor(12, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(12, **kw, floor=0.2) == pytest.approx(0.2)
    assert lr_factor(4, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="linear"),
        dict(name="step", step_size=0),
        dict(name="constant", warmup_steps=-1),
        dict(name="cosine", min_lr=1.0),
        dict(name="poly", decay_steps=-1),
        dict(name="poly", warmup_steps=5, decay_steps=5),
    ],
)
def test_bad_settings_raise_config_errors(kwargs):
    with pytest.raises(ConfigError):
        make_lr_lambda(base_lr=0.1, max_steps=10, **kwargs)


def test_lambda_lr_applies_the_factor_per_optimizer_step():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.2)
    fn = make_lr_lambda(name="cosine", base_lr=0.2, max_steps=6, warmup_steps=2, min_lr=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.1)  # warm-up 1/2
    assert seen[1] == pytest.approx(0.2)
    assert seen[2] == pytest.approx(0.2)
    assert seen[4] == pytest.approx(0.02 + 0.18 * 0.5)  # t = 2/4
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)  # after max_steps: the floor
