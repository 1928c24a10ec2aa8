import csv
import dataclasses
import logging
import types

import pytest
import torch
from engine_toy import RandomSet, TinyNet, bce_loss, make_trainer

from cmseg.config import OptimConfig, RunConfig, ScheduleConfig, load_config
from cmseg.engine.checkpoint import load_checkpoint, load_resume_state
from cmseg.engine.distributed import resolve_device
from cmseg.engine.trainer import ModelEMA, TrainingDiverged
from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError, InputError, NotBuiltError
from cmseg.tasks import TASKS

SGD = OptimConfig(name="sgd", lr=0.1, momentum=0.0)
CONSTANT = ScheduleConfig(name="constant")


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def csv_rows(path, split="train", name="loss"):
    with open(path, newline="") as f:
        return [
            (r["step"], r["value"])
            for r in csv.DictReader(f)
            if r["split"] == split and r["name"] == name
        ]


# --------------------------------------------------------------------------------------------
# Resume


class Interrupt(Exception):
    """Stands for the process being killed."""


@pytest.mark.parametrize("num_workers", [0, 2])
def test_interrupted_and_resumed_run_ends_bitwise_identical(tmp_path, num_workers):
    def validate(model):
        torch.rand(3)  # validation that draws random numbers must not shift training
        return {"score": float(model.head.bias.sum())}

    settings = dict(
        model=lambda: TinyNet(dropout=0.3, norm=True),  # dropout and BatchNorm: RNG and buffers
        num_workers=num_workers,
        validate=validate,
        max_steps=8,
        accumulate=2,
        grad_clip=0.5,
        grad_clip_mode="value",
        ema_decay=0.8,
        eval_every=3,
        checkpoint_every=4,
    )
    # 24 samples / batch 4 = 6 batches per epoch; 2 per step, so the checkpoint at step 4 lies
    # in the middle of epoch 1 (batch 2).
    full = make_trainer(tmp_path / "full", **settings)
    full.fit()

    calls = {"n": 0}

    def dying_loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == 11:  # inside step 6, after the step-4 checkpoint and step-5 logs
            raise Interrupt
        return bce_loss(outputs, batch)

    first = make_trainer(tmp_path / "cut", **settings, loss_fn=dying_loss)
    with pytest.raises(Interrupt):
        first.fit()
    assert load_resume_state(tmp_path / "cut")["data"] == {
        "epoch": 1,
        "batch": 2,
        "batch_size": 4,
        "world_size": 1,
    }

    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    resumed = make_trainer(tmp_path / "cut", **settings)
    resumed.fit(resume=tmp_path / "cut" / "last")

    assert resumed.step == full.step == 8
    assert_bitwise_equal(weights(resumed), weights(full))
    assert_bitwise_equal(resumed.ema.module.state_dict(), full.ema.module.state_dict())
    assert_bitwise_equal(
        load_checkpoint(tmp_path / "cut")[0], load_checkpoint(tmp_path / "full")[0]
    )
    # the log reads as one run: the interrupted run's rows after step 4 were replaced
    assert csv_rows(tmp_path / "cut" / "metrics.csv") == csv_rows(tmp_path / "full" / "metrics.csv")
    assert [s for s, _ in csv_rows(tmp_path / "cut" / "metrics.csv")] == ["2", "4", "6", "8"]


def test_validation_does_not_change_training(tmp_path):
    def validate(model):
        torch.rand(5)
        return {"score": 0.0}

    a = make_trainer(
        tmp_path / "a", model=lambda: TinyNet(dropout=0.5), validate=validate, eval_every=1
    )
    b = make_trainer(tmp_path / "b", model=lambda: TinyNet(dropout=0.5))
    a.fit()
    b.fit()
    assert_bitwise_equal(weights(a), weights(b))


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    t = make_trainer(tmp_path, max_steps=2)
    t.fit()
    again = make_trainer(tmp_path, max_steps=2)
    again.fit(resume=tmp_path)
    assert again.step == 2
    assert_bitwise_equal(weights(again), weights(t))


# --------------------------------------------------------------------------------------------
# Optimisation


def one_sgd_step(tmp_path, **train):
    def big_loss(outputs, batch):
        loss, parts = bce_loss(outputs, batch)
        return 1000 * loss, parts

    t = make_trainer(tmp_path, optim=SGD, schedule=CONSTANT, loss_fn=big_loss, max_steps=1, **train)
    before = [p.detach().clone() for p in t.model.parameters()]
    t.fit()
    # SGD without momentum: the update is -lr * (clipped) gradient
    return [(p.detach() - b) / -0.1 for p, b in zip(t.model.parameters(), before, strict=True)]


def test_clipping_by_value_really_clips(tmp_path):
    grads = one_sgd_step(tmp_path / "a")
    assert max(g.abs().max() for g in grads) > 0.01  # large without clipping
    clipped = one_sgd_step(tmp_path / "b", grad_clip=0.01, grad_clip_mode="value")
    assert max(g.abs().max() for g in clipped) <= 0.01 + 1e-6
    assert any(torch.isclose(g.abs().max(), torch.tensor(0.01)) for g in clipped)


def test_clipping_by_norm_really_clips(tmp_path):
    grads = one_sgd_step(tmp_path / "a")
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    assert norm > 1
    clipped = one_sgd_step(tmp_path / "b", grad_clip=0.5, grad_clip_mode="norm")
    clipped_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in clipped]))
    assert clipped_norm == pytest.approx(0.5, rel=1e-4)
    for g, c in zip(grads, clipped, strict=True):  # same direction, scaled
        assert torch.allclose(c, g * 0.5 / norm, atol=1e-5)


def test_accumulation_equals_a_larger_batch(tmp_path):
    big = make_trainer(
        tmp_path / "a", optim=SGD, schedule=CONSTANT, transform=None, batch_size=8, max_steps=3
    )
    small = make_trainer(
        tmp_path / "b",
        optim=SGD,
        schedule=CONSTANT,
        transform=None,
        batch_size=4,
        accumulate=2,
        max_steps=3,
    )
    start = weights(big)
    assert_bitwise_equal(start, weights(small))  # same start
    big.fit()
    small.fit()
    for k, v in weights(big).items():
        assert torch.allclose(v, weights(small)[k], atol=1e-6), k
    assert not torch.equal(weights(big)["head.bias"], start["head.bias"])  # it did train


ADAM = OptimConfig(name="adam", lr=1e-2)


def adam_steps(trainer):
    """Adam's step counter of every parameter (0 for a parameter without state)."""
    state = trainer.optimizer.state
    return {int(state[p]["step"]) if p in state else 0 for p in trainer.model.parameters()}


def test_reset_on_decay_restarts_adam_at_each_decay(tmp_path):
    """SSNM re-creates Adam at each decay: the moments (and the step count of the bias
    correction) start afresh exactly when the learning rate drops."""
    schedule = ScheduleConfig(name="step", step_size=2, gamma=0.5)
    reset = OptimConfig(name="adam", lr=1e-2, reset_on_decay=True)
    at_decay = make_trainer(tmp_path / "a", optim=reset, schedule=schedule, max_steps=2)
    at_decay.fit()
    assert adam_steps(at_decay) == {0}  # steps 0, 1 at lr 1e-2; step 2 will be at 5e-3
    after = make_trainer(tmp_path / "b", optim=reset, schedule=schedule, max_steps=3)
    after.fit()
    assert adam_steps(after) == {1}
    plain = make_trainer(tmp_path / "c", optim=ADAM, schedule=schedule, max_steps=3)
    plain.fit()
    assert adam_steps(plain) == {3}
    assert not torch.equal(weights(after)["head.weight"], weights(plain)["head.weight"])
    assert after.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    with pytest.raises(ConfigError, match="reset_on_decay.*step"):
        make_trainer(tmp_path / "d", optim=reset, schedule=ScheduleConfig(name="cosine"))


@pytest.mark.parametrize("step_size", [2, 3])
def test_reset_on_decay_survives_a_resume(tmp_path, step_size):
    """Resumed from the step-4 checkpoint (step_size 2: the moments were just reset there; 3:
    one step after the reset), the run ends bitwise equal to one that never stopped."""
    settings = dict(
        optim=OptimConfig(name="adam", lr=1e-2, reset_on_decay=True),
        schedule=ScheduleConfig(name="step", step_size=step_size, gamma=0.5),
        max_steps=7,
        checkpoint_every=2,
    )
    full = make_trainer(tmp_path / "full", **settings)
    full.fit()
    calls = {"n": 0}

    def dying_loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # inside step 5, after the step-4 checkpoint
            raise Interrupt
        return bce_loss(outputs, batch)

    with pytest.raises(Interrupt):
        make_trainer(tmp_path / "cut", **settings, loss_fn=dying_loss).fit()
    resumed = make_trainer(tmp_path / "cut", **settings)
    resumed.fit(resume=tmp_path / "cut" / "last")
    assert_bitwise_equal(weights(resumed), weights(full))
    # the last reset came after step 6 either way (decays at 2, 4, 6 or at 3, 6)
    assert adam_steps(resumed) == adam_steps(full) == {1}


def test_ema_update_rule():
    model = TinyNet(norm=True)
    ema = ModelEMA(model, decay=0.9)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.norm.num_batches_tracked += 5
    ema.update(model)
    new = model.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.9 * start[k] + 0.1 * new[k], atol=1e-6), k
        else:
            assert torch.equal(v, new[k]), k
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ConfigError):
        ModelEMA(model, decay=1.0)


def test_ema_copy_is_validated_and_saved(tmp_path):
    seen = []

    def validate(model):
        seen.append(model)
        return {"score": 1.0}

    t = make_trainer(tmp_path, ema_decay=0.5, validate=validate, max_steps=2)
    t.fit()
    assert seen == [t.ema.module]
    for name in ("last", "best"):
        sd, meta = load_checkpoint(tmp_path / name)
        assert meta["ema"] is True
        assert_bitwise_equal(sd, t.ema.module.state_dict())
    raw = load_resume_state(tmp_path)["model"]
    assert_bitwise_equal(raw, t.model.state_dict())


# --------------------------------------------------------------------------------------------
# Validation, best checkpoint, logs


@pytest.mark.parametrize(("higher", "best_step"), [(True, 4), (False, 2)])
def test_best_checkpoint_follows_the_named_metric(tmp_path, higher, best_step):
    scores = iter([0.2, 0.9, 0.5])

    def validate(model):
        return {"score": next(scores), "other": 1.0}

    t = make_trainer(
        tmp_path, validate=validate, eval_every=2, max_steps=6, higher_is_better=higher
    )
    final = t.fit()
    assert final == {"score": 0.5, "other": 1.0}
    sd, meta = load_checkpoint(tmp_path / "best")
    assert meta["step"] == best_step and meta["metrics"]["score"] == {4: 0.9, 2: 0.2}[best_step]
    assert not (tmp_path / "best" / "state.pt").exists()
    assert load_checkpoint(tmp_path / "last")[1]["step"] == 6
    assert load_resume_state(tmp_path)["best"] == {
        "metric": "score",
        "value": meta["metrics"]["score"],
        "step": best_step,
    }
    assert [s for s, _ in csv_rows(tmp_path / "metrics.csv", "val", "score")] == ["2", "4", "6"]


def test_unknown_best_metric_is_a_config_error(tmp_path):
    t = make_trainer(tmp_path, validate=lambda m: {"sm": 1.0}, best_metric="smm", max_steps=1)
    with pytest.raises(ConfigError, match="'smm' is not a validation metric.*sm"):
        t.fit()


def test_csv_header_once_and_tensorboard_optional(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cmseg")
    t = make_trainer(tmp_path, max_steps=4, log_every=1, tensorboard=True)
    t.fit()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,split,name,value" and lines.count(lines[0]) == 1
    names = {line.split(",")[2] for line in lines[1:]}
    assert names == {"loss", "bce", "const", "lr", "images_per_s"}
    assert "step 4/4  loss" in caplog.text  # the progress line when no terminal is attached
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert "TensorBoard logging is off" in caplog.text
    else:
        assert any((tmp_path / "tensorboard").iterdir())


def test_amp_is_off_on_cpu_with_one_info_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cmseg")
    t = make_trainer(tmp_path, amp="bf16", max_steps=1)
    assert t.amp_dtype is None and t.scaler is None
    assert "mixed precision is CUDA-only" in caplog.text
    t.fit()
    assert all(p.dtype == torch.float32 for p in t.model.parameters())


def test_setup_errors(tmp_path):
    with pytest.raises(ConfigError, match="too few for one batch"):
        make_trainer(tmp_path, dataset=RandomSet(n=3), batch_size=4).fit()
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="accumulate"):
        make_trainer(tmp_path, accumulate=0)


def test_divergence_is_reported(tmp_path):
    t = make_trainer(tmp_path, loss_fn=lambda o, b: (o.mean() * float("nan"), {}), max_steps=2)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 2"):
        t.fit()


# --------------------------------------------------------------------------------------------
# The command


def test_run_train_through_a_task_builder(tmp_path, monkeypatch):
    from cmseg.commands.train import run_train

    cfg = load_config(
        RunConfig,
        overrides=[
            f"output_dir={tmp_path / 'run'}",
            "train.device=cpu",
            "train.max_steps=3",
            "train.tensorboard=false",
            "data.batch_size=4",
            "data.num_workers=0",
        ],
    )
    # a task without a training hook yet
    monkeypatch.setitem(TASKS, "sod", dataclasses.replace(TASKS["sod"], train=None))
    with pytest.raises(NotBuiltError):
        run_train(cfg)

    def build(run_cfg):
        return TrainingSetup(
            model=TinyNet(),
            loss_fn=bce_loss,
            train_dataset=RandomSet(),
            model_name="tiny",
            validate=lambda m: {"score": 1.0},
            best_metric="score",
        )

    hook = types.SimpleNamespace(load=lambda: build)  # a Hook that needs no module
    monkeypatch.setitem(TASKS, "sod", dataclasses.replace(TASKS["sod"], train=hook))
    assert run_train(cfg) == 0
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file()
    sd, meta = load_checkpoint(run)
    assert (
        meta["step"] == 3
        and meta["model_name"] == "tiny"
        and meta["config"]["train"]["max_steps"] == 3
    )
    with pytest.raises(InputError, match="--resume"):
        run_train(cfg)  # never overwrite a trained run silently
    longer = load_config(
        RunConfig,
        overrides=[
            f"output_dir={run}",
            "train.device=cpu",
            "train.max_steps=5",
            "train.tensorboard=false",
            "data.batch_size=4",
            "data.num_workers=0",
        ],
    )
    assert run_train(longer, resume=str(run)) == 0
    assert load_checkpoint(run)[1]["step"] == 5
