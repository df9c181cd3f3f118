import random

import numpy as np
import torch

from lmmsn.seeding import generator, seed_everything


def test_seed_everything_repeats_all_streams():
    seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002 - the global stream is the point
    seed_everything(123)
    second = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])
    seed_everything(124)
    assert not torch.equal(torch.rand(3), first[2])


def test_generator_is_isolated_from_the_global_stream():
    a = torch.rand(4, generator=generator(7))
    torch.manual_seed(0)
    torch.rand(100)  # advancing the global stream must not matter
    b = torch.rand(4, generator=generator(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.rand(4, generator=generator(8)))
