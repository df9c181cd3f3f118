import math

import pytest
import torch

from lmmsn.tokenizer.flow import FlowConfig, interpolate, sample, sample_path, target_velocity


@pytest.mark.parametrize("sigma_min", [0.0, 1e-4, 0.1])
def test_interpolation_and_target_match_closed_form(sigma_min):
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 5, 2, generator=gen), torch.randn(3, 5, 2, generator=gen)
    t = torch.tensor([0.0, 0.3, 1.0])
    xt = interpolate(x0, x1, t, sigma_min)
    for i, ti in enumerate(t.tolist()):
        expected = (1 - (1 - sigma_min) * ti) * x0[i] + ti * x1[i]
        assert torch.allclose(xt[i], expected, atol=1e-6)
    assert torch.allclose(xt[0], x0[0])  # t = 0: pure noise
    assert torch.allclose(xt[2], sigma_min * x0[2] + x1[2], atol=1e-6)  # t = 1: data, width sigma_min
    u = target_velocity(x0, x1, sigma_min)
    assert torch.allclose(u, x1 - (1 - sigma_min) * x0)
    # u is the time derivative of the path: finite difference along t
    h = 1e-3
    s = torch.full((3,), 0.4)
    fd = (interpolate(x0, x1, s + h, sigma_min) - interpolate(x0, x1, s - h, sigma_min)) / (2 * h)
    assert torch.allclose(fd, u, atol=1e-3)


def test_sample_path_is_consistent():
    x1 = torch.randn(4, 6, 3)
    gen = torch.Generator().manual_seed(1)
    t, xt, ut = sample_path(x1, 1e-4, gen)
    gen = torch.Generator().manual_seed(1)
    t_again = torch.rand(4, generator=gen)
    x0 = torch.randn(x1.shape, generator=gen)
    assert torch.equal(t, t_again)
    assert torch.allclose(xt, interpolate(x0, x1, t, 1e-4)) and torch.allclose(ut, target_velocity(x0, x1, 1e-4))


def test_euler_on_the_true_conditional_field_lands_on_the_data():
    """With v = the exact OT field towards x1 (sigma_min = 0), one Euler step is exact."""
    x1 = torch.randn(2, 4, 3)
    config = FlowConfig(method="euler", steps=1, sigma_min=0.0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(0))
    out = sample(lambda x, t: x1 - x0, x1.shape, config, generator=gen)
    assert torch.allclose(out, x1, atol=1e-6)


@pytest.mark.parametrize("method, steps, tol", [("euler", 200, 5e-3), ("midpoint", 8, 2e-3), ("rk4", 4, 1e-4), ("dopri5", 1, 1e-4)])
def test_sampler_integrates_linear_ode(method, steps, tol):
    """dx/dt = -x from x0 gives x(1) = x0 / e."""
    config = FlowConfig(method=method, steps=steps)
    x0 = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(3))
    out = sample(lambda x, t: -x, x0.shape, config, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out, x0 / math.e, atol=tol)


def test_temperature_and_generator():
    config = FlowConfig(method="euler", steps=2)
    field = lambda x, t: torch.zeros_like(x)  # noqa: E731
    a = sample(field, (1, 5, 2), config, generator=torch.Generator().manual_seed(0))
    b = sample(field, (1, 5, 2), config, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    half = sample(field, (1, 5, 2), config, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(half, 0.5 * a)
    assert torch.equal(sample(field, (1, 5, 2), config, temperature=0.0), torch.zeros(1, 5, 2))


def test_bad_flow_config_is_rejected():
    with pytest.raises(ValueError, match="method"):
        FlowConfig(method="leapfrog")
    with pytest.raises(ValueError, match="sigma_min"):
        FlowConfig(sigma_min=1.0)
