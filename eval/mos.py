"""Predicted MOS of (speech) reconstructions through a pluggable predictor (paper: VCTK).

The paper reports a predicted mean opinion score of its reconstructions. No
MOS predictor ships with LM-MSN and none can be downloaded here, so the
predictor is loaded from a local path:

* a TorchScript file (`torch.jit.save` of a module mapping mono waveforms
  [B, N] float32 at `--predictor-sample-rate` to scores [B]), e.g. an
  exported UTMOS / DNSMOS-style model; or
* any Python object with `__call__(wavs [B, N]) -> [B]` and `sample_rate`,
  passed to `evaluate_mos` directly.

With no predictor (none given, or the file is missing) the result is
`{"status": "unavailable", "reason": ...}` — never a made-up number.
Clips are scored one at a time (batch size 1: no padding to bias scores).

    python -m eval.mos --predictor utmos.pt --system original=vctk_clips --system vqfm=vqfm_out --out reports/mos
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from eval.common import cli_logging, environment, environment_md, markdown_table, write_result


class TorchScriptMOS:
    """A MOS predictor saved with torch.jit: [B, N] mono -> [B] scores."""

    def __init__(self, path: str | Path, sample_rate: int = 16000):
        self.path, self.sample_rate = Path(path), sample_rate
        self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
        self.name = f"torchscript:{self.path.name}"

    @torch.no_grad()
    def __call__(self, wavs: torch.Tensor) -> torch.Tensor:
        return self.module(wavs).reshape(-1)


def load_predictor(path: str | None, sample_rate: int = 16000) -> tuple[TorchScriptMOS | None, str]:
    """(predictor, "") or (None, reason it is unavailable)."""
    if not path:
        return None, "no MOS predictor given (--predictor PATH to a TorchScript model); none ships with LM-MSN"
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
    from lmmsn.audio import load_audio

    out = {"status": "ok", "predictor": getattr(predictor, "name", type(predictor).__name__), "predictor_sample_rate": predictor.sample_rate, "systems": {}}
    for name, files in systems.items():
        scores = []
        for f in files:
            wav, _ = load_audio(f, predictor.sample_rate, 1, duration_s=max_seconds)  # [1, N]
            scores.append(float(predictor(wav)[0]))
        out["systems"][name] = {"mean": statistics.fmean(scores), "std": statistics.pstdev(scores), "n": len(scores), "per_item": dict(zip(map(str, files), scores, strict=True))}
    return out


def summary_md(result: dict, title: str = "Predicted MOS") -> str:
    if result["status"] != "ok":
        return f"# {title}\n\n**Unavailable:** {result['reason']}\n\n{environment_md(result['environment'])}"
    rows = [[n, v["mean"], v["std"], v["n"]] for n, v in result["systems"].items()]
    return "\n\n".join([f"# {title}", f"Predictor `{result['predictor']}` at {result['predictor_sample_rate']} Hz, batch size 1.", markdown_table(["system", "mean MOS", "std", "clips"], rows), environment_md(result["environment"])])


def main(argv: Sequence[str] | None = None) -> dict:
    from eval.fad import list_audio

    parser = argparse.ArgumentParser(prog="python -m eval.mos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictor", default=None, help="local TorchScript MOS model ([B, N] mono -> [B]); without it the result is 'unavailable'")
    parser.add_argument("--predictor-sample-rate", type=int, default=16000, help="sample rate the predictor expects")
    parser.add_argument("--system", action="append", default=[], help="NAME=FOLDER of audio to score; repeat per system")
    parser.add_argument("--max-seconds", type=float, default=None, help="score at most this many seconds per file")
    parser.add_argument("--out", required=True, help="output folder for mos.json / mos.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    predictor, reason = load_predictor(args.predictor, args.predictor_sample_rate)
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
