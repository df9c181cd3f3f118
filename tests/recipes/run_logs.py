"""Reading a run directory's CSV logs in the recipe tests."""

from __future__ import annotations

import csv
from pathlib import Path


def step_losses(output_dir: Path, key: str = "train/loss") -> dict[int, float]:
    """{step: value of `key`} over every launch (logger version) of a run directory."""
    out = {}
    for metrics in sorted(Path(output_dir).glob("logs/version_*/metrics.csv")):
        with metrics.open() as f:
            out.update({int(r["step"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)})
    return out
