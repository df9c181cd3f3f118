"""How `eval.reconstruction --audio` judges a reconstruction on sound.

`AudioJudging` holds what it needs (the frozen autoencoder, the original clips, an optional
YAMNet judge from `load_yamnet`); `judge_originals` tags the originals and gives the
same-category chance agreement, `judge_audio` decodes a table row and adds per clip and data
set the log-mel L1 (`logmel_l1`, HiFi-GAN analysis at 22.05 kHz) and, with YAMNet, top-1
agreement, KL(original || decoded) and identification (is the clip's own original the one of
its category whose YAMNet posterior is closest to the decoded clip's, by that KL? chance
1 / clips in the category: unlike top-1 agreement it does not saturate where YAMNet gives every
original of a category the same top class), writing example WAVs under folders named by `_slug`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class AudioJudging:
    """What `--audio` needs: the frozen autoencoder, the original clips and optional judges."""

    vae: Any
    "Frozen autoencoder whose `decode` turns latents into waveforms."
    originals: dict[str, list[torch.Tensor]]
    "Per data set, the original clips [C, N] at the autoencoder's rate (the audio the latents came from)."
    yamnet: Any | None = None
    "An `eval.judges.YamNet` (None: no YAMNet numbers)."
    examples_dir: Path | None = None
    "Write the first `examples_per_dataset` decoded clips of every row here (WAV)."
    examples_per_dataset: int = 2
    tags: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    "Filled in: YAMNet summary of each original clip."


def _logmel_22k(wav: torch.Tensor, rate: int) -> torch.Tensor:
    from lmmsn.audio import convert_channels, resample
    from lmmsn.tokenizer import mel_hifigan as mh

    mono = convert_channels(wav.float(), 1)[0]  # [N]
    mono = resample(mono, rate, mh.SAMPLE_RATE)
    n = mono.shape[-1] // mh.HOP * mh.HOP
    if n < mh.HOP * 2:
        mono = torch.nn.functional.pad(mono, (0, mh.HOP * 2 - mono.shape[-1]))
        n = mh.HOP * 2
    return mh.log_mel(mono[None, :n], mh.mel_filterbank())[0]  # [80, F]


def logmel_l1(reference: torch.Tensor, decoded: torch.Tensor, rate: int) -> float:
    """Spectral distance of two [C, N] clips at `rate`: mean |Δ log-mel| over the frames both cover."""
    a, b = _logmel_22k(reference, rate), _logmel_22k(decoded, rate)
    n = min(a.shape[-1], b.shape[-1])
    return float((a[:, :n] - b[:, :n]).abs().mean())


def _yamnet_summary(yamnet, wav: torch.Tensor, rate: int) -> dict[str, Any]:
    out = yamnet.analyse(wav, rate)
    logits = np.asarray(out.logits).mean(0) if hasattr(out, "logits") else None
    scores = np.asarray(out.scores).mean(0)
    return {"top1": int(scores.argmax()), "scores": scores, "logits": logits, "embeddings": np.asarray(out.embeddings)}


def _kl(p_scores: np.ndarray, q_scores: np.ndarray) -> float:
    """KL(p || q) between clip-mean class distributions (scores renormalized to sum 1)."""
    p = np.clip(p_scores, 1e-8, None)
    q = np.clip(q_scores, 1e-8, None)
    p, q = p / p.sum(), q / q.sum()
    return float((p * np.log(p / q)).sum())


def judge_originals(judging: AudioJudging) -> dict[str, float]:
    """YAMNet summaries of the originals and the same-category chance agreement per data set."""
    chance: dict[str, float] = {}
    if judging.yamnet is None:
        return chance
    rate = judging.vae.sample_rate
    for dname, clips in judging.originals.items():
        judging.tags[dname] = [_yamnet_summary(judging.yamnet, w, rate) for w in clips]
        tops = [t["top1"] for t in judging.tags[dname]]
        pairs = [(i, j) for i in range(len(tops)) for j in range(len(tops)) if i != j]
        chance[dname] = float(np.mean([tops[i] == tops[j] for i, j in pairs])) if pairs else float("nan")
    return chance


@torch.no_grad()
def judge_audio(name: str, row: dict[str, Any], judging: AudioJudging) -> dict[str, Any]:
    """Decode every kept reconstruction of `row` and add log-mel L1 (and YAMNet) per clip and data set.

    Returns YAMNet patch embeddings of all decoded clips (for FAD), or an empty array.
    """
    from tqdm import tqdm

    from lmmsn.audio import save_audio

    rate = judging.vae.sample_rate
    embeddings = []
    for dname, stats in row["datasets"].items():
        originals = judging.originals[dname]
        for i, entry in enumerate(tqdm(stats["per_clip"], desc=f"decoding {name} / {dname}", leave=False)):
            z_hat = entry.pop("z_hat")  # [T, D]
            entry.pop("codes", None)
            wav = judging.vae.decode(z_hat.T[None].float())[0].float().cpu()  # [C, T * ratio]
            original = originals[i][..., : wav.shape[-1]]
            entry["logmel_l1"] = logmel_l1(original, wav, rate)
            if judging.yamnet is not None:
                summary = _yamnet_summary(judging.yamnet, wav, rate)
                reference = judging.tags[dname][i]
                entry["yamnet_agree"] = float(summary["top1"] == reference["top1"])
                entry["yamnet_kl"] = _kl(reference["scores"], summary["scores"])
                kls = [_kl(t["scores"], summary["scores"]) for t in judging.tags[dname]]
                entry["yamnet_identified"] = float(int(np.argmin(kls)) == i)
                embeddings.append(summary["embeddings"])
            if judging.examples_dir is not None and i < judging.examples_per_dataset:
                folder = judging.examples_dir / _slug(name)
                save_audio(folder / f"{dname}_{i:02d}.wav", wav, rate)
                save_audio(judging.examples_dir / "original" / f"{dname}_{i:02d}.wav", original, rate)
        for key in ("logmel_l1", "yamnet_agree", "yamnet_kl", "yamnet_identified"):
            values = [c[key] for c in stats["per_clip"] if key in c]
            if values:
                stats[key] = float(np.mean(values))
    return np.concatenate(embeddings) if embeddings else np.zeros((0, 0))


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "row"


def load_yamnet(required: bool) -> Any | None:
    """The packaged YAMNet judge, or None (with a warning) when the eval extra is missing."""
    try:
        from eval.judges import YamNet

        return YamNet.load(threads=1)
    except ImportError as exc:
        if required:
            raise
        log.warning("YAMNet judge unavailable (%s): audio rows get log-mel L1 only", exc)
        return None
