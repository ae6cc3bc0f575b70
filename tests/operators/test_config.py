"""Optimisers, schedules and recipes of ``operators.config``: the one-cycle against PyTorch's
OneCycleLR formula (and the scheduler itself where torch is installed), coupled L2 against
decoupled weight decay on a quadratic with known fixed points, the reference recipe's options."""

from __future__ import annotations

import math

import numpy as np
import pytest

from operators.config import (
    RECIPES,
    as_stored,
    make_optimizer,
    make_schedule,
    onecycle,
    onecycle_momentum,
    training_options,
)


def torch_onecycle(step: int, total: int, max_lr: float, pct_start: float = 0.2,
                   div_factor: float = 2.0, final_div_factor: float = 100.0,
                   base_m: float = 0.85, max_m: float = 0.95) -> tuple[float, float]:
    """(lr, beta1) of PyTorch's ``OneCycleLR(anneal_strategy="cos", three_phase=False,
    cycle_momentum=True)`` after ``step`` scheduler steps, written from its documented
    formula: two phases ending at ``pct_start * total - 1`` and ``total - 1``."""
    initial = max_lr / div_factor
    phases = [(float(pct_start * total) - 1, initial, max_lr, max_m, base_m),
              (total - 1, max_lr, initial / final_div_factor, base_m, max_m)]

    def cos(a, b, pct):
        return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)

    start = 0.0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            pct = (step - start) / (end - start)
            return cos(lr0, lr1, pct), cos(m0, m1, pct)
        start = end
    raise AssertionError


@pytest.mark.parametrize("total", [500, 37])
def test_onecycle_is_pytorchs_onecycle(total):
    lr, b1 = onecycle(5e-4, total), onecycle_momentum(total)
    pct_end = round(0.2 * total) - 1
    for t in sorted({0, 1, pct_end // 2, pct_end, pct_end + 1, total // 2, total - 2, total - 1}):
        want_lr, want_b1 = torch_onecycle(t, total, 5e-4)
        assert float(lr(t)) == pytest.approx(want_lr, rel=2e-6), t
        assert float(b1(t)) == pytest.approx(want_b1, rel=2e-6), t
    # the shape: peak/2 -> peak -> peak/200, beta1 0.95 -> 0.85 -> 0.95
    assert float(lr(0)) == pytest.approx(2.5e-4) and float(lr(total - 1)) == pytest.approx(2.5e-6)
    assert float(b1(0)) == pytest.approx(0.95) and float(b1(total - 1)) == pytest.approx(0.95)
    if total == 500:  # the turn falls on a unit: peak lr and lowest beta1 there
        assert float(lr(99)) == pytest.approx(5e-4) and float(b1(99)) == pytest.approx(0.85)


def test_schedule_stepped_per_epoch_holds_within_an_epoch():
    epochs, per = 10, 7
    sched = make_schedule("onecycle", 1e-3, epochs * per, steps_per_epoch=per, epochs=epochs,
                          every="epoch")
    for step in range(epochs * per):
        assert float(sched(step)) == pytest.approx(torch_onecycle(step // per, epochs, 1e-3)[0],
                                                   rel=2e-6)
    cos = make_schedule("cosine", 1e-3, epochs * per, steps_per_epoch=per, every="epoch")
    assert [float(cos(e * per + 3)) for e in range(epochs)] == pytest.approx(
        [1e-3 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)], rel=1e-5)
    # the step schedule follows the budget: x0.5 after each fifth of the run, in steps or epochs
    step = make_schedule("step", 1e-3, 100)
    assert [float(step(t)) for t in (19, 20, 99)] == pytest.approx([1e-3, 5e-4, 1e-3 / 16])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_schedule("onecycle", 1e-3, 10, every="epoch")


def _config(**kw) -> dict:
    base = {"optimizer": "adamw", "schedule": "constant", "schedule_every": "step",
            "cycle_momentum": False, "lr": 1e-2, "weight_decay": 0.5, "batch_size": 1,
            "epochs": 1, "steps_per_epoch": 1}
    return {**base, **kw}


def _run(config: dict, p0: float, c: float | None, steps: int) -> np.ndarray:
    """The iterates of ``steps`` updates from ``p0`` on the batch-mean loss ``(p - c)^2 / 2``
    (``c=None``: no loss, a zero gradient: only the decay acts)."""
    import jax
    import jax.numpy as jnp
    import optax

    tx, _ = make_optimizer(config)
    p = jnp.array([p0], jnp.float32)

    def body(carry, _):
        p, state = carry
        u, state = tx.update(jnp.zeros_like(p) if c is None else p - c, state, p)
        p = optax.apply_updates(p, u)
        return (p, state), p[0]

    _, path = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
    return np.asarray(path)


def test_coupled_l2_and_decoupled_decay_differ_as_their_updates_say():
    lr, wd = 1e-2, 0.5
    # first step from p0 = 1 on p^2 / 2 (g = 1): Adam's first step is lr * sign(its input)
    assert _run(_config(optimizer="adam-l2"), 1.0, 0.0, 1)[0] == pytest.approx(1 - lr, rel=1e-6)
    assert _run(_config(optimizer="adamw"), 1.0, 0.0, 1)[0] == pytest.approx(1 - lr * (1 + wd), rel=1e-6)
    # decay alone (zero gradient): decoupled shrinks geometrically, p_t = (1 - lr wd)^t p0;
    # coupled feeds wd p through Adam's normalisation: steps of ~lr whatever the size of p
    t = np.arange(1, 51)
    np.testing.assert_allclose(_run(_config(optimizer="adamw"), 1.0, None, 50),
                               (1 - lr * wd) ** t, rtol=1e-5)
    steps = -np.diff(_run(_config(optimizer="adam-l2"), 1.0, None, 50), prepend=1.0)
    assert steps[0] == pytest.approx(lr, rel=1e-4) and np.all((steps > 0.75 * lr) & (steps < 1.001 * lr))
    # fixed points (cosine to 0 over the run, so the iterates settle): coupled L2 minimises
    # B (p - c)^2 / 2 + wd p^2 / 2 (B = batch: the reference sums the loss over the batch):
    # p = B c / (B + wd). Decoupled decay is not the gradient of a penalty: it stops near c.
    for batch in (1, 4):
        cfg = _config(optimizer="adam-l2", schedule="cosine", epochs=4000, batch_size=batch)
        assert _run(cfg, 0.0, 1.0, 4000)[-1] == pytest.approx(batch / (batch + wd), abs=2e-3)
    p = _run(_config(optimizer="adamw", schedule="cosine", epochs=4000), 0.0, 1.0, 4000)[-1]
    assert 0.9 < p < 1.0


@pytest.mark.slow
def test_adam_l2_with_the_recipe_follows_pytorch_adam_and_onecycle_per_epoch():
    """The reference's training loop in PyTorch (Adam with weight_decay = coupled L2, losses
    summed over the batch, OneCycleLR(steps_per_epoch=1) stepped after each epoch, beta1
    cycled) against ours on a least-squares problem: the same parameters after every epoch."""
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(0)
    epochs, per, batch, lr, wd = 6, 3, 4, 5e-2, 1e-1
    x = rng.normal(size=(epochs, per, batch, 3)).astype(np.float64)
    y = rng.normal(size=(epochs, per, batch)).astype(np.float64)
    w0 = rng.normal(size=3)

    w = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, div_factor=2, final_div_factor=100,
                                                pct_start=0.2, steps_per_epoch=1, epochs=epochs)
    theirs = []
    for e in range(epochs):
        for s in range(per):
            opt.zero_grad()
            loss = ((torch.tensor(x[e, s]) @ w - torch.tensor(y[e, s])) ** 2).sum()  # summed
            loss.backward()
            opt.step()
        sched.step()
        theirs.append(w.detach().numpy().copy())

    with jax.enable_x64(True):
        cfg = {**RECIPES["mgno-reference"], "lr": lr, "weight_decay": wd, "batch_size": batch,
               "epochs": epochs, "steps_per_epoch": per}
        tx, _ = make_optimizer(cfg)

        @jax.jit
        def step(p, state, xb, yb):
            g = jax.grad(lambda p: jnp.mean((xb @ p - yb) ** 2))(p)  # the batch mean, as ours
            u, state = tx.update(g, state, p)
            return optax.apply_updates(p, u), state

        p = jnp.asarray(w0)
        state = tx.init(p)
        ours = []
        for e in range(epochs):
            for s in range(per):
                p, state = step(p, state, x[e, s], y[e, s])
            ours.append(np.asarray(p))
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-6, atol=1e-9)


@pytest.mark.slow  # importing torch takes seconds
@pytest.mark.parametrize("pct_start, final_div", [(0.2, 100.0), (0.1, 50.0)])  # Darcy, NS
def test_onecycle_matches_the_pytorch_scheduler(pct_start, final_div):
    torch = pytest.importorskip("torch")
    epochs = 50
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-4, div_factor=2, final_div_factor=final_div,
                                                pct_start=pct_start, steps_per_epoch=1, epochs=epochs)
    lr = onecycle(5e-4, epochs, pct_start=pct_start, final_div_factor=final_div)
    b1 = onecycle_momentum(epochs, pct_start=pct_start)
    for e in range(epochs):
        group = opt.param_groups[0]
        assert float(lr(e)) == pytest.approx(group["lr"], rel=2e-6)
        assert float(b1(e)) == pytest.approx(group["betas"][0], rel=2e-6)
        opt.step()
        sched.step()


def test_recipe_sets_options_and_explicit_ones_win():
    opts = training_options("mgno", recipe="mgno-reference")
    assert {k: opts[k] for k in RECIPES["mgno-reference"]} == RECIPES["mgno-reference"]
    assert opts["recipe"] == "mgno-reference"
    opts = training_options("fno", recipe="mgno-reference", epochs=30, batch_size=4)
    assert (opts["epochs"], opts["batch_size"], opts["optimizer"]) == (30, 4, "adam-l2")
    plain = training_options("fno")
    assert (plain["optimizer"], plain["schedule_every"], plain["cycle_momentum"]) == ("adamw", "step", False)
    with pytest.raises(ValueError, match="unknown recipe"):
        training_options("fno", recipe="fno-paper")
    with pytest.raises(ValueError, match="unknown optimizer"):
        training_options("fno", optimizer="sgd")
    with pytest.raises(ValueError, match="needs schedule 'onecycle'"):
        training_options("fno", cycle_momentum=True, schedule="step")


def test_runs_from_before_the_optimiser_options_keep_their_config():
    new = {"model": "fno", "epochs": 3, "optimizer": "adamw", "schedule_every": "step",
           "cycle_momentum": False}
    old = {"model": "fno", "epochs": 3}
    assert as_stored(new, old) == old                    # same run: resumes
    assert as_stored(new, None) == new and as_stored(new, new) == new
    changed = {**new, "optimizer": "adam-l2"}
    assert as_stored(changed, old) == changed            # a different run: refused by ensure_config


def test_cli_refuses_momentum_cycling_without_a_one_cycle(tmp_path, capsys):
    from operators.__main__ import main

    code = main(["train", "--data", str(tmp_path / "none.nc"), "--model", "fno", "--out",
                 str(tmp_path / "run"), "--schedule", "step", "--cycle-momentum"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs schedule 'onecycle'" in err[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# the reference's one-cycle shape per dataset, its recipe per model and data, old runs
# ------------------------------------------------------------------------------------------
def test_pct_start_and_final_div_factor_follow_pytorchs_onecycle_formula():
    """The reference's Navier-Stokes run: OneCycleLR(pct_start=0.1, final_div_factor=50) per
    epoch; lr and beta1 against the formula at every epoch of a 40-epoch run."""
    from operators.config import momentum_schedule

    epochs, per, peak = 40, 3, 1e-3
    sched = make_schedule("onecycle", peak, epochs * per, steps_per_epoch=per, epochs=epochs,
                          every="epoch", pct_start=0.1, final_div_factor=50)
    config = {"schedule": "onecycle", "schedule_every": "epoch", "cycle_momentum": True,
              "epochs": epochs, "steps_per_epoch": per, "pct_start": 0.1}
    b1 = momentum_schedule(config)
    for e in range(epochs):
        want_lr, want_b1 = torch_onecycle(e, epochs, peak, pct_start=0.1, final_div_factor=50)
        for step in (e * per, e * per + per - 1):
            assert float(sched(step)) == pytest.approx(want_lr, rel=2e-6), e
            assert float(b1(step)) == pytest.approx(want_b1, rel=2e-6), e
    assert float(sched(3 * per)) == pytest.approx(peak)          # the turn: epoch 0.1 * 40 - 1
    assert float(sched(epochs * per - 1)) == pytest.approx(peak / 2 / 50)
    default = make_schedule("onecycle", peak, epochs * per, steps_per_epoch=per, epochs=epochs,
                            every="epoch")
    assert float(default(3 * per)) < peak and float(default(7 * per)) == pytest.approx(peak)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, float("nan")])
def test_pct_start_outside_the_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="pct_start"):
        training_options("mgno", pct_start=bad)


def test_recipe_takes_the_reference_values_per_model_and_data():
    ns = training_options("mgno-ns", recipe="mgno-reference", pde="navier_stokes")
    assert (ns["pct_start"], ns["final_div_factor"], ns["lr"], ns["weight_decay"]) == (0.1, 50.0, 1e-3, 1e-5)
    assert (ns["loss"], ns["batch_size"], ns["one_step"]) == ("l2", 500, 10)
    assert (ns["normaliser"], ns["output_normaliser"]) == ("none", "none")
    helm = training_options("mgno-helmholtz", recipe="mgno-reference", pde="helmholtz")
    assert (helm["loss"], helm["lr"], helm["batch_size"], helm["epochs"]) == ("h1-helmholtz", 3e-4, 10, 100)
    assert (helm["normaliser"], helm["output_normaliser"], helm["pct_start"]) == ("unit", "unit", 0.2)
    rough = training_options("mgno", recipe="mgno-reference", pde="darcy-rough")
    assert (rough["normaliser"], rough["output_normaliser"], rough["h1_loss"]) == ("none", "unit", "spectral")
    assert training_options("mgno", recipe="mgno-reference", pde="darcy")["output_normaliser"] == "pointwise"
    # an explicit --normaliser sets both sides; --output-normaliser the output alone
    both = training_options("mgno", recipe="mgno-reference", pde="darcy-rough", normaliser="unit")
    assert (both["normaliser"], both["output_normaliser"]) == ("unit", "unit")
    out = training_options("mgno", pde="darcy-rough", recipe="mgno-reference", output_normaliser="none")
    assert (out["normaliser"], out["output_normaliser"]) == ("none", "none")
    plain = training_options("mgno")
    assert (plain["pct_start"], plain["final_div_factor"], plain["one_step"]) == (0.2, 100.0, None)
    assert plain["output_normaliser"] == plain["normaliser"] == "unit" and "h1_loss" not in plain
    with pytest.raises(ValueError, match="unknown output_normaliser"):
        training_options("mgno", output_normaliser="minmax")
    with pytest.raises(ValueError, match="one_step must be a positive integer"):
        training_options("mgno", one_step=0)


def test_runs_from_before_the_recipe_details_keep_their_config():
    """A run folder written before pct_start / final_div_factor / output_normaliser / one_step
    existed resumes with the same command; a changed value is a different run."""
    new = training_options("mgno")
    old = {k: v for k, v in new.items()
           if k not in ("pct_start", "final_div_factor", "output_normaliser", "one_step")}
    assert as_stored(new, old) == old
    assert as_stored({**new, "pct_start": 0.1}, old)["pct_start"] == 0.1
    split = {**new, "output_normaliser": "pointwise"}
    assert as_stored(split, old) == split


def test_cli_refuses_a_bad_pct_start_in_one_line(tmp_path, capsys):
    from operators.__main__ import main

    code = main(["train", "--data", str(tmp_path / "none.nc"), "--model", "mgno", "--out",
                 str(tmp_path / "run"), "--pct-start", "1.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pct_start" in err[0]
    assert not (tmp_path / "run").exists()
