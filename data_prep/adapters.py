"""Dataset adapters: the on-disk layouts of public audio datasets -> `Record`s.

Each adapter is a function `adapter(root, **options) -> Iterator[Record]`
registered in `ADAPTERS` under a name the `make_shards` CLI takes. Its
docstring shows the layout it expects; when the layout does not match it
raises `LayoutError` naming the path it looked for. Adapters never decode
audio: a listed file that is missing or broken is reported later by
`make_shards` (in its skip list), so one bad file never stops a job. A row that
cannot be used (a manifest row with wrong types, a duplicate path, a directory
named like audio, a dangling symlink) becomes a `Record` with `error` set (file:line
and reason), listed as a skip by make_shards; a whole-file problem is a `LayoutError`.

Records are yielded in a deterministic order (sorted files / file row
order), which `make_shards` relies on for resuming.

Conversations (OpenAQA) use the Vicuna/LLaVA style: ``meta["conversations"]``
is a list of alternative dialogues about the clip, each a list of turns
``{"from": "human" | "gpt", "value": str}`` with the audio marked by
``<audio>`` in its first human turn. `lmmsn.llm.data` reads this shape and
trains on one dialogue per clip per epoch (why: its module docstring).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".m4a")
AUDIO_PLACEHOLDER = "<audio>"


class LayoutError(ValueError):
    """The files on disk do not match the layout an adapter expects."""


class RecordError(LayoutError):
    """One row of a listing cannot be used; the message names the file, the line and the problem."""


@dataclass
class Record:
    """One audio file (or span of it) with its text."""

    key: str
    "Identifier unique within the dataset (turned into a shard key by make_shards)."
    audio_path: Path
    "Audio file to decode."
    captions: list[str]
    "Captions / label sentences (may be empty, e.g. pure QA records)."
    dataset: str
    "Dataset name (per-dataset totals in the index)."
    split: str = "train"
    "train / valid / test / fold name."
    meta: dict[str, Any] = field(default_factory=dict)
    "Extra JSON-serialisable metadata: labels, genre, speaker, transcript, conversations, ..."
    offset_s: float = 0.0
    "Start of the span to use inside the file."
    duration_s: float | None = None
    "Length of the span (None: to the end of the file)."
    error: str | None = None
    "Why this listed row cannot be used (make_shards skips it with this reason); None for a usable record."


def _unusable(where: str, reason: str, path: Path, dataset: str) -> Record:  # listed as skipped by make_shards
    return Record(key=where, audio_path=path, captions=[], dataset=dataset, error=f"{where}: {reason}")


# -- helpers ------------------------------------------------------------------------------------


def _need(path: Path, what: str, adapter: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{adapter}: expected {what} at {path}, which does not exist "
                          f"(see `data_prep.adapters.{adapter}` for the layout)")
    return path


def _read_csv(path: Path, required: Iterable[str], adapter: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        rows = list(reader)
        names = reader.fieldnames or []
    missing = [c for c in required if c not in names]
    if missing:
        raise LayoutError(f"{adapter}: {path} lacks columns {missing} (has {sorted(names)})")
    return rows


def _first_existing(candidates: list[Path]) -> Path:
    """The first candidate that exists, else the first (reported as missing later)."""
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


def _audio_files(root: Path) -> list[Path]:
    """Audio-named entries under root, sorted (directories and dangling links too: they get listed)."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def _not_a_file(path: Path) -> str | None:
    """Why an audio-named folder entry is not a readable file, else None."""
    if path.is_file():
        return None
    if path.is_symlink() and not path.exists():
        return f"dangling symbolic link (to {path.readlink()})"
    return "a directory named like an audio file" if path.is_dir() else "not a regular file"


def _splits(splits: str | Iterable[str] | None, default: Iterable[str]) -> list[str]:
    if splits is None:
        return list(default)
    return [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)


# -- captioning datasets --------------------------------------------------------------------------


def audiocaps(root: str | Path, splits: str | None = None) -> Iterator[Record]:
    """AudioCaps.

    Layout::

        root/{train,val,test}.csv        audiocap_id,youtube_id,start_time,caption
        root/audio/{train,val,test}/     <youtube_id>.wav | Y<youtube_id>.wav |
                                         <youtube_id>_<start_time>.wav | <audiocap_id>.wav (or .flac)

    Rows sharing a youtube_id (5 per clip in val/test) become one record with all captions.
    """
    root = Path(root)
    for split in _splits(splits, ("train", "val", "test")):
        csv_path = _need(root / f"{split}.csv", f"the {split} caption CSV", "audiocaps")
        rows = _read_csv(csv_path, ("audiocap_id", "youtube_id", "start_time", "caption"), "audiocaps")
        clips: dict[str, dict[str, Any]] = {}
        for row in rows:
            clip = clips.setdefault(row["youtube_id"], {"row": row, "captions": []})
            clip["captions"].append(row["caption"].strip())
        audio_dir = root / "audio" / split
        for yid, clip in clips.items():
            row = clip["row"]
            start = row["start_time"]
            names = [yid, f"Y{yid}", f"{yid}_{start}", f"{yid}_{int(float(start or 0))}", row["audiocap_id"]]
            path = _first_existing([audio_dir / f"{n}{ext}" for n in names for ext in (".wav", ".flac")])
            yield Record(key=yid, audio_path=path, captions=clip["captions"], dataset="audiocaps",
                         split=split, meta={"youtube_id": yid, "start_time": start})


CLOTHO_SPLITS = {"development": "train", "validation": "valid", "evaluation": "test"}


def clotho(root: str | Path, splits: str | None = None) -> Iterator[Record]:
    """Clotho v2.

    Layout::

        root/clotho_captions_{development,validation,evaluation}.csv
                                         file_name,caption_1,...,caption_5
        root/{development,validation,evaluation}/<file_name>
    """
    root = Path(root)
    for part in _splits(splits, CLOTHO_SPLITS):
        csv_path = _need(root / f"clotho_captions_{part}.csv", f"the {part} caption CSV", "clotho")
        columns = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
        for row in _read_csv(csv_path, columns, "clotho"):
            captions = [row[c].strip() for c in columns[1:] if row[c].strip()]
            yield Record(key=Path(row["file_name"]).stem, audio_path=root / part / row["file_name"],
                         captions=captions, dataset="clotho", split=CLOTHO_SPLITS.get(part, part))


def wavcaps(root: str | Path, subsets: str | None = None) -> Iterator[Record]:
    """WavCaps.

    Layout::

        root/json_files/<Subset>/*.json  {"data": [{"id", "caption", ["audio" | "file_name" |
                                         "wav_path"], ["duration"], ...}, ...]}
        root/audio/<Subset>/<id or file name>.{flac,wav}   (or root/<Subset>/...)

    Subsets are AudioSet_SL, BBC_Sound_Effects, FreeSound, SoundBible (option `subsets`).
    """
    root = Path(root)
    json_root = _need(root / "json_files", "the json_files folder", "wavcaps")
    dirs = sorted(p for p in json_root.iterdir() if p.is_dir())
    if subsets is not None:
        dirs = [json_root / s for s in _splits(subsets, ())]
    if not dirs:
        raise LayoutError(f"wavcaps: no subset folders under {json_root}")
    for subset_dir in dirs:
        files = sorted(_need(subset_dir, "a subset folder", "wavcaps").glob("*.json"))
        if not files:
            raise LayoutError(f"wavcaps: no *.json in {subset_dir}")
        subset = subset_dir.name
        for json_path in files:
            data = json.loads(json_path.read_text(encoding="utf-8"))
            entries = data["data"] if isinstance(data, dict) and "data" in data else data
            if not isinstance(entries, list):
                raise LayoutError(f"wavcaps: {json_path} holds neither a list nor {{'data': [...]}}")
            for i, entry in enumerate(entries):
                if "id" not in entry or "caption" not in entry:
                    raise LayoutError(f"wavcaps: {json_path} entry {i} lacks 'id' or 'caption'")
                ident = str(entry["id"])
                name = entry.get("file_name") or entry.get("audio") or entry.get("wav_path") or ident
                stem = Path(str(name)).stem
                candidates = [base / subset / f"{stem}{ext}" for base in (root / "audio", root)
                              for ext in (".flac", ".wav")]
                yield Record(key=f"{subset}_{Path(ident).stem}", audio_path=_first_existing(candidates),
                             captions=[str(entry["caption"]).strip()], dataset=f"wavcaps_{subset}",
                             meta={"wavcaps_id": ident})


# -- labelled datasets ----------------------------------------------------------------------------


def fma(root: str | Path, subset: str = "small") -> Iterator[Record]:
    """Free Music Archive.

    Layout::

        root/fma_metadata/tracks.csv     the official 3-row-header CSV (track_id, then
                                         ("set","split"), ("set","subset"), ("track","genre_top"),
                                         ("track","title"), ("artist","name"), ...)
        root/fma_<subset>/<NNN>/<NNNNNN>.mp3    NNNNNN = zero-padded track_id, NNN its first 3 digits

    Only tracks in `subset` (small / medium / large / full; each includes the smaller) are listed.
    Captions: "<genre> music" (and the title when present); `meta` has genre, title, artist.
    """
    root = Path(root)
    tracks = _need(root / "fma_metadata" / "tracks.csv", "the FMA tracks.csv", "fma")
    audio_dir = _need(root / f"fma_{subset}", f"the fma_{subset} audio folder", "fma")
    order = ["small", "medium", "large", "full"]
    if subset not in order:
        raise LayoutError(f"fma: subset must be one of {order}, got {subset!r}")
    with open(tracks, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            top, sub, _ = next(reader), next(reader), next(reader)
        except StopIteration as exc:
            raise LayoutError(f"fma: {tracks} has fewer than 3 header rows") from exc
        columns = {(t, s): i for i, (t, s) in enumerate(zip(top, sub, strict=False))}
        need = [("set", "split"), ("set", "subset"), ("track", "genre_top"), ("track", "title"),
                ("artist", "name")]
        missing = [c for c in need if c not in columns]
        if missing:
            raise LayoutError(f"fma: {tracks} lacks columns {missing}")
        allowed = set(order[: order.index(subset) + 1])
        for row in reader:
            get = {c: row[columns[c]] for c in need}
            if get[("set", "subset")] not in allowed:
                continue
            track = f"{int(row[0]):06d}"
            genre, title = get[("track", "genre_top")], get[("track", "title")]
            captions = [f"{genre} music" if genre else "music"]
            if title:
                captions.append(f"{title}, a {genre + ' ' if genre else ''}track".strip())
            split = {"training": "train", "validation": "valid"}.get(get[("set", "split")], "test")
            yield Record(key=track, audio_path=audio_dir / track[:3] / f"{track}.mp3", captions=captions,
                         dataset="fma", split=split,
                         meta={"genre": genre, "title": title, "artist": get[("artist", "name")]})


def esc50(root: str | Path) -> Iterator[Record]:
    """ESC-50.

    Layout::

        root/meta/esc50.csv              filename,fold,target,category,esc10,src_file,take
        root/audio/<filename>

    split = "fold<k>"; captions = [category with spaces]; meta has label, target, fold, esc10.
    """
    root = Path(root)
    csv_path = _need(root / "meta" / "esc50.csv", "the ESC-50 meta CSV", "esc50")
    for row in _read_csv(csv_path, ("filename", "fold", "target", "category"), "esc50"):
        label = row["category"].replace("_", " ")
        yield Record(key=Path(row["filename"]).stem, audio_path=root / "audio" / row["filename"],
                     captions=[label], dataset="esc50", split=f"fold{row['fold']}",
                     meta={"label": label, "target": int(row["target"]), "fold": int(row["fold"]),
                           "esc10": row.get("esc10") == "True"})


def gtzan(root: str | Path) -> Iterator[Record]:
    """GTZAN genre collection.

    Layout::

        root/genres_original/<genre>/<genre>.<NNNNN>.wav   (or root/genres/<genre>/..., root/<genre>/...)

    captions = ["<genre> music"]; meta["genre"]. (jazz.00054.wav of the public copy is corrupt:
    make_shards lists it as skipped.)
    """
    root = Path(root)
    base = next((b for b in (root / "genres_original", root / "genres", root) if b.is_dir()), root)
    genre_dirs = sorted(d for d in base.iterdir() if d.is_dir() and _audio_files(d)) if base.is_dir() else []
    if not genre_dirs:
        raise LayoutError(f"gtzan: no genre folders with audio under {base}")
    for genre_dir in genre_dirs:
        genre = genre_dir.name
        for path in _audio_files(genre_dir):
            if _not_a_file(path):
                yield _unusable(str(path), _not_a_file(path), path, "gtzan")
                continue
            yield Record(key=path.stem.replace(".", "_"), audio_path=path, captions=[f"{genre} music"],
                         dataset="gtzan", split="train", meta={"genre": genre})


def vctk(root: str | Path, mic: str = "mic1") -> Iterator[Record]:
    """VCTK corpus (0.92 or the older 0.80 layout).

    Layout::

        root/txt/<speaker>/<speaker>_<NNN>.txt
        root/wav48_silence_trimmed/<speaker>/<speaker>_<NNN>_<mic>.flac   (0.92)
        root/wav48/<speaker>/<speaker>_<NNN>.wav                          (0.80)

    Utterances without a transcript (e.g. p315) are still listed with an empty transcript.
    captions = ['a person says: "<transcript>"']; meta has speaker and transcript.
    """
    root = Path(root)
    audio_root = next((d for d in (root / "wav48_silence_trimmed", root / "wav48") if d.is_dir()), None)
    if audio_root is None:
        raise LayoutError(f"vctk: neither {root / 'wav48_silence_trimmed'} nor {root / 'wav48'} exists")
    for speaker_dir in sorted(d for d in audio_root.iterdir() if d.is_dir()):
        for path in _audio_files(speaker_dir):
            if _not_a_file(path):
                yield _unusable(str(path), _not_a_file(path), path, "vctk")
                continue
            stem = path.stem
            if stem.endswith(("_mic1", "_mic2")):
                if not stem.endswith(mic):
                    continue
                stem = stem.rsplit("_", 1)[0]
            txt = root / "txt" / speaker_dir.name / f"{stem}.txt"
            text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
            yield Record(key=stem, audio_path=path, captions=[f'a person says: "{text}"'] if text else [],
                         dataset="vctk", split="train", meta={"speaker": speaker_dir.name, "transcript": text})


def openaqa(root: str | Path, json_file: str = "openaqa_5.6M.json",
            caption_tasks: str = "caption,cla_label") -> Iterator[Record]:
    """OpenAQA (LTU) instruction / QA data -> conversations.

    Layout (LTU's release, e.g. ``openaqa_5.6M.json`` or ``openaqa_toy_relative.json``)::

        root/<json_file>                 [{"instruction", "input", "output", "audio_id",
                                           "dataset", "task"}, ...]  (dataset, task optional)
        root/audio/...                   audio_id is resolved as given (absolute), relative to
                                         root, then as root/audio/<basename>

    All QA pairs of one audio file become one record (the VAE runs once per clip): meta
    ["conversations"] holds one two-turn dialogue per pair (the clip, the instruction and a
    non-empty ``input`` in the human turn; the output in the gpt turn), meta["tasks"] the
    pair's task. Outputs of tasks listed in `caption_tasks` are also the record's captions
    (the "closed caption" subset); a clip with none has ``captions: []`` (a fine-tuning-only
    sample). An entry without instruction, output or audio_id is skipped with a warning.
    """
    root = Path(root)
    json_path = _need(root / json_file, "the OpenAQA JSON", "openaqa")
    entries = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise LayoutError(f"openaqa: {json_path} must hold a list of QA records")
    tasks = set(_splits(caption_tasks, ()))
    grouped: dict[str, dict[str, Any]] = {}
    bad = 0
    for i, entry in enumerate(entries):
        fields = ("instruction", "output", "audio_id")
        missing = [k for k in fields if not isinstance(entry, dict) or not isinstance(entry.get(k), str)]
        if missing:
            bad += 1
            logger.warning("openaqa: %s entry %d lacks %s (strings); skipped", json_path, i, missing)
            continue
        group = grouped.setdefault(entry["audio_id"], {"conversations": [], "tasks": [], "captions": [],
                                                       "entry": entry})
        question = entry["instruction"] + (f"\n{entry['input']}" if entry.get("input") else "")
        group["conversations"].append([{"from": "human", "value": f"{AUDIO_PLACEHOLDER}\n{question}"},
                                       {"from": "gpt", "value": entry["output"]}])
        group["tasks"].append(entry.get("task", ""))
        if entry.get("task") in tasks and entry["output"].strip() and entry["output"] not in group["captions"]:
            group["captions"].append(entry["output"])
    if entries and not grouped:
        raise LayoutError(f"openaqa: none of the {len(entries)} entries of {json_path} has instruction, output "
                          "and audio_id")
    if bad:
        logger.warning("openaqa: skipped %d of %d entries of %s", bad, len(entries), json_path)
    for audio_id, group in grouped.items():
        given = Path(audio_id)
        candidates = [root / audio_id.lstrip("/"), root / "audio" / given.name]
        path = _first_existing([given, *candidates] if given.is_absolute() else candidates)
        yield Record(key=given.stem, audio_path=path, captions=group["captions"], dataset="openaqa",
                     meta={"conversations": group["conversations"], "tasks": group["tasks"],
                           "source_dataset": group["entry"].get("dataset", "")})


def _audioset_labels(root: Path) -> dict[str, str]:
    ontology, indices = root / "ontology.json", root / "class_labels_indices.csv"
    if ontology.is_file():
        return {item["id"]: item["name"] for item in json.loads(ontology.read_text(encoding="utf-8"))}
    if indices.is_file():
        return {r["mid"]: r["display_name"] for r in _read_csv(indices, ("mid", "display_name"), "audioset")}
    raise LayoutError(f"audioset: need {ontology} or {indices} for label names")


def audioset(root: str | Path, splits: str | None = None) -> Iterator[Record]:
    """AudioSet.

    Layout::

        root/{balanced_train,unbalanced_train,eval}_segments.csv
                                         "# comment" lines, then YTID, start_seconds,
                                         end_seconds, "positive_labels" (comma-separated mids)
        root/ontology.json               (or class_labels_indices.csv: index,mid,display_name)
        root/audio/<split>/              <YTID>.wav | Y<YTID>.wav | <YTID>_<start>.wav
                                         (or .flac), already cut to the segment

    captions = [", ".join(label names)]; meta["labels"] = label names, meta["mids"] = mids.
    """
    root = Path(root)
    names = _audioset_labels(root)
    for split in _splits(splits, ("balanced_train", "unbalanced_train", "eval")):
        csv_path = root / f"{split}_segments.csv"
        if splits is None and not csv_path.exists():
            continue
        _need(csv_path, f"the {split} segment CSV", "audioset")
        with open(csv_path, newline="", encoding="utf-8") as f:
            lines = [line for line in f if line.strip() and not line.startswith("#")]
        for n, row in enumerate(csv.reader(lines, skipinitialspace=True)):
            if len(row) < 4:
                raise LayoutError(f"audioset: {csv_path} data row {n} has {len(row)} fields, expected 4")
            yid, start, end, mids = row[0], row[1], row[2], row[3].split(",")
            labels = [names.get(m, m) for m in mids]
            audio_dir = root / "audio" / split
            start_int = str(int(float(start)))
            candidates = [audio_dir / f"{stem}{ext}"
                          for stem in (yid, f"Y{yid}", f"{yid}_{start}", f"{yid}_{start_int}")
                          for ext in (".wav", ".flac")]
            yield Record(key=yid, audio_path=_first_existing(candidates), captions=[", ".join(labels)],
                         dataset="audioset", split=split,
                         meta={"labels": labels, "mids": mids, "start_s": float(start), "end_s": float(end)})
    if splits is None and not any((root / f"{s}_segments.csv").exists()
                                  for s in ("balanced_train", "unbalanced_train", "eval")):
        raise LayoutError(f"audioset: no *_segments.csv in {root}")


# -- generic manifest ----------------------------------------------------------------------------

PATH_COLUMNS = ("path", "audio", "file", "file_name", "filename", "audio_path")


def manifest(root: str | Path, manifest: str | Path | None = None, dataset: str | None = None,
             dataset_column: str = "source") -> Iterator[Record]:
    """Generic folder + CSV/JSONL manifest (the open corpus is one).

    Layout::

        root/...                         audio files
        <manifest>.jsonl | .csv          one row per file: a path column (path | audio | file |
                                         file_name | filename | audio_path) relative to root (or
                                         absolute); optional caption (str) and/or captions (list or
                                         "|"-separated), split, key, offset_s, duration_s, and the
                                         dataset name in `dataset_column` (default "source");
                                         every other column goes to meta.

    Args:
        root: folder the paths are relative to.
        manifest: the manifest file (default: root/manifest.jsonl, then root/manifest.csv).
        dataset: dataset name for rows without `dataset_column` (default: the manifest stem).
        dataset_column: column naming each row's dataset.
    """
    root = Path(root)
    if manifest is None:
        manifest = next((root / n for n in ("manifest.jsonl", "manifest.csv") if (root / n).is_file()),
                        root / "manifest.jsonl")
    path = _need(Path(manifest), "a manifest (.jsonl or .csv)", "manifest")
    name, seen = dataset or path.stem, {}
    for where, row in _manifest_rows(path):
        try:
            record = parse_manifest_row(row, root, where, name, dataset_column)
        except RecordError as exc:
            yield _unusable(where, str(exc).removeprefix(f"{where}: "), path, name)
            continue
        span = (record.audio_path, record.offset_s, record.duration_s)
        if span in seen:  # the same audio twice would be trained on twice
            yield _unusable(where, f"duplicate of {seen[span]} ({record.audio_path})", record.audio_path, name)
            continue
        seen[span] = where
        yield record


def _manifest_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, row) of a JSONL / CSV manifest; a line that is not JSON gives a RecordError as its row."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LayoutError(f"manifest: {path} is not UTF-8 text ({exc})") from exc
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            yield f"{path}:{reader.line_num}", row
        return
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 is legal inside JSON strings
        if line.strip():
            try:
                yield f"{path}:{n}", json.loads(line)
            except (ValueError, RecursionError) as exc:
                yield f"{path}:{n}", RecordError(f"{path}:{n}: not JSON: {exc}")


def _text_list(value: Any, name: str, where: str) -> list[str]:
    """A caption field as a list of strings ("a|b" splits; a list must hold strings)."""
    if isinstance(value, str) or value is None:
        return [c.strip() for c in (value or "").split("|") if c.strip()]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return [c.strip() for c in value if c.strip()]
    raise RecordError(f"{where}: '{name}' must be a string or a list of strings, got {value!r:.80}")


def _seconds(row: dict[str, Any], name: str, where: str) -> float | None:
    value = row.get(name)
    try:
        seconds = None if value in (None, "") else float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError, OverflowError):
        seconds = -1.0
    if seconds is not None and not 0 <= seconds < math.inf:
        raise RecordError(f"{where}: '{name}' must be a number of seconds >= 0, got {value!r:.80}")
    return seconds


def parse_manifest_row(row: Any, root: Path, where: str, dataset: str, dataset_column: str = "source") -> Record:
    """One manifest row (a JSON object or CSV dict) as a `Record` (`manifest` describes the columns).

    Raises:
        RecordError: the row is unusable (not an object, no path, wrong types); the message
            starts with `where` (file:line).
    """
    if isinstance(row, RecordError):  # a line that is not JSON (`_manifest_rows`)
        raise row
    if not isinstance(row, dict) or None in row:  # None: csv.DictReader's key for fields beyond the header
        raise RecordError(f"{where}: a row must be a JSON object (or a CSV row as long as the header), got "
                          f"{type(row).__name__ if not isinstance(row, dict) else 'extra fields'}")
    column = next((c for c in PATH_COLUMNS if row.get(c) not in (None, "")), None)
    if column is None:
        raise RecordError(f"{where}: none of the path columns {PATH_COLUMNS}")
    if not isinstance(row[column], str) or "\0" in row[column] or not Path(row[column]).name:
        raise RecordError(f"{where}: '{column}' must be a path string naming a file, got {row[column]!r:.80}")
    for name in ("key", "split", dataset_column):
        if row.get(name) is not None and (not isinstance(row[name], (str, int)) or isinstance(row[name], bool)):
            raise RecordError(f"{where}: '{name}' must be a string, got {row[name]!r:.80}")
    # "caption" (a string, or a list: several captions) comes first, then "captions"; duplicates dropped
    caption = row.get("caption")
    first = [caption.strip()] * bool(caption.strip()) if isinstance(caption, str) else _text_list(caption, "caption", where)
    captions = [*first, *_text_list(row.get("captions"), "captions", where)]
    audio = Path(row[column])
    offset, duration = _seconds(row, "offset_s", where), _seconds(row, "duration_s", where)
    taken = {column, "caption", "captions", "split", "key", "offset_s", "duration_s"}
    return Record(key=str(row.get("key") or audio.with_suffix("").as_posix()),
                  audio_path=audio if audio.is_absolute() else root / audio, captions=list(dict.fromkeys(captions)),
                  dataset=str(row.get(dataset_column) or dataset), split=str(row.get("split") or "train"),
                  meta={k: v for k, v in row.items() if k not in taken}, offset_s=offset or 0.0,
                  # a manifest's duration_s describes the file; only an explicit span is used
                  duration_s=duration if "offset_s" in row else None)


ADAPTERS: dict[str, Callable[..., Iterator[Record]]] = {
    "audiocaps": audiocaps,
    "clotho": clotho,
    "wavcaps": wavcaps,
    "fma": fma,
    "esc50": esc50,
    "gtzan": gtzan,
    "vctk": vctk,
    "openaqa": openaqa,
    "audioset": audioset,
    "manifest": manifest,
}


def load_records(adapter: str, root: str | Path, **options: Any) -> list[Record]:
    """All records of `adapter` over `root` (a list: make_shards needs a stable, indexable order)."""
    if adapter not in ADAPTERS:
        raise LayoutError(f"unknown adapter {adapter!r}; choose one of {sorted(ADAPTERS)}")
    if not Path(root).is_dir():
        raise LayoutError(f"{adapter}: dataset root {root} is not a directory")
    try:
        return list(ADAPTERS[adapter](root, **options))
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise LayoutError(f"{adapter}: {exc}; see `data_prep.adapters.{adapter}` for its options") from exc
        raise
