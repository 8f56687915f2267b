"""bfloat16 and float16 parameters, state_dtype and stochastic rounding (issue 9).

The reference for a low-precision step is the same step done by hand: widen to float32, take
torch's float32 step (descend's own float32 reference where torch lacks the algorithm), round to
nearest. torch's own bf16/fp16 kernels are not a reference: on torch 2.13's CPU, fused SGD in
bfloat16 leaves parameters unchanged whose update is several ulps, and the for-loop Adam in
float16 overflows to Inf (see the README).
"""

from __future__ import annotations

import io

import pytest
import torch
from engine_helpers import make_params, set_grads
from optimizer_info import CONFIGS, configs

import descend
from descend import bench, precision

IMPLS = ("reference", "foreach", "numba")
LOW = (torch.bfloat16, torch.float16)
# Significand bits below the leading one: a relative spacing of 2^-bits.
BITS = {torch.bfloat16: 7, torch.float16: 10}
SEED_CONFIGS = [c for c in CONFIGS if c.registry_name is None]
# Every engine for each row; the matrix methods (untraceable) run on the reference only.


def impls_and_configs(selection: list) -> pytest.MarkDecorator:
    """Every (impl, config) pair, but the traced engines only on the traceable rows
    (OptimizerInfo.traceable; test_engine_exactness checks that they refuse the others)."""
    pairs = [(impl, c) for c in selection for impl in IMPLS
             if impl == "reference" or c.info.traceable]
    return pytest.mark.parametrize("impl, config", pairs,
                                   ids=[f"{c.id}-{impl}" for impl, c in pairs])


def spacings_apart(a: torch.Tensor, b: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """|a - b| in units of the dtype's spacing at the larger of |a|, |b| and the value before the
    steps, |start|: a step whose result cancels (p - lr g ~ 0) is as precise as its operands,
    which float32 rounds at their own magnitude."""
    dtype = start.dtype
    scale = torch.maximum(torch.maximum(a.abs(), b.abs()), start.abs()).float()
    tiny = torch.finfo(dtype).smallest_normal
    spacing = torch.exp2(torch.floor(torch.log2(scale.clamp_min(tiny))) - BITS[dtype])
    return (a.float() - b.float()).abs() / spacing


def by_hand(config, params: list[torch.Tensor]):
    """The float32 optimizer the step by hand takes: torch's, the reference package's where
    torch lacks the algorithm, else descend's reference engine (forms only descend has)."""
    if config.has_torch:
        return config.build_torch(params)
    if config.info.reference is not None:
        return config.build_reference(params)
    return config.build(params, impl="reference")


def round_state(opt: torch.optim.Optimizer, dtype: torch.dtype) -> None:
    """The emulation's state rounding after every step."""
    for state in opt.state.values():
        for name, t in state.items():
            if name != "step" and isinstance(t, torch.Tensor) and t.dim() > 0:
                t.copy_(t.to(dtype).float())


def run_both(config, dtype: torch.dtype, impl: str, steps: int, state_dtype=None,
             round_emulated_state: bool = True):
    """descend on ``dtype`` parameters, and the emulation on float32 copies, rounding the
    parameters (and the state, unless it is kept in float32) after every step."""
    ours = make_params(dtype)
    emulated = [p.detach().float().requires_grad_() for p in ours]
    opt = config.build(ours, impl=impl, state_dtype=state_dtype)
    ref = by_hand(config, emulated)
    if not config.info.lr_scales_steps and round_emulated_state:
        # Rprop keeps lr as its first step sizes, state stored in (state_dtype or) dtype: the
        # emulation starts from the stored value too.
        for group in ref.param_groups:
            group["lr"] = torch.tensor(group["lr"]).to(state_dtype or dtype).item()
    for step in range(steps):
        set_grads(step, ours)
        for p, e in zip(ours, emulated, strict=True):
            e.grad = p.grad.float()
        opt.step()
        ref.step()
        with torch.no_grad():
            for p in emulated:
                p.copy_(p.to(dtype).float())
        if round_emulated_state:
            round_state(ref, state_dtype or dtype)
    return ours, emulated, opt, ref


@pytest.mark.parametrize("dtype", LOW, ids=str)
@impls_and_configs(SEED_CONFIGS)
def test_one_step_is_within_one_ulp_of_the_float32_step_by_hand(config, dtype, impl):
    ours, emulated, opt, _ = run_both(config, dtype, impl, steps=1)
    names = opt.state_names(opt.param_groups[0])
    for p, e, start in zip(ours, emulated, make_params(dtype), strict=True):
        assert p.dtype == dtype and all(opt.state[p][n].dtype == dtype for n in names
                                        if n in opt.state[p])  # (Adafactor: by shape)
        assert spacings_apart(p.detach(), e.detach().to(dtype), start.detach()).max() <= 1


@pytest.mark.parametrize("dtype", LOW, ids=str)
@impls_and_configs(SEED_CONFIGS)
def test_twenty_steps_track_the_emulation_that_rounds_the_state(config, dtype, impl):
    """Rounding decisions that fall differently (float32 rounds a few operations differently
    from torch's) move an element by one spacing, and the difference then propagates: through a
    momentum buffer (0.9) it grows up to twenty-fold over 20 steps."""
    ours, emulated, _, _ = run_both(config, dtype, impl, steps=20)
    apart = torch.cat([spacings_apart(p.detach(), e.detach().to(dtype), start.detach()).reshape(-1)
                       for p, e, start in zip(ours, emulated, make_params(dtype), strict=True)])
    assert (apart > 0).float().mean() < 0.02  # nearly every element agrees exactly
    assert apart.max() <= 32


@pytest.mark.parametrize("impl", IMPLS)
@configs([c for c in SEED_CONFIGS if c.cls in (descend.Adam, descend.RMSprop, descend.SGD)])
def test_bfloat16_state_of_float32_parameters(config, impl):
    ours, emulated, opt, _ = run_both(config, torch.float32, impl, steps=20,
                                      state_dtype=torch.bfloat16)
    for p in ours:
        assert all(opt.state[p][n].dtype == torch.bfloat16
                   for n in opt.state_names(opt.param_groups[0]))
    for p, e in zip(ours, emulated, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_state_of_bfloat16_parameters_is_not_rounded(impl):
    config = next(c for c in SEED_CONFIGS if c.cls is descend.Adam)
    ours, emulated, opt, ref = run_both(config, torch.bfloat16, impl, steps=20,
                                        state_dtype=torch.float32, round_emulated_state=False)
    for p, e in zip(ours, emulated, strict=True):
        assert opt.state[p]["exp_avg"].dtype == torch.float32
        start = p.detach().to(torch.bfloat16)
        assert spacings_apart(p.detach(), e.detach().to(torch.bfloat16), start).max() <= 2
        torch.testing.assert_close(opt.state[p]["exp_avg"], ref.state[e]["exp_avg"],
                                   rtol=1e-3, atol=1e-6)


def test_adam_state_bytes_per_parameter():
    """Adam holds two buffers: 8 B/param of state in float32, 4 in bfloat16."""
    for dtype, state_dtype, expected in ((torch.float32, None, 8),
                                         (torch.bfloat16, None, 4),
                                         (torch.float32, torch.bfloat16, 4),
                                         (torch.bfloat16, torch.float32, 8)):
        params = bench.make_params([1000, 24], dtype=dtype)
        opt = descend.Adam(params, state_dtype=state_dtype)
        opt.step()
        assert bench.state_bytes(opt) / 1024 == expected


# ---- checkpoints ----------------------------------------------------------------------------

def _saved(opt: torch.optim.Optimizer) -> dict:
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_checkpoint_keeps_the_state_dtype_and_float32_state_is_not_rounded():
    params = make_params(torch.bfloat16)
    opt = descend.Adam(params, lr=1e-2, state_dtype=torch.float32)
    set_grads(0, params)
    opt.step()
    saved = _saved(opt)
    twins = [p.detach().clone() for p in params]
    other = descend.Adam(twins, lr=1e-2)  # built without state_dtype: the checkpoint's wins
    other.load_state_dict(saved)
    assert other.param_groups[0]["state_dtype"] == torch.float32
    for p, q in zip(params, twins, strict=True):
        # torch's own load would have rounded these to the parameters' bfloat16
        assert other.state[q]["exp_avg"].dtype == torch.float32
        assert torch.equal(other.state[q]["exp_avg"], opt.state[p]["exp_avg"])


def test_load_state_dict_casts_a_torch_checkpoint_to_the_state_dtype():
    params = make_params(torch.float32)
    theirs = torch.optim.Adam(params, lr=1e-2)
    set_grads(0, params)
    theirs.step()
    ours = descend.Adam([p.detach().clone() for p in params], lr=1e-2,
                        state_dtype=torch.bfloat16)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["state_dtype"] == torch.bfloat16  # torch's lacks it: kept
    state = next(iter(ours.state.values()))
    assert state["exp_avg"].dtype == torch.bfloat16
    assert state["step"].dtype == torch.float32


def test_state_dtype_changed_mid_run_casts_the_state():
    params = make_params(torch.float32)
    opt = descend.Adam(params)
    set_grads(0, params)
    opt.step()
    opt.param_groups[0]["state_dtype"] = torch.bfloat16
    set_grads(1, params)
    opt.step()
    assert all(s["exp_avg"].dtype == torch.bfloat16 for s in opt.state.values())


# ---- stochastic rounding --------------------------------------------------------------------

def _drift(dtype: torch.dtype, stochastic: bool, impl: str, steps: int = 200) -> torch.Tensor:
    p = torch.ones(4096, dtype=dtype)
    opt = descend.SGD([p], lr=1e-4, impl=impl, stochastic_rounding=stochastic)
    for _ in range(steps):
        p.grad = torch.ones_like(p)
        opt.step()
    return p


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_stochastic_rounding_is_unbiased_where_nearest_stalls(dtype, impl):
    """An update of 1e-4 per step is 2.6% of bfloat16's ulp at 1.0: nearest rounding never
    moves the value; stochastic rounding falls by 200 x 1e-4 on average (the mean of 4096
    elements: a standard error below 5e-4)."""
    assert torch.equal(_drift(dtype, False, impl), torch.ones(4096, dtype=dtype))
    fallen = 1 - _drift(dtype, True, impl).double().mean().item()
    assert abs(fallen - 200 * 1e-4) < 2e-3


def _sr_run(impl: str, steps: int, dtype=torch.bfloat16, seed: int = 0, state_dtype=None,
            opt=None, params=None):
    if opt is None:
        torch.manual_seed(seed)
        params = make_params(dtype)
        opt = descend.Adam(params, lr=1e-3, impl=impl, stochastic_rounding=True,
                           state_dtype=state_dtype)
    for step in range(steps):
        set_grads(step, params)
        opt.step()
    return params, opt


def test_stochastic_rounding_gives_the_same_bits_on_every_backend():
    runs = [_sr_run(impl, 5, state_dtype=torch.bfloat16) for impl in IMPLS]
    (first, first_opt), *others = runs
    for params, opt in others:
        for p, q in zip(first, params, strict=True):
            assert torch.equal(p, q)
            assert torch.equal(first_opt.state[p]["exp_avg_sq"], opt.state[q]["exp_avg_sq"])


def test_stochastic_rounding_repeats_with_the_seed_and_differs_without():
    a, _ = _sr_run("numba", 3, seed=1)
    b, _ = _sr_run("numba", 3, seed=1)
    c, _ = _sr_run("numba", 3, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, z) for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_with_stochastic_rounding_is_bit_exact(impl):
    params, opt = _sr_run(impl, 4)
    saved, saved_params = _saved(opt), [p.detach().clone() for p in params]
    uninterrupted, _ = _sr_run(impl, 6, opt=opt, params=params)
    resumed_params = [p.requires_grad_() for p in saved_params]
    resumed = descend.Adam(resumed_params, lr=1e-3, impl=impl, stochastic_rounding=True)
    resumed.load_state_dict(saved)
    resumed_run, _ = _sr_run(impl, 6, opt=resumed, params=resumed_params)
    for p, q in zip(uninterrupted, resumed_run, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("impl", IMPLS)
def test_stochastic_rounding_changes_nothing_in_float32(impl):
    plain = make_params(torch.float32)
    rounded = make_params(torch.float32)
    a = descend.Adam(plain, lr=1e-2, impl=impl)
    b = descend.Adam(rounded, lr=1e-2, impl=impl, stochastic_rounding=True)
    for step in range(3):
        set_grads(step, plain, rounded)
        a.step()
        b.step()
    assert all(torch.equal(p, q) for p, q in zip(plain, rounded, strict=True))


def test_no_seed_is_drawn_without_stochastic_rounding():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    descend.Adam(make_params(), lr=1e-2)
    assert torch.equal(torch.rand(3), expected)


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [torch.int32, torch.complex64, "bfloat16", torch.float8_e4m3fn])
def test_a_state_dtype_that_cannot_store_state_is_refused(bad):
    with pytest.raises(ValueError, match=r"state_dtype=.*torch\.bfloat16"):
        descend.Adam(make_params(), state_dtype=bad)
    opt = descend.Adam(make_params()[:1])
    with pytest.raises(ValueError, match="state_dtype"):
        opt.add_param_group({"params": make_params()[1:], "state_dtype": bad})


def test_state_dtype_on_complex_parameters_is_refused_with_a_way_out():
    p = torch.randn(4, dtype=torch.complex64, requires_grad=True)
    p.grad = torch.randn_like(p)
    opt = descend.Adam([p], state_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="real floating-point parameters"):
        opt.step()


# ---- torch's low-precision kernels, and what descend does instead ---------------------------

def test_bfloat16_sgd_moves_what_the_update_moves():
    """torch 2.13's fused CPU SGD leaves these bf16 parameters unchanged (an update of several
    ulps); descend's step equals the float32 step rounded to nearest."""
    g = torch.Generator().manual_seed(0)
    p = torch.randn(32, generator=g).to(torch.bfloat16)
    grad = torch.randn(32, generator=g).to(torch.bfloat16)
    expected = (p.float() - 0.01 * grad.float()).to(torch.bfloat16)
    q = p.clone()
    q.grad = grad
    descend.SGD([q], lr=0.01, fused=True).step()
    assert torch.equal(q, expected)
    assert (q[:20] != p[:20]).sum() >= 15


def test_float16_adam_stays_finite():
    """eps=1e-8 underflows to 0 in float16: torch 2.13's for-loop Adam divides by zero; descend
    adds eps in float32."""
    p = torch.ones(64, dtype=torch.float16)
    p.grad = torch.full_like(p, 1e-4)
    opt = descend.Adam([p], lr=1e-3)
    for _ in range(3):
        opt.step()
    assert torch.isfinite(p).all() and (p < 1).all()


# ---- a small task ---------------------------------------------------------------------------

def _teacher_student_loss(state_dtype) -> float:
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    student = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    x = torch.randn(512, 16)
    with torch.no_grad():
        y = teacher(x)
    opt = descend.Adam(student.parameters(), lr=3e-3, state_dtype=state_dtype)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(student(x), y)
        loss.backward()
        opt.step()
    return loss.item()


def test_training_with_bfloat16_state_ends_near_the_float32_state_loss():
    full, half = _teacher_student_loss(None), _teacher_student_loss(torch.bfloat16)
    assert full < 0.1 * _initial_loss()
    assert abs(half - full) / full < 0.05


def _initial_loss() -> float:
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    student = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    x = torch.randn(512, 16)
    with torch.no_grad():
        return torch.nn.functional.mse_loss(student(x), teacher(x)).item()


# ---- the kernels' conversions against torch's -------------------------------------------------

numba = pytest.importorskip("numba")


def test_kernel_conversions_match_torch_bit_for_bit():
    from descend.engines import kernel_support as k

    @numba.njit
    def nearest(x, bf, hf, hf_by_bits):
        for i in range(x.size):
            bf[i] = k.bfloat16_nearest(x[i])
            hf[i] = k.float16_nearest(x[i])
            hf_by_bits[i] = k.float16_nearest_by_bits(x[i])  # where the CPU lacks F16C

    @numba.njit
    def widen(h, bf, hf, hf_by_bits):
        for i in range(h.size):
            bf[i] = k.bfloat16_widen(h[i])
            hf[i] = k.float16_widen(h[i])
            hf_by_bits[i] = k.float16_widen_by_bits(h[i])

    @numba.njit
    def stochastic(x, key, bf, hf):
        base = k.step_base(key, 3, 2)
        for i in range(x.size):
            r = k.element_bits(base, i)
            bf[i] = k.bfloat16_stochastic(x[i], r)
            hf[i] = k.float16_stochastic(x[i], r)

    import numpy as np

    g = torch.Generator().manual_seed(0)
    patterns = torch.randint(-2**31, 2**31, (1_000_000,), generator=g).to(torch.int32)
    spread = torch.randn(500_000, generator=g) * torch.exp(torch.randn(500_000, generator=g) * 6)
    edges = torch.tensor([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e-8, 3e-8, 2**-24, 2**-25,
                          2**-14, float("inf"), -float("inf"), float("nan"), 3.4e38, 1 + 2**-8])
    x = torch.cat([patterns.view(torch.float32), spread, edges])

    def same(ours: np.ndarray, theirs: torch.Tensor) -> bool:
        ours_t = torch.from_numpy(ours.view(np.int16)).view(theirs.dtype)
        return bool(((ours_t.view(torch.int16) == theirs.view(torch.int16))
                     | (ours_t.isnan() & theirs.isnan())).all())

    bf, hf, hf_bits = (np.empty(x.numel(), np.uint16) for _ in range(3))
    nearest(x.numpy(), bf, hf, hf_bits)
    assert same(bf, x.to(torch.bfloat16)) and same(hf, x.to(torch.float16))
    assert same(hf_bits, x.to(torch.float16))

    every = torch.arange(-2**15, 2**15, dtype=torch.int32).to(torch.int16)  # all 65536 values
    wide_bf, wide_hf, wide_bits = (np.empty(every.numel(), np.float32) for _ in range(3))
    widen(every.numpy().view(np.uint16), wide_bf, wide_hf, wide_bits)
    for ours, dtype in ((wide_bf, torch.bfloat16), (wide_hf, torch.float16),
                        (wide_bits, torch.float16)):
        theirs = every.view(dtype).float()
        ours_t = torch.from_numpy(ours)
        assert bool(((ours_t.view(torch.int32) == theirs.view(torch.int32))
                     | (ours_t.isnan() & theirs.isnan())).all())

    key = precision.stream_key(12345, 7)
    bf, hf = np.empty(x.numel(), np.uint16), np.empty(x.numel(), np.uint16)
    stochastic(x.numpy(), key, bf, hf)
    bits = precision.random_bits(key, 3, 2, x.numel(), x.device)
    assert same(bf, precision.round_stochastic(x, torch.bfloat16, bits))
    assert same(hf, precision.round_stochastic(x, torch.float16, bits))


def test_an_optimizer_pickled_before_low_precision_existed_unpickles_and_steps():
    params = make_params()
    opt = descend.Adam(params)
    set_grads(0, params)
    opt.step()
    state = opt.__getstate__()
    for group in (state["defaults"], *state["param_groups"]):
        del group["state_dtype"], group["stochastic_rounding"]
    old = descend.Adam.__new__(descend.Adam)
    old.__setstate__(state)
    set_grads(1, params)
    old.step()
    assert old.param_groups[0]["state_dtype"] is None
    assert old.param_groups[0]["stochastic_rounding"] is False
