"""Predicted MOS of (speech) reconstructions (paper: VCTK) with DNSMOS or a local predictor.

Predictors:

* `dnsmos` (default when the `eval` extra is installed) — Microsoft's DNSMOS
  (Reddy et al., ICASSP 2021/2022) as packaged by PyPI `speechmos`: the P.835
  model (`sig_bak_ovr.onnx`: SIG, BAK, OVRL after the DNS-Challenge polynomial
  mapping) and the P.808 model (`model_v8.onnx`), 16 kHz mono, called through
  `speechmos.dnsmos.run(x, sr=16000)`. DNSMOS scores 9.01 s windows with a
  1 s hop and averages them; a shorter clip is tiled (repeated) to 9.01 s by
  speechmos itself. The reported `mean` is the score named by `--score`
  (default `p808`, the P.808 ACR MOS); all four are kept per clip. DNSMOS was
  trained on speech: its numbers for music or sound effects mean little.
* a TorchScript file (`torch.jit.save` of a module mapping mono waveforms
  [B, N] float32 at `--predictor-sample-rate` to scores [B]), e.g. an
  exported UTMOS; or
* any Python object with `__call__(wavs [B, N]) -> [B]` and `sample_rate`,
  passed to `evaluate_mos` directly.

With no usable predictor the result is `{"status": "unavailable", "reason": ...}`
— never a made-up number. Clips are scored one at a time (batch size 1: no
padding to bias scores); a file that cannot be decoded is counted in `errors`.

    python -m eval.mos --system original=vctk_clips --system vqfm=vqfm_out --out reports/mos
    python -m eval.mos --predictor utmos.pt --system vqfm=vqfm_out --out reports/mos
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from eval.common import cli_logging, environment, environment_md, markdown_table, write_result

DNSMOS_SCORES = ("p808", "ovrl", "sig", "bak")


class TorchScriptMOS:
    """A MOS predictor saved with torch.jit: [B, N] mono -> [B] scores."""

    def __init__(self, path: str | Path, sample_rate: int = 16000):
        self.path, self.sample_rate = Path(path), sample_rate
        self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
        self.name = f"torchscript:{self.path.name}"

    @torch.no_grad()
    def __call__(self, wavs: torch.Tensor) -> torch.Tensor:
        return self.module(wavs).reshape(-1)

    def info(self) -> dict:
        from eval.judges import file_sha256

        return {"model": self.name, "weights_sha256": file_sha256(self.path)}


class DNSMOS:
    """DNSMOS P.835 + P.808 from PyPI `speechmos` (module docstring); `__call__` gives the `score` column.

    Args:
        score: which score `__call__` returns: p808 | ovrl | sig | bak.

    Raises:
        MissingJudge: speechmos (or onnxruntime/librosa) is not installed.
    """

    sample_rate = 16000

    def __init__(self, score: str = "p808"):
        from eval.judges import package_dir, require

        if score not in DNSMOS_SCORES:
            raise ValueError(f"DNSMOS score must be one of {DNSMOS_SCORES}, got {score!r}")
        self.dnsmos = require("speechmos.dnsmos", "speechmos", "the DNSMOS judge")
        self.models = {k: package_dir("speechmos", "the DNSMOS judge") / v for k, v in (("p835", "dnsmos_models/sig_bak_ovr.onnx"), ("p808", "dnsmos_models/model_v8.onnx"))}
        self.score = score
        self.name = f"dnsmos-{score}"

    def score_all(self, wav: torch.Tensor) -> dict[str, float]:
        """All four DNSMOS scores of one mono clip [N] or [1, N] at 16 kHz."""
        x = wav.reshape(-1).clamp(-1.0, 1.0).double().numpy()  # speechmos refuses samples outside [-1, 1]
        out = self.dnsmos.run(x, sr=self.sample_rate)
        return {"p808": float(out["p808_mos"]), "ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]), "bak": float(out["bak_mos"])}

    def __call__(self, wavs: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B] scores of the chosen column."""
        return torch.tensor([self.score_all(w)[self.score] for w in wavs.reshape(wavs.shape[0], -1)])

    def info(self) -> dict:
        from eval.judges import file_sha256, package_version

        return {"model": "DNSMOS P.835 (sig_bak_ovr.onnx) + P.808 (model_v8.onnx)", "name": self.name, "package": "speechmos",
                "package_version": package_version("speechmos"), "onnxruntime_version": package_version("onnxruntime"),
                "weights_sha256": {k: file_sha256(p) for k, p in self.models.items()}, "sample_rate": self.sample_rate,
                "windowing": "9.01 s windows, 1 s hop, averaged; shorter clips tiled to 9.01 s (speechmos)", "reported": self.score}


def load_predictor(path: str | None, sample_rate: int = 16000, score: str = "p808") -> tuple[TorchScriptMOS | DNSMOS | None, str]:
    """(predictor, "") or (None, reason it is unavailable).

    `path` None or "dnsmos" -> DNSMOS (when speechmos is installed); otherwise a TorchScript file.
    """
    if not path or path == "dnsmos":
        from eval.judges import MissingJudge

        try:
            return DNSMOS(score), ""
        except MissingJudge as exc:
            return None, f"no MOS predictor: {exc}" + ("" if path else "; or pass --predictor PATH to a TorchScript model")
    if not Path(path).is_file():
        return None, f"MOS predictor file {path} does not exist"
    try:
        return TorchScriptMOS(path, sample_rate), ""
    except Exception as exc:  # not a TorchScript archive, wrong version, ...
        return None, f"cannot load MOS predictor {path}: {type(exc).__name__}: {exc}"


def evaluate_mos(predictor, systems: dict[str, Sequence[Path]], reason: str = "", max_seconds: float | None = None) -> dict:
    """Mean predicted MOS of every system's files, or an `unavailable` record."""
    if predictor is None:
        return {"status": "unavailable", "reason": reason or "no predictor"}
    from lmmsn.audio import AudioError, load_audio

    out = {"status": "ok", "predictor": getattr(predictor, "name", type(predictor).__name__), "predictor_sample_rate": predictor.sample_rate,
           "predictor_info": predictor.info() if hasattr(predictor, "info") else None, "max_seconds": max_seconds, "systems": {}}
    for name, files in systems.items():
        scores, per_item, all_scores, errors, seconds = [], {}, {}, [], []
        for f in files:
            try:
                wav, _ = load_audio(f, predictor.sample_rate, 1, duration_s=max_seconds)  # [1, N]
            except AudioError as exc:
                errors.append(str(exc))
                continue
            seconds.append(wav.shape[-1] / predictor.sample_rate)
            if hasattr(predictor, "score_all"):
                all_scores[str(f)] = predictor.score_all(wav)
                per_item[str(f)] = all_scores[str(f)][predictor.score]
            else:
                per_item[str(f)] = float(predictor(wav)[0])
            scores.append(per_item[str(f)])
        row = {"mean": statistics.fmean(scores) if scores else float("nan"), "std": statistics.pstdev(scores) if scores else float("nan"),
               "n": len(scores), "errors": errors, "mean_seconds": statistics.fmean(seconds) if seconds else float("nan"), "per_item": per_item}
        if all_scores:
            row["means"] = {k: statistics.fmean(v[k] for v in all_scores.values()) for k in DNSMOS_SCORES}
            row["per_item_all"] = all_scores
        out["systems"][name] = row
    return out


def summary_md(result: dict, title: str = "Predicted MOS") -> str:
    if result["status"] != "ok":
        return f"# {title}\n\n**Unavailable:** {result['reason']}\n\n{environment_md(result['environment'])}"
    systems = result["systems"]
    dns = any("means" in v for v in systems.values())
    headers = ["system", "mean MOS", "std", "clips", "undecodable", "mean s"] + ([f"DNSMOS {k.upper()}" for k in DNSMOS_SCORES] if dns else [])
    rows = [[n, v["mean"], v["std"], v["n"], len(v.get("errors", [])), v.get("mean_seconds")] + ([v.get("means", {}).get(k) for k in DNSMOS_SCORES] if dns else [])
            for n, v in systems.items()]
    info = result.get("predictor_info") or {}
    ident = f" ({info['package']} {info['package_version']})" if info.get("package") else ""
    return "\n\n".join([f"# {title}", f"Predictor `{result['predictor']}`{ident} at {result['predictor_sample_rate']} Hz, batch size 1, clips cut to {result.get('max_seconds')} s."
                         + (" DNSMOS tiles clips shorter than 9.01 s; it is a speech-quality model." if dns else ""),
                         markdown_table(headers, rows), environment_md(result["environment"])])


def main(argv: Sequence[str] | None = None) -> dict:
    from eval.fad import list_audio

    parser = argparse.ArgumentParser(prog="python -m eval.mos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictor", default=None, help="'dnsmos' (the default; needs the eval extra) or a local TorchScript MOS model ([B, N] mono -> [B])")
    parser.add_argument("--score", default="p808", choices=DNSMOS_SCORES, help="DNSMOS score reported as the mean (all four are recorded)")
    parser.add_argument("--predictor-sample-rate", type=int, default=16000, help="sample rate the predictor expects")
    parser.add_argument("--system", action="append", default=[], help="NAME=FOLDER of audio to score; repeat per system")
    parser.add_argument("--max-seconds", type=float, default=None, help="score at most this many seconds per file")
    parser.add_argument("--out", required=True, help="output folder for mos.json / mos.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    predictor, reason = load_predictor(args.predictor, args.predictor_sample_rate, args.score)
    systems = {}
    for spec in args.system:
        name, sep, folder = spec.partition("=")
        if not sep:
            parser.error(f"--system expects NAME=FOLDER, got {spec!r}")
        systems[name] = list_audio(folder)
    result = evaluate_mos(predictor, systems, reason, args.max_seconds)
    result.update(settings=vars(args), environment=environment(seed=None, device="cpu", dtype="float32", batch_size=1))
    write_result(args.out, "mos", result, summary_md(result))
    return result


if __name__ == "__main__":
    main()
