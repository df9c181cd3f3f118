"""Training loss of the audio LM: weighted next-token cross-entropy + PaLM z-loss.

For next-token targets y_i (labels shifted by one, IGNORE_INDEX = -100 not
counted) with logits l_i and log-partition log Z_i = logsumexp(l_i):

    ce_i     = log Z_i - l_i[y_i]
    w_i      = audio_weight if y_i is an audio code token (<a_k>) else 1
    ce       = sum_i w_i ce_i / N          (normalize="tokens", N = counted targets)
             | sum_i w_i ce_i / sum_i w_i  (normalize="weights")
             | (1/E) sum_e sum_{i in e} w_i ce_i / N_e
                                           (normalize="examples": E examples with targets,
                                            N_e targets of example e)
    z_loss   = z_loss_coef * sum_i (log Z_i)^2 / N        (PaLM, Chowdhery et al. 2022, Sec. 5)
    total    = ce + z_loss

The paper weighs audio-token targets 10x (Sec. 3.2); `<soa>`/`<eoa>` count as
text (weight 1). With "tokens" (default) the weight scales audio gradients
10x relative to an unweighted loss; with "weights" it only shifts the balance
between text and audio inside a batch. With "examples" every example (a conversation, a
caption pair) weighs the same whatever its number of targets, and audio targets still weigh
10x text ones inside it: in a fine-tuning mix with "tokens", one generation reply of 215 codes
(2,150 weight units) outweighs a three-token category answer some 700 times; with "examples",
10 times. Examples are the rows of a padded batch, or the runs between position restarts of a
packed one (`position_ids`). Logged separately (not in the gradient):
mean text CE, mean audio CE, z-loss and audio-token top-1 accuracy.
Computed in float32 whatever the logits dtype.

`linear_audio_lm_loss` is the same loss from the last hidden states and the
output matrix, never holding the [tokens x vocab] logits: at the paper's
shape (8 x 512 tokens, vocabulary 40,198) those are 0.66 GB in float32, and
their softmax and gradient as much again each. It runs `chunk_size` tokens at
a time, keeps only log Z, the picked logit and the argmax per token, and
recomputes each chunk's logits in backward (`_ChunkedLinearCE`). Given a
`TrainableRowsHead` (a frozen base matrix and the trainable new rows, as peft's
`trainable_token_indices` holds our `lm_head`) it computes the new rows'
gradient only, never a [V, D] one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class LossConfig:
    """Weights of the audio LM loss."""

    audio_weight: float = 10.0
    "Weight of targets that are audio code tokens (paper: 10)."
    z_loss_coef: float = 1e-4
    "Coefficient of the PaLM z-loss on log^2 Z (0 disables it)."
    normalize: Literal["tokens", "weights", "examples"] = "tokens"
    "Divide the weighted CE sum by the number of targets, by the sum of weights, or per example (module docstring)."
    chunk_size: int = 1024
    "Tokens per chunk of `linear_audio_lm_loss` (training computes logits chunk by chunk); 0 = full logits."

    def __post_init__(self) -> None:
        if self.audio_weight <= 0:
            raise ValueError(f"audio_weight must be > 0, got {self.audio_weight}")
        if self.z_loss_coef < 0:
            raise ValueError(f"z_loss_coef must be >= 0, got {self.z_loss_coef}")
        if self.normalize not in ("tokens", "weights", "examples"):
            raise ValueError(f"normalize must be 'tokens', 'weights' or 'examples', got {self.normalize!r}")
        if self.chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0 (0: full logits), got {self.chunk_size}")


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


def example_index(labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L] the example each token belongs to, numbered over the batch (< B * L).

    A padded batch's rows are its examples; in a packed row (`position_ids` given) a new
    example starts wherever the position restarts at 0.
    """
    b, length = labels.shape
    rows = torch.arange(b, device=labels.device)[:, None] * length  # [B, 1]
    if position_ids is None:
        return rows.expand(b, length)
    return rows + (position_ids == 0).long().cumsum(1) - 1  # a row starts with position 0


def audio_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    audio_ids: range,
    settings: LossConfig | None = None,
    position_ids: torch.Tensor | None = None,
) -> LossOutput:
    """Weighted next-token CE + z-loss.

    Args:
        logits: [B, L, V] model outputs at every position.
        labels: [B, L] token ids, IGNORE_INDEX where no loss is taken; not
            shifted (position t predicts labels[t + 1]).
        audio_ids: the contiguous range of audio code ids (`AudioVocabulary.audio_ids`).
        settings: weights (default `LossConfig()`).
        position_ids: [B, L] of a packed batch (where examples start), for normalize="examples".

    Returns:
        `LossOutput`.
    """
    settings = settings or LossConfig()
    # Masks instead of boolean indexing: no host synchronisation and static shapes, so the loss
    # compiles into the step's graph (torch.compile) and never stalls the GPU.
    logits = logits[:, :-1].float()  # [B, L-1, V]
    targets = labels[:, 1:]  # [B, L-1]
    log_z = torch.logsumexp(logits, dim=-1)  # [B, L-1]
    picked = logits.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # ignored targets read id 0, masked below
    with torch.no_grad():
        argmax = logits.argmax(dim=-1)  # [B, L-1]
    example = example_index(labels, position_ids)[:, 1:] if settings.normalize == "examples" else None
    return _combine(log_z, log_z - picked, argmax, targets, audio_ids, settings, example)


def _combine(
    log_z: torch.Tensor,
    ce: torch.Tensor,
    argmax: torch.Tensor,
    targets: torch.Tensor,
    audio_ids: range,
    settings: LossConfig,
    example: torch.Tensor | None = None,
) -> LossOutput:
    """Weights, masks, z-loss and logged parts from per-token log Z, CE and argmax (any shape, alike).

    `example`: the example of each target (`example_index`, same shape), for normalize="examples".
    """
    valid = (targets != IGNORE_INDEX).to(ce.dtype)
    ce = ce * valid  # same as F.cross_entropy where valid
    is_audio = (targets >= audio_ids.start) & (targets < audio_ids.stop)  # IGNORE_INDEX is never audio
    audio_f = is_audio.to(ce.dtype)
    weights = torch.where(is_audio, settings.audio_weight, 1.0).to(ce.dtype) * valid
    n = valid.sum()
    if settings.normalize == "examples":
        if example is None:
            raise ValueError("normalize='examples' needs the example index of every target")
        # targets per example by scatter_add into a fixed-size vector (bincount's size would be
        # data-dependent: a graph break and a host sync)
        flat = example.reshape(-1)
        counts = torch.zeros(flat.numel(), dtype=ce.dtype, device=ce.device).scatter_add(0, flat, valid.reshape(-1))
        weights = weights / counts[flat].clamp(min=1).view_as(weights)
        denom = (counts > 0).sum().to(ce.dtype).clamp(min=1)
    else:
        denom = (weights.sum() if settings.normalize == "weights" else n).clamp(min=1)
    weighted_ce = (weights * ce).sum() / denom
    z_loss = settings.z_loss_coef * (log_z.pow(2) * valid).sum() / n.clamp(min=1)
    with torch.no_grad():
        text_loss = _safe_mean(ce, valid - audio_f)
        audio_loss = _safe_mean(ce, audio_f)
        correct = (argmax == targets).to(ce.dtype)
        audio_accuracy = _safe_mean(correct, audio_f)
        num_audio = audio_f.sum()
    return LossOutput(
        total=weighted_ce + z_loss,
        ce=weighted_ce,
        z_loss=z_loss,
        text_loss=text_loss.detach(),
        audio_loss=audio_loss.detach(),
        audio_accuracy=audio_accuracy,
        num_text=(n - num_audio).detach(),
        num_audio=num_audio,
    )


# ---- chunked linear cross-entropy -----------------------------------------------------------------
#
# Written by hand: no fused kernel that does this is installed here (liger-kernel's
# LigerFusedLinearCrossEntropy is Triton-only, hence GPU-only, and has neither the per-token
# audio weight in this form nor our logged parts). Autograd over a loop of chunks would still
# keep every chunk's logits for backward, so a custom Function keeps only three numbers per
# token and recomputes each chunk's logits in backward: one extra [N, D] x [D, V] matmul
# (a third more head FLOPs) for never holding [N, V].
#
# Under the paper's recipe only the new rows of the head train (peft `trainable_token_indices`:
# a frozen base matrix and a trainable [R, D] delta written over rows `rows`). Autograd through
# peft's merged matrix (`base.index_copy(0, rows, delta)`) would build a [V, D] copy of the head
# every step and a full [V, D] gradient only to read R rows of it; `TrainableRowsHead` hands
# the parts to the Function instead, which computes the gradient of the delta [R, D] and none
# for the frozen rows.


@dataclass
class TrainableRowsHead:
    """An output matrix whose rows `rows` are a separate trainable delta (peft's trainable tokens).

    The effective matrix is `base` with row `rows[i]` replaced by `delta[i]` (after casting the
    delta to the base's dtype, as peft's `get_merged_weights` does). Each part gets the gradient
    it needs: the delta [R, D] if it requires one, the base only if it requires one (and then
    zero at the replaced rows, which the base does not reach), never a [V, D] gradient to throw
    away.
    """

    base: torch.Tensor
    "[V, D] the base matrix (frozen under LoRA: the text rows)."
    rows: Sequence[int]
    "R distinct row ids that `delta` replaces (e.g. `AudioVocabulary.new_ids`)."
    delta: torch.Tensor
    "[R, D] the replacing rows (peft's `trainable_tokens_delta`)."

    def __post_init__(self) -> None:
        rows = list(self.rows)
        if self.base.dim() != 2 or self.delta.shape != (len(rows), self.base.shape[1]):
            raise ValueError(f"delta must be [len(rows)={len(rows)}, D={self.base.shape[-1]}] for base "
                             f"{tuple(self.base.shape)}, got {tuple(self.delta.shape)}")
        if len(set(rows)) != len(rows) or (rows and not 0 <= min(rows) <= max(rows) < self.base.shape[0]):
            raise ValueError(f"rows must be distinct ids in [0, {self.base.shape[0]})")

    def span(self) -> tuple[int, int] | None:
        """(start, stop) when rows are range(start, stop) in order (columns are then a slice)."""
        rows = list(self.rows)
        if rows and rows == list(range(rows[0], rows[0] + len(rows))):
            return rows[0], rows[0] + len(rows)
        return None

    def merged(self) -> torch.Tensor:
        """The effective [V, D] matrix, with autograd (a full copy: for checks and the full-logits path)."""
        index = torch.as_tensor(list(self.rows), dtype=torch.long, device=self.base.device)
        return self.base.index_copy(0, index, self.delta.to(self.base))


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The matmul dtype autocast would pick for `F.linear(hidden, weight)` (autocast is off inside)."""
    if torch.is_autocast_enabled(hidden.device.type):
        return torch.get_autocast_dtype(hidden.device.type)
    return torch.promote_types(hidden.dtype, weight.dtype)


class _ChunkedLinearCE(torch.autograd.Function):
    """Per token: log Z and CE of `hidden @ W.T`, chunk by chunk; argmax as a third output.

    W is `weight`, or with `delta` [R, D] given, `weight` whose columns `cols` (a slice, or an
    index tensor [R]) are replaced by the delta's rows. Backward, for the incoming gradients g_ce
    and g_z of CE and log Z, a chunk's logit gradient is (g_ce + g_z) softmax - g_ce
    onehot(target) (d log Z / dl = softmax, d picked / dl = onehot); its columns `cols` feed
    the delta, the others the base.
    """

    @staticmethod
    def forward(ctx, hidden, weight, delta, targets, cols, chunk_size, dtype):
        # hidden [N, D], weight [V, D], delta [R, D] or None, targets [N]
        n = hidden.shape[0]
        log_z = hidden.new_empty(n, dtype=torch.float32)
        ce = hidden.new_empty(n, dtype=torch.float32)
        argmax = targets.new_empty(n)
        w = weight.to(dtype)
        d = None if delta is None else delta.to(weight.dtype).to(dtype)  # peft casts the delta to the base
        safe = targets.clamp(min=0)  # ignored targets read id 0; the caller masks them
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, n, chunk_size):
                part = slice(start, start + chunk_size)
                logits = _logits(hidden[part].to(dtype), w, d, cols).float()  # [C, V]
                log_z[part] = torch.logsumexp(logits, dim=-1)
                ce[part] = log_z[part] - logits.gather(1, safe[part, None]).squeeze(1)
                argmax[part] = logits.argmax(dim=-1)
        ctx.save_for_backward(hidden, weight, delta, safe, log_z)
        ctx.cols, ctx.chunk_size, ctx.dtype = cols, chunk_size, dtype
        ctx.mark_non_differentiable(argmax)
        return log_z, ce, argmax

    @staticmethod
    def backward(ctx, g_z, g_ce, _g_argmax):
        hidden, weight, delta, safe, log_z = ctx.saved_tensors
        cols, chunk_size, dtype = ctx.cols, ctx.chunk_size, ctx.dtype
        need_h, need_w, need_d = ctx.needs_input_grad[:3]
        g_z = torch.zeros_like(log_z) if g_z is None else g_z.float()
        g_ce = torch.zeros_like(log_z) if g_ce is None else g_ce.float()
        w = weight.to(dtype)
        d = None if delta is None else delta.to(weight.dtype).to(dtype)
        grad_h = torch.empty_like(hidden) if need_h else None
        # Accumulated over chunks in float32 at least (one rounding at the end, like a single matmul).
        acc = torch.promote_types(dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_d = torch.zeros(delta.shape, dtype=acc, device=delta.device) if need_d else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk_size):
                part = slice(start, start + chunk_size)
                h = hidden[part].to(dtype)  # [C, D]
                grad = _logits(h, w, d, cols).float()  # [C, V] logits, then in place: their gradient
                grad.sub_(log_z[part, None]).exp_().mul_((g_z[part] + g_ce[part])[:, None])
                grad.scatter_add_(1, safe[part, None], -g_ce[part, None])
                grad_h_part = None
                if d is not None:
                    g_rows = grad[:, cols] if isinstance(cols, slice) else grad.index_select(1, cols)  # [C, R]
                    if need_d:
                        grad_d.addmm_(g_rows.T.to(acc), h.to(acc))  # [R, D] += [R, C] x [C, D]
                    if need_h:
                        grad_h_part = g_rows.to(dtype) @ d
                    # The replaced base rows reach no logit: no gradient to them, nothing from them.
                    if isinstance(cols, slice):
                        grad[:, cols] = 0
                    else:
                        grad.index_fill_(1, cols, 0)
                if need_h:
                    full = grad.to(dtype) @ w  # [C, D]
                    grad_h[part] = (full if grad_h_part is None else full + grad_h_part).to(hidden.dtype)
                if need_w:
                    grad_w.addmm_(grad.T.to(acc), h.to(acc))  # [V, D] += [V, C] x [C, D]
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_d is None else grad_d.to(delta.dtype), None, None, None, None)


def _logits(h: torch.Tensor, w: torch.Tensor, d: torch.Tensor | None, cols: slice | torch.Tensor | None) -> torch.Tensor:
    """[C, V] logits of h [C, D] under w [V, D] with columns `cols` from d [R, D] (if given)."""
    logits = h @ w.T
    if d is not None:  # R/V more FLOPs than a merged matrix, for never copying the [V, D] head
        if isinstance(cols, slice):
            logits[:, cols] = h @ d.T
        else:
            logits.index_copy_(1, cols, h @ d.T)
    return logits


def linear_audio_lm_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor | TrainableRowsHead,
    labels: torch.Tensor,
    audio_ids: range,
    settings: LossConfig | None = None,
    position_ids: torch.Tensor | None = None,
) -> LossOutput:
    """`audio_lm_loss(hidden @ W.T, ...)` without the full logits (equal in value and gradient).

    Args:
        hidden: [B, L, D] last hidden states (after the final norm), the output head's input.
        weight: the output matrix W: a [V, D] tensor (bias-free), or a `TrainableRowsHead`
            (frozen base + trainable rows, as `output_head_weight` gives for our LoRA model:
            the gradient goes to the delta only, never to a [V, D] matrix).
        labels: [B, L] as in `audio_lm_loss` (not shifted).
        audio_ids: the contiguous range of audio code ids.
        settings: weights and `chunk_size` (tokens per chunk; 0 = one chunk).
        position_ids: as in `audio_lm_loss`.

    Returns:
        `LossOutput`, the same numbers as `audio_lm_loss` on the materialised logits.
    """
    settings = settings or LossConfig()
    # Every position runs, the last of each row with an ignored target: hidden [B, L, D] is then
    # viewed, not copied, as [N, D] (hidden[:, :-1] would copy it and its gradient would be
    # scattered back into a fresh [B, L, D]); B extra rows of the head's matmul.
    targets = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)  # [B, L]
    h = hidden.reshape(-1, hidden.shape[-1])  # [N, D], N = B L; a view when hidden is contiguous
    chunk = settings.chunk_size or max(h.shape[0], 1)
    if isinstance(weight, TrainableRowsHead):
        span = weight.span()
        cols = slice(*span) if span else torch.as_tensor(list(weight.rows), dtype=torch.long, device=h.device)
        base, delta = weight.base, weight.delta
    else:
        base, delta, cols = weight, None, None
    log_z, ce, argmax = _ChunkedLinearCE.apply(h, base, delta, targets.reshape(-1), cols, chunk,
                                               _compute_dtype(hidden, base))
    shape = targets.shape
    example = None
    if settings.normalize == "examples":  # the last column's target is ignored: any example index will do
        index = example_index(labels, position_ids)
        example = torch.cat([index[:, 1:], index[:, -1:]], dim=1)
    return _combine(log_z.view(shape), ce.view(shape), argmax.view(shape), targets, audio_ids, settings, example)


def output_head_weight(model: torch.nn.Module) -> torch.Tensor | TrainableRowsHead | None:
    """What a causal LM's output head multiplies by, with its autograd path; None if not a matrix.

    A plain bias-free `nn.Linear` head gives its weight. Peft's trainable-token wrapper (our
    `lm_head`, `trainable_token_indices`) with one active adapter gives a `TrainableRowsHead`:
    its base matrix (frozen: the text rows), the token ids and the trainable delta, so that
    `linear_audio_lm_loss` computes the new rows' gradient only; with several active adapters,
    the merged matrix (`get_merged_weights`, as its own forward does). Anything else (a
    LoRA-adapted or biased head) gives None, and the caller computes the full logits instead.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    adapter = getattr(head, "token_adapter", None)
    if adapter is not None and not adapter.merged and not adapter.disable_adapters:
        layer = adapter.base_layer
        if not (isinstance(layer, torch.nn.Linear) and layer.bias is None):
            return None
        names = list(adapter.active_adapters)
        if len(names) == 1 and names[0] in adapter.trainable_tokens_delta:
            return TrainableRowsHead(layer.weight, adapter.token_indices[names[0]],
                                     adapter.trainable_tokens_delta[names[0]])
        return adapter.get_merged_weights(names)
    if type(head) is torch.nn.Linear and head.bias is None:
        return head.weight
    return None


def plain_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Unweighted next-token CE (transformers' causal LM loss), for comparisons and benchmarks."""
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


__all__ = ["IGNORE_INDEX", "LossConfig", "LossOutput", "TrainableRowsHead", "audio_lm_loss", "example_index",
           "linear_audio_lm_loss", "output_head_weight", "plain_ce"]
