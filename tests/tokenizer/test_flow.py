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


def test_code_centred_source_path_and_sampler():
    """source: codes draws x0 ~ N(m, s^2) for the path and starts the ODE there; temperature 0 starts at m."""
    x1 = torch.randn(3, 5, 2)
    mean = torch.randn(3, 5, 2)
    gen = torch.Generator().manual_seed(2)
    t, xt, ut = sample_path(x1, 0.0, gen, source_mean=mean, source_scale=0.5)
    gen = torch.Generator().manual_seed(2)
    torch.rand(3, generator=gen)
    x0 = mean + 0.5 * torch.randn(x1.shape, generator=gen)
    assert torch.allclose(xt, interpolate(x0, x1, t, 0.0)) and torch.allclose(ut, x1 - x0)
    config = FlowConfig(method="euler", steps=4, sigma_min=0.0, source="codes", source_scale=0.5)
    zero_field = sample(lambda x, t: torch.zeros_like(x), x1.shape, config, temperature=0.0, source_mean=mean)
    assert torch.equal(zero_field, mean)  # no velocity, no noise: the decode is the code itself
    exact = sample(lambda x, t: x1 - mean, x1.shape, config, temperature=0.0, source_mean=mean)
    assert torch.allclose(exact, x1, atol=1e-5)  # the straight path from the code to the data


def test_tokenizer_with_code_source_decodes_to_its_codes_before_training():
    from dataclasses import replace

    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    config = tokenizer_config("tiny")
    config.flow = replace(config.flow, source="codes", source_scale=0.3)
    torch.manual_seed(0)
    tok = build_tokenizer(config, with_vae=False).eval()
    codes = torch.randint(0, 32, (2, 7))
    z = tok.decode_latents(codes, temperature=0.0)
    # the untrained DiT outputs v = 0 (adaLN-Zero), so the decode is the denormalized code vectors
    torch.testing.assert_close(z, tok.denormalize(tok.quantizer.decode(codes)))
    with pytest.raises(ValueError, match="quantizer.dim"):
        replace(config, quantizer=replace(config.quantizer, dim=4))


def test_velocity_from_data_prediction_is_the_path_velocity():
    """If the network predicts the true x1, the derived velocity equals the conditional field u_t."""
    from lmmsn.tokenizer.flow import velocity_from_data

    gen = torch.Generator().manual_seed(3)
    x1, x0 = torch.randn(4, 3, 2, generator=gen), torch.randn(4, 3, 2, generator=gen)
    t = torch.tensor([0.0, 0.3, 0.9, 1.0])
    for sigma in (1e-4, 0.1):
        xt = interpolate(x0, x1, t, sigma)
        torch.testing.assert_close(velocity_from_data(x1, xt, t, sigma), target_velocity(x0, x1, sigma), rtol=1e-4, atol=1e-3)
    # and integrating it lands on the predicted point
    config = FlowConfig(method="midpoint", steps=8, prediction="data")
    end = sample(lambda x, s: velocity_from_data(x1, x, s, config.sigma_min), x1.shape, config, generator=gen)
    torch.testing.assert_close(end, x1, atol=1e-3, rtol=0)


def test_data_prediction_loss_is_the_regression_of_x1():
    from dataclasses import replace

    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    config = tokenizer_config("tiny")
    config.flow = replace(config.flow, prediction="data")
    torch.manual_seed(0)
    tok = build_tokenizer(config, with_vae=False)
    latents = torch.randn(2, 5, tok.latent_dim)
    out = tok.compute_loss(latents)
    # the untrained DiT outputs 0 (adaLN-Zero): the loss is the energy of the normalized latents
    torch.testing.assert_close(out.recon_loss, tok.normalize(latents).pow(2).mean())
