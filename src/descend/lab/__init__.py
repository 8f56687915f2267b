"""The lab: experiments that show and measure descend's optimizers (needs ``descend[lab]``).

Nothing in the core imports the lab.
"""
