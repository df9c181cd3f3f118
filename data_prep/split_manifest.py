"""Split a labelled manifest into train and held-out parts for learning claims.

    python -m data_prep.split_manifest /data/open-audio/manifest.jsonl --out /data/open-audio/split \\
        [--holdout-sources widelands-data,kajongg] [--per-category 40] [--root /data/open-audio] [--seed 0]

Held out, never trained on:

1. every row of the held-out *sources* (whole packages / datasets: the model never
   hears their recording conditions, speakers or sound designers), and
2. random rows of the other sources, per category, until each category has at least
   `--per-category` held-out rows (or half its rows, whichever is smaller), so that a
   corpus that is 86% speech still gives every category enough test clips.

`--max-train-per-category N` then keeps a seeded draw of at most N training rows
per category (the open corpus is 86% speech; the rest is written to
`unused.jsonl`, never to the held-out side). With `--root`, files with identical bytes (the same sound shipped by two packages)
are kept on one side: a group of duplicates goes to the held-out part if any member
does. Writes `train.jsonl`, `heldout.jsonl` (rows unchanged) and `split.json` (the
settings and counts per category and side). Deterministic for a given manifest and seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_HOLDOUT_SOURCES = ("widelands-data", "kajongg", "chuck-data", "wesnoth-1.16-data", "yaru-theme-sound")
"Whole sources held out of the open corpus / `data_prep.open_audio` sets: together they give every category but music held-out clips of their own."


class SplitError(ValueError):
    """The manifest cannot be split as asked."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """JSON-lines rows; each must be an object with a string `path` and `category`."""
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SplitError(f"{path} line {n}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(row.get("category"), str):
            raise SplitError(f"{path} line {n}: needs an object with string 'path' and 'category'")
        rows.append(row)
    if not rows:
        raise SplitError(f"{path}: no rows")
    return rows


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def split_rows(
    rows: Sequence[dict[str, Any]],
    holdout_sources: Sequence[str] = DEFAULT_HOLDOUT_SOURCES,
    per_category: int = 40,
    seed: int = 0,
    root: str | Path | None = None,
    max_train_per_category: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(train, held_out, report): see the module docstring; report["unused"] lists the capped-off rows."""
    held = [r.get("source") in set(holdout_sources) for r in rows]
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_category[r["category"]].append(i)
    rng = random.Random(seed)
    for category in sorted(by_category):
        members = by_category[category]
        want = min(per_category, len(members) // 2)
        have = sum(held[i] for i in members)
        rest = [i for i in members if not held[i]]
        rng.shuffle(rest)
        for i in rest[: max(0, want - have)]:
            held[i] = True
    moved = 0
    if root is not None:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            digest = _file_hash(Path(root) / r["path"])
            if digest is not None:
                groups[digest].append(i)
        for members in groups.values():
            if len(members) > 1 and any(held[i] for i in members):
                for i in members:
                    moved += not held[i]
                    held[i] = True
    train = [r for r, h in zip(rows, held, strict=True) if not h]
    heldout = [r for r, h in zip(rows, held, strict=True) if h]
    unused: list[dict[str, Any]] = []
    if max_train_per_category is not None:
        keep: list[dict[str, Any]] = []
        for category in sorted({r["category"] for r in train}):
            members = [r for r in train if r["category"] == category]
            order = list(range(len(members)))
            random.Random(f"{seed}-{category}").shuffle(order)
            chosen = set(order[:max_train_per_category])
            keep += [r for i, r in enumerate(members) if i in chosen]
            unused += [r for i, r in enumerate(members) if i not in chosen]
        position = {id(r): i for i, r in enumerate(rows)}
        train = sorted(keep, key=lambda r: position[id(r)])  # manifest order
    counts = {side: dict(sorted(Counter(r["category"] for r in part).items())) for side, part in (("train", train), ("heldout", heldout))}
    report = {"holdout_sources": list(holdout_sources), "per_category": per_category, "seed": seed,
              "deduplicated": root is not None, "duplicates_moved_to_heldout": moved, "counts": counts,
              "heldout_from_sources": sum(r.get("source") in set(holdout_sources) for r in heldout),
              "max_train_per_category": max_train_per_category, "unused": len(unused), "unused_rows": unused}
    return train, heldout, report


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m data_prep.split_manifest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="JSON-lines manifest with path, category (and source) per row")
    parser.add_argument("--out", required=True, help="folder for train.jsonl, heldout.jsonl, split.json")
    parser.add_argument("--holdout-sources", default=",".join(DEFAULT_HOLDOUT_SOURCES),
                        help="comma-separated sources held out whole ('' for none)")
    parser.add_argument("--per-category", type=int, default=40, help="held-out rows per category at least (capped at half)")
    parser.add_argument("--root", default=None, help="folder the paths are relative to: keep byte-identical files on one side")
    parser.add_argument("--max-train-per-category", type=int, default=None,
                        help="keep at most this many training rows per category (seeded draw; the rest -> unused.jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.per_category < 0:
        parser.error("--per-category must be >= 0")
    try:
        rows = read_rows(args.manifest)
    except (OSError, SplitError) as exc:
        print(f"split_manifest: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    sources = [s for s in args.holdout_sources.split(",") if s]
    train, heldout, report = split_rows(rows, sources, args.per_category, args.seed, args.root,
                                        args.max_train_per_category)
    out = Path(args.out)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", heldout)
    write_jsonl(out / "unused.jsonl", report.pop("unused_rows"))
    report["manifest"] = str(args.manifest)
    (out / "split.json").write_text(json.dumps(report, indent=2) + "\n")
    for side in ("train", "heldout"):
        print(f"{side}: {sum(report['counts'][side].values())} rows  " +
              ", ".join(f"{c} {n}" for c, n in report["counts"][side].items()))
    return report


if __name__ == "__main__":
    main()
