"""Write the training manifest of the example report: its categories minus its own evaluation clips.

The report (`eval/configs/example.yaml`) draws `data.per_category` clips per
category with `seed`; this draws up to `--per-category` OTHER clips per
category (another seed, every evaluated key excluded) so the tiny tokenizers
and LLM of the example never train on a clip the report scores.

    .venv/bin/python docs/eval-example/training_manifest.py --config eval/configs/example.yaml --per-category 150 --out /tmp/eval-example/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # eval/ is a folder of the repository, not installed

from eval.common import read_manifest
from eval.run_all import SuiteConfig
from lmmsn.config import load_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="eval/configs/example.yaml", help="the report's suite config")
    p.add_argument("--per-category", type=int, default=150, help="training clips per category")
    p.add_argument("--seed", type=int, default=1, help="seed of the training draw (the report uses the config's seed)")
    p.add_argument("--out", required=True, help="JSON-lines manifest to write (paths absolute)")
    args = p.parse_args()
    cfg = load_config(SuiteConfig, args.config)
    d = cfg.data
    common = dict(categories=d.categories or None, min_duration_s=d.min_seconds, skip_missing=d.skip_missing_files)
    held_out = {it.key for it in read_manifest(d.manifest, d.audio_root, per_category=d.per_category, seed=cfg.seed, **common)}
    pool = read_manifest(d.manifest, d.audio_root, per_category=args.per_category + d.per_category, seed=args.seed, **common)
    counts: dict[str, int] = {}
    rows = []
    for it in pool:
        if it.key in held_out or counts.get(it.category, 0) >= args.per_category:
            continue
        counts[it.category] = counts.get(it.category, 0) + 1
        rows.append({"path": str(Path(it.path).resolve()), "caption": it.caption, "label": it.label, "source": it.category})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} training clips {counts}; {len(held_out)} evaluation clips excluded -> {args.out}")


if __name__ == "__main__":
    main()
