"""Invalid hyperparameters raise a ValueError naming the parameter and its allowed range; the
constructors have torch's signatures (issue 2, sections 2 and 3)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from optimizer_info import INFOS

import descend
from descend import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop

NONNEGATIVE, UNIT, UNIT_CLOSED = "[0, inf)", "[0, 1)", "[0, 1]"

# (class, bad hyperparameters, fragments the message must contain)
INVALID = [
    (SGD, {"lr": -0.1}, ["lr", NONNEGATIVE]),
    (SGD, {"lr": math.nan}, ["lr", NONNEGATIVE]),
    (SGD, {"momentum": -0.5}, ["momentum", NONNEGATIVE]),
    (SGD, {"dampening": 1.5}, ["dampening", UNIT_CLOSED]),
    (SGD, {"weight_decay": -1e-4}, ["weight_decay", NONNEGATIVE]),
    (SGD, {"nesterov": True}, ["nesterov", "momentum > 0"]),
    (SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ["nesterov", "dampening = 0"]),
    (SGD, {"momentum_form": "keras"}, ["momentum_form", "textbook", "torch"]),
    (SGD, {"lr": torch.tensor([0.1, 0.2])}, ["lr", "one-element tensor"]),
    (Adagrad, {"lr": -1.0}, ["lr", NONNEGATIVE]),
    (Adagrad, {"lr_decay": -0.1}, ["lr_decay", NONNEGATIVE]),
    (Adagrad, {"initial_accumulator_value": -1.0}, ["initial_accumulator_value", NONNEGATIVE]),
    (Adagrad, {"eps": -1e-10}, ["eps", NONNEGATIVE]),
    (Adagrad, {"weight_decay": -1.0}, ["weight_decay", NONNEGATIVE]),
    (RMSprop, {"lr": -1.0}, ["lr", NONNEGATIVE]),
    (RMSprop, {"alpha": 1.0}, ["alpha", UNIT]),
    (RMSprop, {"alpha": -0.1}, ["alpha", UNIT]),
    (RMSprop, {"eps": -1e-8}, ["eps", NONNEGATIVE]),
    (RMSprop, {"momentum": -0.9}, ["momentum", NONNEGATIVE]),
    (RMSprop, {"weight_decay": -0.1}, ["weight_decay", NONNEGATIVE]),
    (RMSprop, {"nesterov": True}, ["nesterov", "momentum > 0"]),
    (Adadelta, {"lr": -1.0}, ["lr", NONNEGATIVE]),
    (Adadelta, {"rho": 1.0}, ["rho", UNIT]),
    (Adadelta, {"rho": -0.1}, ["rho", UNIT]),
    (Adadelta, {"eps": -1e-6}, ["eps", NONNEGATIVE]),
    (Adadelta, {"weight_decay": -1.0}, ["weight_decay", NONNEGATIVE]),
    (Adam, {"lr": -1e-3}, ["lr", NONNEGATIVE]),
    (Adam, {"betas": (1.0, 0.999)}, ["betas[0]", UNIT]),
    (Adam, {"betas": (0.9, -0.1)}, ["betas[1]", UNIT]),
    (Adam, {"betas": (0.9,)}, ["betas", "pair"]),
    (Adam, {"eps": -1e-8}, ["eps", NONNEGATIVE]),
    (Adam, {"weight_decay": -0.1}, ["weight_decay", NONNEGATIVE]),
    (AdamW, {"betas": (0.9, 1.5)}, ["betas[1]", UNIT]),
    (AdamW, {"weight_decay": -0.01}, ["weight_decay", NONNEGATIVE]),
    (AdamW, {"lr": torch.tensor([1e-3, 1e-3])}, ["lr", "one-element tensor"]),
]
# Plumbing keywords: given to the constructor, and to a param group.
INVALID_PLUMBING = [
    (cls, {"impl": "warp"}, ["impl", "reference", "foreach", "numba", "fast", "auto"])
    for cls in (SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW)
]


def _id(case):
    cls, kw, _ = case
    return f"{cls.__name__}-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _param():
    return torch.nn.Parameter(torch.ones(3))


@pytest.mark.parametrize("case", INVALID + INVALID_PLUMBING, ids=_id)
def test_constructor_refuses_with_name_and_range(case):
    cls, kwargs, fragments = case
    with pytest.raises(ValueError) as error:
        cls([_param()], **kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    "case", INVALID + [c for c in INVALID_PLUMBING if "impl" in c[1]], ids=_id)
def test_add_param_group_refuses_and_loses_nothing(case):
    cls, kwargs, fragments = case
    kept = _param()
    opt = cls([kept])
    with pytest.raises(ValueError) as error:
        opt.add_param_group({"params": [_param()], **kwargs})
    for fragment in fragments:
        assert fragment in str(error.value)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [kept]
    kept.grad = torch.ones(3)
    opt.step()  # the optimizer still works
    assert not torch.equal(kept.detach(), torch.ones(3))


@pytest.mark.parametrize("cls", [SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW])
def test_boundary_values_are_accepted(cls):
    """The closed ends of each allowed range are valid (lr = 0, eps = 0, ...)."""
    bounds = {"lr": 0.0, "weight_decay": 0.0, "eps": 0.0, "alpha": 0.0, "rho": 0.0,
              "betas": (0.0, 0.0), "dampening": 1.0, "momentum": 0.0, "lr_decay": 0.0,
              "initial_accumulator_value": 0.0}
    names = inspect.signature(cls.__init__).parameters
    cls([_param()], **{k: v for k, v in bounds.items() if k in names})


# ---- signature parity with torch.optim ----------------------------------------------------

@pytest.mark.parametrize("info", [i for i in INFOS if i.torch_cls], ids=lambda i: i.cls.__name__)
def test_signature_is_torchs_plus_keyword_only_extras(info):
    ours = inspect.signature(info.cls.__init__).parameters
    theirs = inspect.signature(info.torch_cls.__init__).parameters
    assert info.cls.__name__ == info.torch_cls.__name__
    positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [n for n, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    for name, param in theirs.items():
        assert name in ours, f"torch's {name} is missing"
        assert ours[name].kind is param.kind, name
        assert ours[name].default == param.default, name
    extras = [n for n in ours if n not in theirs]
    assert all(ours[n].kind is inspect.Parameter.KEYWORD_ONLY for n in extras), extras
    assert "skip_nonfinite" in extras and "impl" in extras


def test_descend_is_a_drop_in_for_torch_optim_names():
    for info in INFOS:
        if info.torch_cls is not None:
            assert getattr(descend, info.torch_cls.__name__) is info.cls
            assert issubclass(info.cls, torch.optim.Optimizer)
