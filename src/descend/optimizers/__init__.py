"""The optimizer classes: drop-in replacements for their torch.optim namesakes."""

from descend.optimizers.adadelta import Adadelta
from descend.optimizers.adafactor import Adafactor
from descend.optimizers.adagrad import Adagrad
from descend.optimizers.adam import Adam, AdamW
from descend.optimizers.adamax import Adamax
from descend.optimizers.ademamix import AdEMAMix
from descend.optimizers.asgd import ASGD
from descend.optimizers.lamb import Lamb
from descend.optimizers.lars import LARS
from descend.optimizers.lion import Lion
from descend.optimizers.muon import Muon
from descend.optimizers.nadam import NAdam
from descend.optimizers.prodigy import Prodigy
from descend.optimizers.radam import RAdam
from descend.optimizers.rmsprop import RMSprop
from descend.optimizers.rprop import Rprop
from descend.optimizers.schedule_free import AdamWScheduleFree, SGDScheduleFree
from descend.optimizers.sgd import SGD
from descend.optimizers.soap import SOAP

# The registry lists the classes in this order (the order the seeds introduce them).
__all__ = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
           "Rprop", "ASGD", "Lion", "AdEMAMix", "Lamb", "LARS", "Prodigy", "SGDScheduleFree",
           "AdamWScheduleFree", "Muon", "Adafactor", "SOAP"]
