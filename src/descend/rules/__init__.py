"""The math of every optimizer: one short, pure function per algorithm.

A rule takes a parameter ``p``, its gradient ``g``, the optimizer state and the hyperparameters
as tensors or numbers, and returns ``(new_p, new_state)`` without touching its inputs. It knows
nothing about param groups, dtypes or devices: an engine (``descend.engines``) applies it to many
tensors. The reference backend calls it as written; the other backends run its trace
(``descend.engines.ir``). Each module holds one family's rules; the names below are
re-exported for convenience (``descend.rules.adam(...)``), and a new rule needs no line here.
"""

from descend.rules.adadelta import adadelta
from descend.rules.adagrad import adagrad
from descend.rules.adam import adam, adamw
from descend.rules.rmsprop import rmsprop
from descend.rules.sgd import sgd, sgd_textbook

__all__ = ["adadelta", "adagrad", "adam", "adamw", "rmsprop", "sgd", "sgd_textbook"]
