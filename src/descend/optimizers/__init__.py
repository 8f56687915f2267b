"""The optimizer classes: drop-in replacements for their torch.optim namesakes."""

from descend.optimizers.adadelta import Adadelta
from descend.optimizers.adagrad import Adagrad
from descend.optimizers.adam import Adam, AdamW
from descend.optimizers.rmsprop import RMSprop
from descend.optimizers.sgd import SGD

__all__ = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]
