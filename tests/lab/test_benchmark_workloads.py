"""The benchmark's own workloads: the character-level language model reads the standard
library's source, the CNN reads the digits, and the training loop evaluates an optimizer that
has eval() / train() (Schedule-Free) in eval mode and trains it in train mode."""

from __future__ import annotations

import torch

from descend.lab import tasks
from descend.lab.spec import OptimizerSpec
from descend.lab.tasks import charlm
from descend.lab.train import train
from descend.optimizers import SGD


def test_charlm_windows_are_the_standard_library_shifted_by_one_character():
    splits = charlm.load()
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == list(charlm.SIZES)
    x, y = splits.train.x, splits.train.y
    assert x.dtype == y.dtype == torch.long and x.shape == (charlm.SIZES[0], charlm.CONTEXT)
    assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the next character
    symbols = charlm.ALPHABET + "?"
    text = "".join(symbols[i] for i in x[:64].flatten())
    assert "def " in text and "self" in text and "return" in text
    assert (x < charlm.VOCAB).all() and (x >= 0).all()
    # Fixed: the same windows every time, whatever the seed.
    assert torch.equal(charlm.load.__wrapped__(5).val.x, splits.val.x)


def test_charlm_model_is_causal():
    model = charlm.build(0).eval()
    x = charlm.load().val.x[:2]
    changed = x.clone()
    changed[:, 40:] = 0
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (2, charlm.CONTEXT, charlm.VOCAB)
    assert torch.allclose(a[:, :40], b[:, :40], atol=1e-5)  # no peeking at later characters
    assert not torch.allclose(a[:, 40:], b[:, 40:])


def test_mnist_cnn_learns_the_digits():
    result = train(tasks.get("mnist-cnn"), OptimizerSpec("adam", {"lr": 3e-3}), epochs=1,
                   evals_per_epoch=1)
    assert result.final.val_accuracy > 0.8


class ModeSGD(SGD):
    """SGD with Schedule-Free's eval() / train(), recording the mode of every step."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, lr=lr)
        self.mode, self.modes_at_step, self.calls = "train", [], []

    def train(self) -> None:
        self.mode = "train"
        self.calls.append("train")

    def eval(self) -> None:
        self.mode = "eval"
        self.calls.append("eval")

    def step(self, closure=None):
        self.modes_at_step.append(self.mode)
        return super().step(closure)


class ModeSpec(OptimizerSpec):
    def build(self, params):
        self.built.append(ModeSGD(params, lr=0.01))
        return self.built[-1]


def test_an_optimizer_with_eval_and_train_is_evaluated_in_eval_mode():
    spec = ModeSpec("sgd", {"lr": 0.01})
    object.__setattr__(spec, "built", [])
    result = train(tasks.get("quadratic"), spec, epochs=2, evals_per_epoch=2)
    optimizer = spec.built[-1]  # the run's (the first is the warm-up's throwaway copy)
    evaluations = len(result.history)
    # (and eval() once more at the end: the model then holds what was evaluated last)
    assert optimizer.calls == ["eval", "train"] * evaluations + ["eval"]
    assert not result.diverged and result.steps == 16  # 2 epochs of 1000 / 128 -> 8 steps
    assert optimizer.modes_at_step == ["train"] * 16
