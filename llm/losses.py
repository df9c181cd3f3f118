"""Training loss of the audio LM: weighted next-token cross-entropy + PaLM z-loss.

For next-token targets y_i (labels shifted by one, IGNORE_INDEX = -100 not
counted) with logits l_i and log-partition log Z_i = logsumexp(l_i):

    ce_i     = log Z_i - l_i[y_i]
    w_i      = audio_weight if y_i is an audio code token (<a_k>) else 1
    ce       = sum_i w_i ce_i / N          (normalize="tokens", N = counted targets)
             | sum_i w_i ce_i / sum_i w_i  (normalize="weights")
    z_loss   = z_loss_coef * sum_i (log Z_i)^2 / N        (PaLM, Chowdhery et al. 2022, Sec. 5)
    total    = ce + z_loss

The paper weighs audio-token targets 10x (Sec. 3.2); `<soa>`/`<eoa>` count as
text (weight 1). With "tokens" (default) the weight scales audio gradients
10x relative to an unweighted loss; with "weights" it only shifts the balance
between text and audio inside a batch. Logged separately (not in the gradient):
mean text CE, mean audio CE, z-loss and audio-token top-1 accuracy.
Computed in float32 whatever the logits dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class LossSettings:
    """Weights of the audio LM loss."""

    audio_weight: float = 10.0
    "Weight of targets that are audio code tokens (paper: 10)."
    z_loss_coef: float = 1e-4
    "Coefficient of the PaLM z-loss on log^2 Z (0 disables it)."
    normalize: Literal["tokens", "weights"] = "tokens"
    "Divide the weighted CE sum by the number of targets or by the sum of weights."

    def __post_init__(self) -> None:
        if self.audio_weight <= 0:
            raise ValueError(f"audio_weight must be > 0, got {self.audio_weight}")
        if self.z_loss_coef < 0:
            raise ValueError(f"z_loss_coef must be >= 0, got {self.z_loss_coef}")
        if self.normalize not in ("tokens", "weights"):
            raise ValueError(f"normalize must be 'tokens' or 'weights', got {self.normalize!r}")


@dataclass
class LossOutput:
    """The loss (`total` carries the gradient) and its detached parts for logging."""

    total: torch.Tensor
    ce: torch.Tensor
    "Weighted cross-entropy (part of total)."
    z_loss: torch.Tensor
    "Coefficient times mean log^2 Z (part of total)."
    text_loss: torch.Tensor
    "Mean CE over text targets (detached; 0 when there are none)."
    audio_loss: torch.Tensor
    "Mean CE over audio targets (detached; 0 when there are none)."
    audio_accuracy: torch.Tensor
    "Top-1 accuracy over audio targets (detached; 0 when there are none)."
    num_text: torch.Tensor
    "Counted text targets (0-dim, detached: reading it is the caller's host sync, not the loss's)."
    num_audio: torch.Tensor
    "Counted audio targets (0-dim, detached)."

    def log_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Scalars to log (`prefix` e.g. "train/")."""
        return {
            f"{prefix}loss": self.total.detach(),
            f"{prefix}ce": self.ce.detach(),
            f"{prefix}z_loss": self.z_loss.detach(),
            f"{prefix}text_loss": self.text_loss,
            f"{prefix}audio_loss": self.audio_loss,
            f"{prefix}audio_accuracy": self.audio_accuracy,
        }


def _safe_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    return (values * mask).sum() / count.clamp(min=1)


def audio_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    audio_ids: range,
    settings: LossSettings | None = None,
) -> LossOutput:
    """Weighted next-token CE + z-loss.

    Args:
        logits: [B, L, V] model outputs at every position.
        labels: [B, L] token ids, IGNORE_INDEX where no loss is taken; not
            shifted (position t predicts labels[t + 1]).
        audio_ids: the contiguous range of audio code ids (`AudioVocabulary.audio_ids`).
        settings: weights (default `LossSettings()`).

    Returns:
        `LossOutput`.
    """
    settings = settings or LossSettings()
    # Masks instead of boolean indexing: no host synchronisation and static shapes, so the loss
    # compiles into the step's graph (torch.compile) and never stalls the GPU.
    logits = logits[:, :-1].float()  # [B, L-1, V]
    targets = labels[:, 1:]  # [B, L-1]
    valid = (targets != IGNORE_INDEX).to(logits.dtype)  # [B, L-1]
    log_z = torch.logsumexp(logits, dim=-1)  # [B, L-1]
    picked = logits.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # ignored targets read id 0, masked below
    ce = (log_z - picked) * valid  # [B, L-1]; same as F.cross_entropy where valid
    is_audio = (targets >= audio_ids.start) & (targets < audio_ids.stop)  # IGNORE_INDEX is never audio
    audio_f = is_audio.to(ce.dtype)
    weights = torch.where(is_audio, settings.audio_weight, 1.0).to(ce.dtype) * valid  # [B, L-1]
    n = valid.sum()
    denom = (weights.sum() if settings.normalize == "weights" else n).clamp(min=1)
    weighted_ce = (weights * ce).sum() / denom
    z_loss = settings.z_loss_coef * (log_z.pow(2) * valid).sum() / n.clamp(min=1)
    with torch.no_grad():
        text_loss = _safe_mean(ce, valid - audio_f)
        audio_loss = _safe_mean(ce, audio_f)
        correct = (logits.argmax(dim=-1) == targets).to(ce.dtype)
        audio_accuracy = _safe_mean(correct, audio_f)
        num_audio = audio_f.sum()
    return LossOutput(
        total=weighted_ce + z_loss,
        ce=weighted_ce,
        z_loss=z_loss,
        text_loss=text_loss,
        audio_loss=audio_loss,
        audio_accuracy=audio_accuracy,
        num_text=(n - num_audio).detach(),
        num_audio=num_audio,
    )


def plain_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Unweighted next-token CE (transformers' causal LM loss), for comparisons and benchmarks."""
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


__all__ = ["IGNORE_INDEX", "LossOutput", "LossSettings", "audio_lm_loss", "plain_ce"]
