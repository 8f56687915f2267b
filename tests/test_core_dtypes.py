"""float64, float32, bfloat16 and complex parameters.

The gradients come from a fixed function of the parameters computed in their own dtype, so the
runs compared here differ only in the optimizer's arithmetic.
"""

from __future__ import annotations

import pytest
import torch
from optimizer_info import CONFIGS, TORCH_CONFIGS, configs

STEPS = 10


def _params(dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
            for shape in ((4, 3), (3,), (5,))]


def _gradient(p: torch.Tensor) -> torch.Tensor:
    """A non-quadratic field that keeps the gradients O(1) along the run."""
    return torch.tanh(p - 0.3) + 0.1 * p


def run(build, params: list[torch.Tensor], steps: int = STEPS) -> list[torch.Tensor]:
    """Two param groups (first tensor, the rest), lr halved in the second as in the table."""
    opt = build(params)
    for _ in range(steps):
        for p in params:
            p.grad = _gradient(p)
        opt.step()
    return params


def _groups(config, params):
    lr = float(config.effective_kwargs().get("lr", 1.0))
    return [{"params": params[:1]},
            {"params": params[1:], "lr": lr * config.info.second_lr_factor,
             **config.info.second_group}]


@configs(TORCH_CONFIGS)
def test_float32_matches_torch_float32(config):
    ours = run(lambda p: config.build(_groups(config, p)), _params(torch.float32))
    theirs = run(lambda p: config.build_torch(_groups(config, p)), _params(torch.float32))
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# (OptimizerInfo.tracks_across_dtypes: Prodigy's estimate of d cancels below float32's digits)
ACROSS_DTYPES = [c for c in CONFIGS if c.info.tracks_across_dtypes]


@configs([c for c in ACROSS_DTYPES if "float32" not in c.info.rounding_sensitive])
def test_float32_and_float64_agree(config):
    single = run(lambda p: config.build(_groups(config, p)), _params(torch.float32))
    double = run(lambda p: config.build(_groups(config, p)), _params(torch.float64))
    for a, b in zip(single, double, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)


# bfloat16 keeps 8 significant bits: every step rounds each parameter by up to half a spacing, and
# a spacing is at most 2^-7 of the value. After STEPS steps two runs that round differently may
# be STEPS * 2^-8 apart (relative), whatever the optimizer; updates close to the spacing (AdaDelta's
# first steps) do reach that bound. Parameters ~0.1-0.3 keep the updates visible.
BF16_RTOL = STEPS * 2**-8


def _bf16_run(build, dtype):
    params = [(p * 0.1).to(dtype) for p in _params(torch.float64)]
    return run(build, params), [(p * 0.1).to(dtype) for p in _params(torch.float64)]


@configs([c for c in ACROSS_DTYPES if "bfloat16" not in c.info.rounding_sensitive])
def test_bfloat16_tracks_a_float32_run(config):
    low, _ = _bf16_run(lambda p: config.build(_groups(config, p)), torch.bfloat16)
    high, start = _bf16_run(lambda p: config.build(_groups(config, p)), torch.float32)
    moved = max((h - s).abs().max().item() for h, s in zip(high, start, strict=True))
    assert moved > 1e-2, "the run must move the parameters"
    for a, b in zip(low, high, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=BF16_RTOL, atol=0.05 * moved)


# bfloat16 and float16 against the float32 step done by hand: tests/test_low_precision.py (torch's
# own bf16/fp16 kernels are not a reference: see there).


# ---- complex ------------------------------------------------------------------------------------

def _complex_params() -> list[torch.Tensor]:
    return [torch.complex(p, 0.5 - p) for p in _params(torch.float64)]


def _complex_gradient(z: torch.Tensor) -> torch.Tensor:
    """A gradient field whose real and imaginary parts differ (a real run of the pairs)."""
    return torch.complex(torch.tanh(z.real - 0.3) + 0.1 * z.imag, 0.5 * torch.sin(z.imag))


def run_complex(build, params: list[torch.Tensor], as_real: bool) -> list[torch.Tensor]:
    """The complex run, or the same run on view_as_real copies with the same gradients."""
    tensors = [torch.view_as_real(z).clone() if as_real else z for z in params]
    opt = build(tensors)
    for _ in range(STEPS):
        for t in tensors:
            z = torch.view_as_complex(t) if as_real else t
            g = _complex_gradient(z)
            t.grad = torch.view_as_real(g).clone() if as_real else g
        opt.step()
    return [torch.view_as_real(t) if not as_real else t for t in tensors]


COMPLEX_CONFIGS = [c for c in CONFIGS if c.info.supports_complex]  # (test_matrix_optimizers:
# Muon, Adafactor and SOAP refuse complex parameters, as torch and the package do)


@configs(COMPLEX_CONFIGS)
def test_complex_params_match_their_view_as_real_run(config):
    complex_run = run_complex(lambda p: config.build(_groups(config, p)),
                              _complex_params(), as_real=False)
    real_run = run_complex(lambda p: config.build(_groups(config, p)),
                           _complex_params(), as_real=True)
    for a, b in zip(complex_run, real_run, strict=True):
        assert torch.equal(a, b)


@configs([c for c in COMPLEX_CONFIGS if c.has_torch])
def test_complex_params_match_torch_complex(config):
    ours = run_complex(lambda p: config.build(_groups(config, p)), _complex_params(), False)
    theirs = run_complex(lambda p: config.build_torch(_groups(config, p)), _complex_params(),
                         False)
    assert not torch.equal(ours[0], torch.view_as_real(_complex_params()[0]))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@configs([c for c in CONFIGS if c.registry_name == "adam"])
def test_half_precision_state_keeps_the_param_dtype(config, dtype):
    params = run(lambda p: config.build(p), _params(dtype), steps=2)
    assert all(p.dtype == dtype for p in params)
