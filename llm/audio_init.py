"""Audio rows that start where the tokenizer put the codes: new-row initialisation from the VQ codebook.

The paper's recipe (and `AudioLM.from_base` by default) draws the K new audio rows
of the input embedding and of the output head by mean resizing: every code starts
as an unrelated "typical" token, and the LLM must learn what each of thousands of
arbitrary symbols sounds like from its occurrences alone. Measured on the CPU demo
(issue 12): a linear probe on the bag of codes names held-out clips' category at
0.41 (chance 0.14), and so does one on the mean and spread of the clips' codebook
vectors; the LLM fine-tuned for 1000 steps scored 0.12 (forced choice), while the
same LLM learned a category written as one constant code per clip in 150 steps.

`init_audio_rows` instead gives code k the row mu + s * (z_k Q): z_k is the
tokenizer's codebook vector of k standardised per dimension, Q a fixed random
orthonormal map from the codebook's dimension to the LLM's width (seeded), mu the
mean of the existing rows and s the scale that gives the audio rows the mean
distance from mu of the existing rows. Codes that are close in the tokenizer's
latent space start close for the LLM, so the mean of a clip's rows (what one
uniform attention head reads) already carries its category. `<soa>` / `<eoa>`
keep their mean-resized rows. The same is done for the output head with its own
mu and s (codes that sound alike start with alike logits). Training then moves
the rows freely (they are the trainable-token delta). Off by default: it is not
the paper's method (`model.audio_init` in the LLM recipes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CODEBOOK_KEY = "quantizer.embed"
"The VQ codebook [K, d] in an audio tokenizer export's model.safetensors."


def codebook_vectors(tokenizer_export: str | Path) -> torch.Tensor:
    """The codebook [K, d] (float32) of an audio tokenizer export (a folder or its model.safetensors)."""
    from safetensors import safe_open

    path = Path(tokenizer_export)
    path = path / "model.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no audio tokenizer weights (model.audio_init wants a tokenizer export)")
    with safe_open(str(path), framework="pt") as f:
        if CODEBOOK_KEY not in f.keys():
            raise ValueError(f"{path}: no {CODEBOOK_KEY!r} tensor (not a VQ audio tokenizer export)")
        vectors = f.get_tensor(CODEBOOK_KEY).float()
    if vectors.ndim != 2 or not torch.isfinite(vectors).all():
        raise ValueError(f"{path}: {CODEBOOK_KEY} must be a finite [K, d] matrix, got shape {tuple(vectors.shape)}")
    return vectors


def projected(vectors: torch.Tensor, width: int, seed: int = 0) -> torch.Tensor:
    """z Q: the standardised vectors [K, d] through a seeded random orthonormal map to [K, width]."""
    z = (vectors - vectors.mean(0)) / vectors.std(0).clamp_min(1e-8)  # [K, d]
    g = torch.Generator().manual_seed(seed)
    d = z.shape[1]
    q, _ = torch.linalg.qr(torch.randn(max(d, width), min(d, width), generator=g))  # orthonormal columns
    q = q if d >= width else q.T  # [d, width]: Q^T Q = I (d >= width) or Q Q^T = I (d < width)
    return z @ q


def _rows_like(existing: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mu + s * y with mu, s from the existing rows (module docstring)."""
    mu = existing.mean(0)  # [H]
    target = (existing - mu).norm(dim=1).mean()
    return mu + y * (target / y.norm(dim=1).mean().clamp_min(1e-12))


@torch.no_grad()
def init_audio_rows(model: Any, vocabulary: Any, vectors: torch.Tensor, seed: int = 0) -> None:
    """Write the K audio rows of `model`'s input embedding and output head from `vectors` [K, d].

    Call after `resize_token_embeddings` and before peft wraps the model (the
    trainable-token delta starts from the rows as they are then).
    """
    k = vocabulary.codebook_size
    if vectors.shape[0] != k:
        raise ValueError(f"model.audio_init: the codebook has {vectors.shape[0]} codes, the LLM's audio vocabulary {k}")
    ids = torch.arange(vocabulary.first_audio_id, vocabulary.first_audio_id + k)
    heads = [model.get_input_embeddings()]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != heads[0].weight.data_ptr():
        heads.append(out)
    for layer in heads:
        w = layer.weight  # [V, H]
        y = projected(vectors, w.shape[1], seed)  # [K, H]
        w[ids] = _rows_like(w[: vocabulary.first_audio_id].float(), y).to(w.dtype)
