"""The math of every optimizer: one short, pure function per algorithm.

A rule takes a parameter ``p``, its gradient ``g``, the optimizer state and the hyperparameters
as tensors or numbers, and returns ``(new_p, new_state)`` without touching its inputs. It knows
nothing about param groups, dtypes or devices: an engine (``descend.engines``) applies it to many
tensors. The reference engine calls it as written; the fast engine runs the same function fused.
"""

from descend.rules.adadelta import adadelta
from descend.rules.adagrad import adagrad
from descend.rules.adam import adam, adamw
from descend.rules.rmsprop import rmsprop
from descend.rules.sgd import sgd, sgd_textbook

__all__ = ["adadelta", "adagrad", "adam", "adamw", "rmsprop", "sgd", "sgd_textbook"]
