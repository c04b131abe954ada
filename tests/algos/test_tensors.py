from __future__ import annotations

import warnings

import numpy as np
import torch

from sarm2_gym.algos.common.tensors import to_tensor


def test_to_tensor_shares_writable_arrays_and_copies_read_only_ones_without_a_warning() -> None:
    writable = np.arange(4, dtype=np.float32)
    shared = to_tensor(writable)
    writable[0] = 7.0
    assert shared[0] == 7.0  # no copy
    read_only = np.arange(4, dtype=np.float32)
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's non-writable-array warning would raise here
        copied = to_tensor(read_only)
    assert torch.equal(copied, torch.arange(4, dtype=torch.float32))
    # torch warns once per process, so the check above may pass for that reason alone: the
    # copy is what makes it pass
    assert copied.data_ptr() != read_only.ctypes.data
    copied[0] = 5.0
    assert read_only[0] == 0.0
    tensor = torch.ones(2)
    assert to_tensor(tensor) is tensor
