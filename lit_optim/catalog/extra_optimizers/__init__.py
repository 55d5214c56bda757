"""Optimizers torch.optim does not have, as ``torch.optim.Optimizer`` subclasses.

Why our own: LARS, LAMB and Lookahead are ~50 lines each; the maintained library that has all
three (timm) would pull in huggingface_hub and safetensors for them, and owning the code lets
the tests pin each update rule to the paper's formula. Muon is torch's; ``MuonWithAdamW`` only
adds the fallback for the parameters Muon cannot take.
"""

from lit_optim.catalog.extra_optimizers.lamb import LAMB
from lit_optim.catalog.extra_optimizers.lars import LARS
from lit_optim.catalog.extra_optimizers.lookahead import Lookahead
from lit_optim.catalog.extra_optimizers.muon import MuonWithAdamW

__all__ = ["LAMB", "LARS", "Lookahead", "MuonWithAdamW"]
