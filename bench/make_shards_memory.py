"""Peak memory of `data_prep.make_shards` over one long generated WAV (issue 14, class 7).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python bench/make_shards_memory.py \\
        --minutes 30 --workers 2 --vae tiny

Writes a `--minutes` long noise + tone WAV (44.1 kHz stereo by default, written in blocks so
this script itself stays small), a one-row manifest, then runs ``python -m data_prep.make_shards``
from `--repo` (default: this checkout; another checkout measures older code) and polls the RSS
of the whole process tree (main process + DataLoader workers) every `--poll-s` seconds with
psutil. Prints one JSON line: the peak of the summed tree RSS, the peak of the largest single
process, the wall time and the samples written. With `--time-limit-s` the run is stopped
there (on a busy machine a niced 30-minute run can take an hour); the peaks are then those of
the part that ran ("finished": false): after the first segments the new code's memory is at its
steady state, and the old code reached its peak decoding the whole file, before any encoding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile


def write_long_wav(path: Path, minutes: float, sample_rate: int, channels: int) -> None:
    rng = np.random.default_rng(0)
    total, block = int(minutes * 60 * sample_rate), sample_rate * 10
    with soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / sample_rate
            tone = 0.3 * np.sin(2 * np.pi * 440 * t)
            f.write(np.stack([tone + 0.05 * rng.standard_normal(n) for _ in range(channels)], axis=1))


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum, max) RSS in bytes over `proc` and its descendants."""
    sizes = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            sizes.append(p.memory_info().rss)
        except psutil.Error:
            pass
    return sum(sizes), max(sizes, default=0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vae", default="tiny", choices=["tiny", "mel-hifigan"])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--poll-s", type=float, default=0.05)
    parser.add_argument("--time-limit-s", type=float, default=0.0, help="stop make_shards after this long (0: never)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_long_wav(root / "long.wav", args.minutes, args.sample_rate, args.channels)
        (root / "manifest.jsonl").write_text(json.dumps({"path": "long.wav", "caption": "a long tone"}) + "\n")
        cmd = [sys.executable, "-m", "data_prep.make_shards", "--adapter", "manifest", "--root", str(root),
               "--out", str(root / "out"), "--vae", args.vae, "--num-workers", str(args.workers),
               "--device", "cpu", "--threads", "1"]
        t0 = time.perf_counter()
        log = open(root / "stderr.txt", "w")  # a pipe nobody reads would fill up and block the child
        proc = subprocess.Popen(cmd, cwd=args.repo, stderr=log, text=True)
        ps = psutil.Process(proc.pid)
        peak_sum = peak_one = 0
        finished = True
        while proc.poll() is None:
            total, one = tree_rss(ps)
            peak_sum, peak_one = max(peak_sum, total), max(peak_one, one)
            if args.time_limit_s and time.perf_counter() - t0 > args.time_limit_s:
                for p in [*ps.children(recursive=True), ps]:
                    p.kill()
                proc.wait()
                finished = False
                break
            time.sleep(args.poll_s)
        log.close()
        seconds = time.perf_counter() - t0
        if finished and proc.returncode != 0:
            raise SystemExit(f"make_shards failed ({proc.returncode}):\n{(root / 'stderr.txt').read_text()[-3000:]}")
        index = json.loads((root / "out" / "index.json").read_text()) if finished else {}
    result = {"repo": args.repo, "minutes": args.minutes, "sample_rate": args.sample_rate, "channels": args.channels,
              "vae": args.vae, "workers": args.workers, "peak_tree_rss_mb": round(peak_sum / 2**20, 1),
              "peak_process_rss_mb": round(peak_one / 2**20, 1), "seconds": round(seconds, 1),
              "finished": finished, "samples": index.get("num_samples"), "skipped": index.get("num_skipped")}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
