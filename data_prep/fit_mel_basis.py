"""Fit the PCA basis of the `mel-hifigan` frontend on open audio.

    python -m data_prep.fit_mel_basis --manifest /work/data/corpus-split/train.jsonl --root /work/corpus \\
        --per-category 400 --max-seconds 10 --out tokenizer/assets/mel_hifigan_basis.safetensors

Decodes up to `--per-category` files of each category (a seeded draw; the
training side of a split only, so held-out clips never shape the frontend),
computes the vocoder's log-mel (`lmmsn.tokenizer.mel_hifigan.log_mel`), stacks 4
frames (320 values per latent frame), and fits the standardisation and the
64-dim orthonormal PCA projection (`fit_basis`). Silent frames (every band at
the log floor) are left out of the fit: they would pull the mean towards
digital silence. Unreadable files are skipped and counted. The basis file's
metadata records the manifest, the counts and the variance kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmmsn.audio import AudioError, load_audio
from lmmsn.tokenizer import mel_hifigan as mh

logger = logging.getLogger(__name__)


class _Frames(torch.utils.data.Dataset):
    """File -> stacked log-mel frames [n, 320] (None when unreadable); runs in DataLoader workers."""

    def __init__(self, paths: Sequence[Path], max_seconds: float) -> None:
        self.paths, self.max_seconds = list(paths), max_seconds
        self.filters = mh.mel_filterbank()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            wav, _ = load_audio(self.paths[i], sample_rate=mh.SAMPLE_RATE, channels=1, duration_s=self.max_seconds)
        except (AudioError, OSError, RuntimeError) as exc:
            logger.warning("skipping %s: %s", self.paths[i], exc)
            return None
        n = wav.shape[-1] // mh.DOWNSAMPLING_RATIO * mh.DOWNSAMPLING_RATIO
        if n == 0:
            return None
        mel = mh.log_mel(wav[:, :n], self.filters)  # [1, 80, F]
        stacked = mh.stack_frames(mel)[0]  # [T, 320]
        floor = torch.log(torch.tensor(mh.LOG_FLOOR))
        return stacked[(stacked > floor + 1e-4).any(dim=1)]


def _first(items: list) -> Any:
    return items[0]


def choose_files(manifest: Path, root: Path, per_category: int, seed: int) -> list[tuple[str, Path]]:
    """(category, path) of up to `per_category` rows per category, seeded."""
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_category: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_category[str(r.get("category", "unknown"))].append(r)
    rng = random.Random(seed)
    chosen = []
    for category in sorted(by_category):
        members = list(by_category[category])
        rng.shuffle(members)
        chosen += [(category, root / r["path"]) for r in members[:per_category]]
    return chosen


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m data_prep.fit_mel_basis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="JSON-lines manifest (path, category); use the training side of a split")
    parser.add_argument("--root", required=True, help="folder the manifest paths are relative to")
    parser.add_argument("--out", required=True, help="basis file to write (.safetensors)")
    parser.add_argument("--per-category", type=int, default=400, help="files per category")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="seconds read from the start of each file")
    parser.add_argument("--num-workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    chosen = choose_files(Path(args.manifest), Path(args.root), args.per_category, args.seed)
    dataset = _Frames([p for _, p in chosen], args.max_seconds)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=args.num_workers, collate_fn=_first)
    used: Counter[str] = Counter()
    skipped = 0

    def batches():
        nonlocal skipped
        for (category, _), frames in zip(chosen, tqdm(loader, desc="log-mel frames", unit="file"), strict=True):
            if frames is None or frames.shape[0] == 0:
                skipped += 1
                continue
            used[category] += 1
            yield frames

    basis = mh.fit_basis(batches())
    meta = {"manifest": str(args.manifest), "files": json.dumps(dict(sorted(used.items()))), "skipped": str(skipped),
            "max_seconds": str(args.max_seconds), "seed": str(args.seed), "explained": f"{basis.explained:.6f}",
            "command": "python -m data_prep.fit_mel_basis " + " ".join(sys.argv[1:] if argv is None else argv)}
    path = basis.save(args.out, meta)
    report = {"out": str(path), "sha256": mh.sha256_file(path), "frames": basis.frames, "explained": basis.explained,
              "files": dict(sorted(used.items())), "skipped": skipped}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
