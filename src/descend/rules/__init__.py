"""The math of every optimizer: one short, pure function per algorithm.

A rule takes a parameter ``p``, its gradient ``g``, the optimizer state and the hyperparameters
as tensors or numbers, and returns ``(new_p, new_state)`` without touching its inputs. It knows
nothing about param groups, dtypes or devices: an engine (``descend.engines``) applies it to many
tensors. The reference engine calls it as written; the other backends run its trace
(``descend.engines.ir``). Each module holds one family's rules: ``from descend.rules.adam
import adam``.
"""
