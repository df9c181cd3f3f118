"""Tagging agreement: does a reconstruction (or generation) sound like the same kind of thing?

A pretrained tagger (YAMNet, `eval.judges`) labels the original clip and its
reconstruction; per pair we report:

* **top-1 agreement** — both clips' highest-scoring AudioSet class (mean patch
  score) is the same class;
* **KL softmax** — KL(p || q) with p, q the softmax over the 521 clip logits
  (mean patch logits) of the original and the reconstruction: the
  formulation of AudioGen / audioldm_eval's `KL` (there with PANNs), here
  with YAMNet, so values are not comparable with published ones;
* **KL Bernoulli** — sum over classes of the Bernoulli KL between the
  original's and the reconstruction's clip scores (mean patch sigmoid scores,
  clamped to [1e-6, 1 - 1e-6]): a proper divergence for multi-label scores
  (audioldm_eval's `KL_Sigmoid` keeps only the p log p/q half);
* **embedding cosine** — cosine similarity of the two clip embeddings.

Pairs are matched by file stem between the reference folder and each
system's folder. A file that cannot be decoded, or has no partner, is
counted and listed, never dropped silently.

    python -m eval.tagging --reference originals/ --system vqfm=recon_fm/ --system vqmse=recon_mse/ --out reports/tagging
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import (
    cli_logging,
    environment,
    environment_md,
    markdown_table,
    named_value,
    write_result,
)

log = logging.getLogger(__name__)
_EPS = 1e-6


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def kl_softmax(logits_p: np.ndarray, logits_q: np.ndarray) -> float:
    """KL(softmax(logits_p) || softmax(logits_q)) in nats; logits [K]."""
    lp, lq = _log_softmax(logits_p), _log_softmax(logits_q)
    return float(np.sum(np.exp(lp) * (lp - lq)))


def kl_bernoulli(p: np.ndarray, q: np.ndarray) -> float:
    """Sum over classes of KL(Bernoulli(p_k) || Bernoulli(q_k)) in nats; scores [K] in [0, 1]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    q = np.clip(np.asarray(q, dtype=np.float64), _EPS, 1 - _EPS)
    return float(np.sum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))))


def clip_summary(judge, wav, sample_rate: int) -> dict[str, Any]:
    """Clip logits, scores and embedding of one clip (means over patches)."""
    out = judge.analyse(wav, sample_rate)
    return {"logits": out.logits.mean(0), "scores": out.scores.mean(0), "embedding": out.embeddings.mean(0), "patches": int(out.logits.shape[0])}


def compare(judge, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Agreement of two `clip_summary` results (a = original, b = reconstruction)."""
    ia, ib = int(np.argmax(a["scores"])), int(np.argmax(b["scores"]))
    ea, eb = a["embedding"], b["embedding"]
    cos = float(ea @ eb / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12))
    return {"top1_reference": judge.class_names[ia], "top1_system": judge.class_names[ib], "agree": ia == ib,
            "kl_softmax": kl_softmax(a["logits"], b["logits"]), "kl_bernoulli": kl_bernoulli(a["scores"], b["scores"]), "embedding_cosine": cos}


def compare_clips(judge, reference: tuple, system: tuple) -> dict[str, Any]:
    """Agreement of two in-memory clips, each (wav, sample_rate)."""
    return compare(judge, clip_summary(judge, *reference), clip_summary(judge, *system))


def pair_files(reference: Sequence[Path], system: Sequence[Path]) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Match files by stem: (pairs, reference stems without a system file, system stems without a reference)."""
    ref = {p.stem: p for p in reference}
    sys_ = {p.stem: p for p in system}
    pairs = [(ref[k], sys_[k]) for k in sorted(ref) if k in sys_]
    return pairs, sorted(set(ref) - set(sys_)), sorted(set(sys_) - set(ref))


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def evaluate_pairs(judge, pairs: Sequence[tuple[Path, Path]], max_seconds: float | None = None, cache: dict | None = None) -> dict[str, Any]:
    """Tagging agreement over file pairs (reference, system); bad files are counted, not fatal."""
    from tqdm import tqdm

    from lmmsn.audio import AudioError, load_audio

    cache = {} if cache is None else cache

    def summary(path: Path):
        if path not in cache:
            wav, sr = load_audio(path, judge.sample_rate, 1, duration_s=max_seconds)
            cache[path] = clip_summary(judge, wav, sr) | {"seconds": wav.shape[-1] / sr}
        return cache[path]

    items, errors = [], []
    for ref, sys_ in tqdm(pairs, desc="tagging", leave=False):
        try:
            a, b = summary(ref), summary(sys_)
        except AudioError as exc:
            errors.append({"reference": str(ref), "system": str(sys_), "error": str(exc)})
            continue
        items.append({"key": ref.stem, "reference_seconds": a["seconds"], "system_seconds": b["seconds"], **compare(judge, a, b)})
    return {
        "pairs": len(items),
        "errors": errors,
        "top1_agreement": _mean([float(it["agree"]) for it in items]),
        "kl_softmax": _mean([it["kl_softmax"] for it in items]),
        "kl_bernoulli": _mean([it["kl_bernoulli"] for it in items]),
        "embedding_cosine": _mean([it["embedding_cosine"] for it in items]),
        "mean_reference_seconds": _mean([it["reference_seconds"] for it in items]),
        "mean_system_seconds": _mean([it["system_seconds"] for it in items]),
        "items": items,
    }


def evaluate_tagging(judge, reference: Sequence[Path], systems: dict[str, Sequence[Path]], max_seconds: float | None = None) -> dict[str, Any]:
    """Agreement of every system's files with the reference files of the same stem."""
    cache: dict = {}
    out: dict[str, Any] = {"judge": judge.info(), "max_seconds": max_seconds, "pairing": "by file stem", "reference_files": len(reference), "systems": {}}
    for name, files in systems.items():
        pairs, no_system, no_reference = pair_files(reference, files)
        res = evaluate_pairs(judge, pairs, max_seconds, cache)
        res.update(reference_without_system=no_system, system_without_reference=no_reference)
        out["systems"][name] = res
    return out


def summary_md(result: dict, title: str = "Tagging agreement (YAMNet)") -> str:
    rows = [[n, v["top1_agreement"], v["kl_softmax"], v["kl_bernoulli"], v["embedding_cosine"], v["pairs"], len(v["errors"]), len(v["reference_without_system"])]
            for n, v in result["systems"].items()]
    j = result["judge"]
    return "\n\n".join([
        f"# {title}",
        f"Judge **{j['name']}** ({j['package']} {j['package_version']}, weights sha256 {j['weights_sha256'][:12]}...), {j['sample_rate']} Hz mono, "
        f"batch size 1. Pairs matched {result['pairing']}; clips cut to {result['max_seconds']} s. KL in nats, original || system "
        "(definitions in `eval.tagging`); higher agreement / cosine and lower KL = closer to the original.",
        markdown_table(["system", "top-1 agreement", "KL softmax", "KL Bernoulli", "embedding cos", "pairs", "undecodable", "missing"], rows),
        environment_md(result["environment"]),
    ])


def main(argv: Sequence[str] | None = None) -> dict:
    from eval.fad import list_audio
    from eval.judges import YamNet

    parser = argparse.ArgumentParser(prog="python -m eval.tagging", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="folder of original clips")
    parser.add_argument("--system", action="append", type=named_value, required=True, help="NAME=FOLDER of reconstructions/generations (same file stems); repeat")
    parser.add_argument("--max-seconds", type=float, default=None, help="judge at most this many seconds of each file")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own)")
    parser.add_argument("--out", required=True, help="output folder for tagging.json / tagging.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    judge = YamNet.load(threads=args.threads)
    result = evaluate_tagging(judge, list_audio(args.reference), {n: list_audio(d) for n, d in args.system}, args.max_seconds)
    result.update(reference_name=str(args.reference), settings=vars(args) | {"system": dict(args.system)},
                  environment=environment(seed=None, device="cpu", dtype="uint8 (onnxruntime)", batch_size=1))
    write_result(args.out, "tagging", result, summary_md(result))
    return result


if __name__ == "__main__":
    main()
