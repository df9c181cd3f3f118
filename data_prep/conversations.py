"""Instruction dialogues from a labelled corpus' metadata, written into the shards' JSON (`conversations`).

    python -m data_prep.conversations --shards /data/codes/corpus --out /data/conversations/corpus

Reads shards with codes (`data_prep.tokenize_shards`) of a labelled manifest
(`data_prep.make_shards --adapter manifest`: every row's `category`, `label`,
`transcript` is in the sample's JSON) and writes shards of the same names whose
JSON also holds `conversations`: a list of alternative dialogues about the clip
(`lmmsn.llm.instructions.clip_dialogues`): its caption, category and label
asked in several phrasings, the transcript of speech, and a generation request
with the clip in the assistant turn. The fine-tuning loader trains one of them
per clip and epoch, a new one each epoch (`lmmsn.llm.data.pick_dialogue`), and
turns a sample into a generation conversation with `data.batch.generation_fraction`.

Why a data_prep pass rather than building the dialogues at load time: the
dialogues become data that can be read, counted and diffed (`index.json`
records how many of each kind were written), they are fixed by (seed, key)
whatever the number of ranks and workers, the loader reads them in the shard
format it already reads for OpenAQA (`conversations` as a list of dialogues),
and the loader stays free of any one corpus' field names.

The latents are left out by default (`--keep-latents` keeps them): the LLM
reads only codes, and decoding a [T, 64] latent per sample would cost CPU in
every training step. Shards are written to `<name>.tmp` and renamed; a rerun
rewrites them all (the pass takes seconds). A sample whose JSON cannot be read
is left out and listed in `index.json`; the job goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository root holds data_prep/ (not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmmsn.llm.instructions import KINDS, clip_dialogues

logger = logging.getLogger(__name__)


@dataclass
class ConversationsConfig:
    """What the pass does; every field is a CLI option."""

    shards: str
    "Input shards (with codes): a folder, a glob, a brace pattern or a '::'-joined list."
    out: str
    "Output folder (must differ from the input folders)."
    kinds: tuple[str, ...] = KINDS
    "Dialogue kinds to write (lmmsn.llm.instructions.KINDS)."
    seed: int = 0
    "Seed of the phrasing draws (mixed with each sample's key)."
    keep_latents: bool = False
    "Keep latent.npy in the output (the LLM does not read it)."
    max_per_category: dict[str, int] = field(default_factory=dict)
    "Keep at most N samples of a category (a seeded draw by key), e.g. {'speech': 800}; others are all kept."

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {list(KINDS)}, got {list(self.kinds)}")
        if any(n < 0 for n in self.max_per_category.values()):
            raise ValueError(f"max_per_category needs counts >= 0, got {self.max_per_category}")


def dialogue_kind(dialogue: list[dict[str, str]]) -> str:
    """A short name of what a dialogue asks (for the counts in index.json)."""
    from lmmsn.llm import instructions as ins

    user = dialogue[0]["content"].split("\n")[-1]
    if dialogue[-1]["content"] == ins.AUDIO_PLACEHOLDER:
        return "generate"
    for kind, questions in (("caption", ins.CAPTION_QUESTIONS), ("category", ins.CATEGORY_QUESTIONS),
                            ("transcript", ins.TRANSCRIPT_QUESTIONS)):
        if user in questions:
            return kind
    return "label"


def sample_conversations(meta: dict[str, Any], key: str, kinds: Sequence[str], seed: int) -> list[list[dict[str, str]]]:
    """The dialogues of one sample, drawn from a generator seeded by (seed, key)."""
    return clip_dialogues(meta, random.Random(f"{seed}-{key}"), tuple(kinds))


def _draw(key: str, seed: int) -> str:
    import hashlib

    return hashlib.sha1(f"{seed}-{key}".encode()).hexdigest()


def kept_keys(categories: dict[str, str | None], caps: dict[str, int], seed: int) -> set[str]:
    """The sample keys kept under `caps` ({category: most samples}): per capped category, the keys that
    come first in a seeded hash order (independent of shard order); every key of an uncapped category."""
    by_category: dict[str | None, list[str]] = {}
    for key, category in categories.items():
        by_category.setdefault(category, []).append(key)
    kept: set[str] = set()
    for category, keys in by_category.items():
        if category in caps:
            keys = sorted(keys, key=lambda k: _draw(k, seed))[: caps[category]]
        kept.update(keys)
    return kept


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run(config: ConversationsConfig) -> dict[str, Any]:
    """Write the output shards and index.json; returns the index."""
    import webdataset as wds
    from tqdm import tqdm

    from lmmsn.data.format import ShardFormatError, decode_sample
    from lmmsn.data.loader import INDEX_NAME, list_shards

    urls = list_shards(config.shards)
    out = Path(config.out)
    if out.resolve() in {Path(u).resolve().parent for u in urls}:
        raise SystemExit(f"--out {out} is an input folder: write the conversation shards to another folder")
    out.mkdir(parents=True, exist_ok=True)
    names = [Path(u).name for u in urls]
    if len(set(names)) != len(names):
        raise SystemExit(f"input shards share names ({len(names) - len(set(names))} duplicates): give one folder at a time")
    shards, skipped, kinds, without, capped = [], [], Counter(), 0, Counter()
    keep = None
    if config.max_per_category:  # a first pass over the JSON only: which samples the caps keep
        categories = {}
        for url in urls:
            for raw in wds.tariterators.tarfile_samples(iter([{"url": url}]), handler=wds.handlers.warn_and_continue):
                try:
                    categories[raw["__key__"]] = json.loads(raw["json"]).get("category")
                except (KeyError, TypeError, ValueError):
                    continue  # reported as skipped by the main pass
        keep = kept_keys(categories, config.max_per_category, config.seed)
    for url in tqdm(urls, unit="shard", desc="conversations", dynamic_ncols=True):
        name = Path(url).name
        tmp = out / f"{name}.tmp"
        stats = {"name": name, "samples": 0, "hours": 0.0}
        with wds.TarWriter(str(tmp)) as writer:
            for raw in wds.tariterators.tarfile_samples(iter([{"url": url}]), handler=wds.handlers.warn_and_continue):
                try:
                    sample = decode_sample(raw)
                except ShardFormatError as exc:
                    skipped.append({"shard": name, "key": raw.get("__key__", "?"), "reason": str(exc)})
                    logger.warning("%s: skipped sample %s: %s", name, raw.get("__key__", "?"), exc)
                    continue
                if keep is not None and sample.key not in keep:
                    capped[str(sample.meta.get("category"))] += 1
                    continue
                dialogues = sample_conversations(sample.meta, sample.key, config.kinds, config.seed)
                meta = dict(sample.meta)
                if dialogues:
                    meta["conversations"] = dialogues
                    kinds.update(dialogue_kind(d) for d in dialogues)
                else:
                    without += 1
                record = {k: v for k, v in raw.items() if not k.startswith("__") and k != "json"}
                if not config.keep_latents:
                    record.pop("latent.npy", None)
                writer.write({"__key__": sample.key, **record, "json": json.dumps(meta, ensure_ascii=False).encode()})
                stats["samples"] += 1
                stats["hours"] += float(meta.get("duration_s", 0.0)) / 3600
        os.replace(tmp, out / name)
        stats["bytes"] = (out / name).stat().st_size
        shards.append(stats)
    source_indexes = {Path(u).parent / INDEX_NAME for u in urls}
    index: dict[str, Any] = {}
    if len(source_indexes) == 1 and next(iter(source_indexes)).is_file():
        index = json.loads(next(iter(source_indexes)).read_text())
    index.update(num_samples=sum(s["samples"] for s in shards), hours=sum(s["hours"] for s in shards), shards=shards)
    index["conversations"] = {**asdict(config), "kinds": list(config.kinds), "dialogues": dict(sorted(kinds.items())),
                              "samples_without_dialogue": without, "left_out_by_cap": dict(capped), "num_skipped": len(skipped), "skipped": skipped}
    index["num_skipped"] = index.get("num_skipped", 0) + len(skipped)
    index["skipped"] = index.get("skipped", []) + skipped
    _write_json(out / INDEX_NAME, index)
    return index


def parse_args(argv: Sequence[str] | None = None) -> ConversationsConfig:
    parser = argparse.ArgumentParser(prog="python -m data_prep.conversations", description=__doc__.split("\n")[0])
    parser.add_argument("--shards", required=True, help="input shards with codes: a folder, a glob or a brace pattern")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-latents", action="store_true", help="keep latent.npy in the output shards")
    parser.add_argument("--max-per-category", action="append", default=[], metavar="CATEGORY=N",
                        help="keep at most N samples of CATEGORY (seeded draw; repeatable), e.g. speech=800")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    caps = {}
    for item in args.max_per_category:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit():
            parser.error(f"--max-per-category expects CATEGORY=N, got {item!r}")
        caps[name] = int(count)
    try:
        return ConversationsConfig(shards=args.shards, out=args.out, kinds=kinds, seed=args.seed,
                                   keep_latents=args.keep_latents, max_per_category=caps)
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    index = run(config)
    c = index["conversations"]
    print(f"{index['num_samples']} samples in {len(index['shards'])} shards; dialogues {c['dialogues']}; "
          f"{c['samples_without_dialogue']} samples without one; left out by caps {c['left_out_by_cap']}; "
          f"{c['num_skipped']} skipped", file=sys.stderr)
    print(f"index: {Path(config.out) / 'index.json'}", file=sys.stderr)
    return index


if __name__ == "__main__":
    main()
