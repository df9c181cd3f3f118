"""Optimal-transport conditional flow matching: the probability path and its ODE sampler.

The path is Lipman et al. 2023 ("Flow Matching for Generative Modeling",
Eq. 20-23), in the form of torchcfm's `sample_location_and_conditional_flow`
with x0 ~ N(0, I) noise and x1 the data (paper Sec. III, ref. [26]):

    x_t = (1 - (1 - sigma_min) t) x0 + t x1
    u_t = x1 - (1 - sigma_min) x0

The network regresses u_t given (x_t, t, condition) (`cfm_loss`); sampling
integrates dx/dt = v(x, t) from t = 0 (noise scaled by a temperature) to
t = 1 with `torchdiffeq.odeint` (`sample`). This module holds only the math;
the network that estimates v is `lmmsn.tokenizer.decoder`.

The network estimates the velocity directly (`prediction: velocity`, the
paper's OT-CFM) or the data point x1 (`prediction: data`): v is then
recovered from the path, v = (x1_hat - (1 - sigma_min) x_t) / (1 - (1 - sigma_min) t),
and the loss is |x1_hat - x1|^2, i.e. the same regression as the velocity loss
with a weight (1 - (1 - sigma_min) t)^2 that no longer explodes the late
times. At t = 0 the data prediction is the plain regression of x1 from the
codes (the VQ+MSE ablation's task), so a temperature-0 decode starts from
a conditional-mean estimate and short trainings get sharp decodes.

The source is N(0, I) by default (`source: gaussian`, the paper's OT-CFM).
With `source: codes` it is N(m, s^2 I) centred on a per-frame mean m given
by the caller (the tokenizer passes the quantized code vectors, which live
in the latent space when the encoder is residual) with s = `source_scale`:
the same OT path from a conditional source, so the ODE only has to move a
frame from its code towards the latent, and a temperature-0 decode starts
at the code itself (a per-frame quantizer) and refines it with context.

Dimensions: B batch, T frames, L latent dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

FIXED_STEP_METHODS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")


@dataclass
class FlowConfig:
    """Training objective of the decoder and how codes are sampled back to latents."""

    objective: Literal["cfm", "mse"] = "cfm"
    "cfm: OT conditional flow matching (VQ+FM, the paper's model); mse: VQ+MSE ablation (same decoder, t fixed to 0, predicts latents from zeros)."
    sigma_min: float = 1e-4
    "Width of the OT path at t = 1 (Lipman et al.)."
    method: str = "midpoint"
    "torchdiffeq odeint method: fixed-step (euler, midpoint, rk4, ...) or adaptive (dopri5, ...)."
    steps: int = 4
    "Fixed-step methods: uniform steps from t=0 to 1 (midpoint: 2 network calls each)."
    temperature: float = 1.0
    "Scale of the starting noise x0 (0 = deterministic, start from the mean)."
    prediction: Literal["velocity", "data"] = "velocity"
    "What the network outputs: the velocity u_t (paper) or the data point x1 (the velocity is derived from it)."
    source: Literal["gaussian", "codes"] = "gaussian"
    "Source of the path: N(0, I) (paper), or N(code vector, source_scale^2 I) per frame (needs codebook dim = latent dim)."
    source_scale: float = 1.0
    "Standard deviation of the source around its mean."
    atol: float = 1e-5
    "Adaptive methods: absolute tolerance."
    rtol: float = 1e-5
    "Adaptive methods: relative tolerance."

    def __post_init__(self) -> None:
        if not 0.0 <= self.sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {self.sigma_min}")
        if self.method not in FIXED_STEP_METHODS + ADAPTIVE_METHODS:
            raise ValueError(f"flow method {self.method!r} is not one of {FIXED_STEP_METHODS + ADAPTIVE_METHODS}")
        if self.steps < 1:
            raise ValueError(f"flow steps must be >= 1, got {self.steps}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.source_scale <= 0:
            raise ValueError(f"source_scale must be > 0, got {self.source_scale}")


def velocity_from_data(x1_hat: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """The OT path's velocity at (x_t, t) if it ends at x1_hat: (x1_hat - (1 - sigma_min) x_t) / (1 - (1 - sigma_min) t).

    Derived from x_t = (1 - (1 - s) t) x0 + t x1 and u = x1 - (1 - s) x0; finite at t = 1
    when sigma_min > 0 (the denominator is then sigma_min), clamped at 1e-4 otherwise.
    """
    te = _expand_time(t, xt)
    return (x1_hat - (1 - sigma_min) * xt) / (1 - (1 - sigma_min) * te).clamp_min(1e-4)


def _expand_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t [B] -> [B, 1, ..., 1] broadcastable against x."""
    return t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """Point on the OT path: x_t = (1 - (1 - sigma_min) t) x0 + t x1, t [B]."""
    te = _expand_time(t, x1)
    return (1 - (1 - sigma_min) * te) * x0 + te * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """Conditional vector field of the OT path: u_t = x1 - (1 - sigma_min) x0 (independent of t)."""
    return x1 - (1 - sigma_min) * x0


def sample_path(
    x1: torch.Tensor,
    sigma_min: float,
    generator: torch.Generator | None = None,
    source_mean: torch.Tensor | None = None,
    source_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw t ~ U(0, 1) per sample and x0 ~ N(source_mean, source_scale^2 I); return (t [B], x_t, u_t)."""
    t = torch.rand(x1.shape[0], device=x1.device, generator=generator)
    x0 = source_scale * torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    if source_mean is not None:
        x0 = x0 + source_mean
    return t, interpolate(x0, x1, t, sigma_min), target_velocity(x0, x1, sigma_min)


def sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    config: FlowConfig,
    *,
    steps: int | None = None,
    temperature: float | None = None,
    method: str | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    source_mean: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from noise at t = 0 to t = 1.

    Args:
        velocity: v(x [B, ...], t [B]) -> [B, ...].
        shape: shape of x, e.g. (B, T, L).
        config: default method, steps, temperature and tolerances.
        steps / temperature / method: per-call overrides of the config.
        generator: source of the starting noise (reproducible decodes).
        device / dtype: of x.
        source_mean: mean of the source (`source: codes`), of `shape`; the noise is then
            scaled by `config.source_scale` too.
        noise: the standard normal starting noise itself (of `shape`), instead of drawing it
            from `generator` (windowed decodes share one draw across overlapping windows).

    Returns:
        x at t = 1, of `shape`.
    """
    from torchdiffeq import odeint

    steps = config.steps if steps is None else steps
    temperature = config.temperature if temperature is None else temperature
    method = config.method if method is None else method
    if noise is None:
        noise = torch.randn(shape, device=device, dtype=dtype, generator=generator)
    elif tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, the flow state is {tuple(shape)}")
    x0 = temperature * noise.to(device, dtype)
    if source_mean is not None:
        x0 = source_mean.to(dtype) + config.source_scale * x0

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # Under autocast the network answers in bf16; the ODE state stays in `dtype`.
        return velocity(x, t.expand(x.shape[0]).to(x.dtype)).to(x.dtype)

    if method in ADAPTIVE_METHODS:
        grid = torch.tensor([0.0, 1.0], device=device, dtype=dtype)
        path = odeint(field, x0, grid, method=method, atol=config.atol, rtol=config.rtol)
    else:
        grid = torch.linspace(0.0, 1.0, steps + 1, device=device, dtype=dtype)
        path = odeint(field, x0, grid, method=method)
    return path[-1]


CONDITIONAL_MEAN = {"steps": 1, "temperature": 0.0, "method": "euler"}
"""`sample` overrides that return the model's estimate of E[x1 | condition] instead of a sample.

At t = 0 the path's state is the source draw x0, independent of x1 given the condition, so the
flow-matching regression's optimum there is v(x0, 0) = E[x1 | c] - (1 - sigma_min) x0, and one
Euler step from x0 = the source mean (temperature 0) lands on E[x1 | c] + sigma_min x0: the
conditional mean, whatever the prediction parametrisation. It is the fair point estimate for a
latent MSE, which a sample (error ~ twice the conditional variance) is not.
"""

__all__ = ["CONDITIONAL_MEAN", "FlowConfig", "interpolate", "sample", "sample_path", "target_velocity", "velocity_from_data"]
