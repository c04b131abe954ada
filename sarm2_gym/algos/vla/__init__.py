"""TinyVLA and behaviour cloning: the base chunk policy SPIRAL improves.

Public surface: the :class:`ChunkPolicy` protocol, :class:`TinyVLA` and its config, the BC/RA-BC
trainer (:func:`train_bc`, :class:`BCConfig`), RA-BC weights (:func:`rabc_weights`) and the
:class:`VLAController` that runs a chunk policy through an SB3-style ``predict``.
"""

from __future__ import annotations

from sarm2_gym.algos.vla.bc import BCConfig, train_bc
from sarm2_gym.algos.vla.checkpoint import load_vla, save_vla
from sarm2_gym.algos.vla.config import TinyVLAConfig
from sarm2_gym.algos.vla.controller import VLAController
from sarm2_gym.algos.vla.policy import ChunkBatch, ChunkPolicy
from sarm2_gym.algos.vla.rabc import rabc_deltas, rabc_weights
from sarm2_gym.algos.vla.tiny_vla import TinyVLA

__all__ = [
    "BCConfig",
    "ChunkBatch",
    "ChunkPolicy",
    "TinyVLA",
    "TinyVLAConfig",
    "VLAController",
    "load_vla",
    "rabc_deltas",
    "rabc_weights",
    "save_vla",
    "train_bc",
]
