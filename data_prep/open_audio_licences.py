"""Licences of the packages of `data_prep.open_audio`'s sound set.

`read_licence` reads a package's DEP-5 copyright file (Files / License paragraphs), a
free-text copyright file (the licences it mentions) or a wheel's METADATA into a `Licence`,
whose `of(path)` is the licence of one installed file (the most specific DEP-5 glob);
`licences_markdown` writes LICENSES.md (per source: version, licences of the files used,
copyright file, number of files).
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.open_audio_fetch import Source

_MENTIONS = [(r"GNU (Lesser|Library) General Public License", "LGPL"), (r"GNU General Public License", "GPL"),
             (r"\bL?GPL-?\d", None), (r"Creative Commons|CC[- ]BY", "CC-BY"), (r"public domain", "public domain"),
             (r"\bMIT\b", "MIT"), (r"\bBSD\b", "BSD"), (r"Apache", "Apache")]


@dataclass
class Licence:
    """The licence of a package's files, from its DEP-5 copyright file or wheel metadata."""

    summary: str
    "Licences of the whole package ('GPL-2+ / CC-BY-SA-3.0')."
    copyright_file: str | None
    "Where it was read (relative to the package folder)."
    paragraphs: list[tuple[list[str], str]]
    "DEP-5 (Files globs, License) paragraphs, in file order."

    def of(self, rel: str) -> str:
        """Licence of one file: the DEP-5 paragraph whose glob names it most specifically (the
        last one among equals, as DEP-5 says), else the `Files: *` paragraph."""
        best, strength = None, (0, 0)
        for globs, licence in self.paragraphs:
            score = max((_glob_strength(rel, g) for g in globs), default=(0, 0))
            if score > (0, 0) and score >= strength:
                best, strength = licence, score
        return best or self.default

    @property
    def default(self) -> str:
        star = [lic for globs, lic in self.paragraphs if "*" in globs]
        return star[-1] if star else self.summary


_ARCHIVES = (".h2drumkit", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".zip")


def _glob_strength(rel: str, glob: str) -> tuple[int, int]:
    """How specifically a DEP-5 `Files:` glob (a path in the *source* tree) names installed
    file `rel`: (names the file exactly, number of folders matched); (0, 0) if it does not.

    Source and installed trees differ (`share/hedgewars/Data/Sounds/*` is installed as
    `usr/share/games/hedgewars/Data/Sounds/...`), so a glob is matched on its trailing literal
    folders (the more, the more specific); a glob naming an archive
    (`drumkits/circAfrique.h2drumkit`) covers the folder unpacked from it. `*` and `debian/*`
    are the package default and the packaging, never a specific match.
    """
    if glob == "*" or glob.startswith("debian/"):
        return (0, 0)
    parts = glob.split("/")
    name, exact = parts[-1], int(not any(ch in parts[-1] for ch in "*?["))
    if fnmatch.fnmatchcase(rel, glob):
        return (exact, len(parts))
    folders = rel.split("/")[:-1]
    for suffix in _ARCHIVES:
        if name.lower().endswith(suffix):
            stem = name[: -len(suffix)].lower()
            return (0, 2) if any(f.lower().startswith(stem) for f in folders) else (0, 0)
    last = len(parts) - 2
    while last >= 0 and any(ch in parts[last] for ch in "*?["):
        last -= 1
    if last < 0:
        return (exact, 1) if len(parts) == 1 and name == rel.rsplit("/", 1)[-1] else (0, 0)
    tail_glob = "/".join(parts[last + 1:])
    for first in range(0, last + 1):  # longest run of the glob's literal folders found in rel
        if any(any(ch in p for ch in "*?[") for p in parts[first:last + 1]):
            continue
        marker = "/" + "/".join(parts[first:last + 1]) + "/"
        if marker in f"/{rel}" and fnmatch.fnmatchcase(f"/{rel}".rsplit(marker, 1)[1], tail_glob):
            return (exact, last + 1 - first)
    return (0, 0)


def read_licence(root: Path, source: Source) -> Licence:
    """The package's licence: DEP-5 `usr/share/doc/<pkg>/copyright` (Files/License paragraphs),
    a free-text copyright file (the licences it mentions), or a wheel's METADATA."""
    if source.is_pypi:
        meta = next(iter(sorted(root.glob("*.dist-info/METADATA"))), None)
        if meta is None:
            return Licence("unknown (no METADATA in the wheel)", None, [])
        text = meta.read_text(encoding="utf-8", errors="replace")
        fields = re.findall(r"^License(?:-Expression)?: *(.+)$", text, re.M)
        classifiers = re.findall(r"^Classifier: License :: (?:OSI Approved :: )?(.+)$", text, re.M)
        value = next((f.strip() for f in fields if f.strip().lower() not in ("", "unknown", "license") and len(f) < 80), None)
        return Licence(" / ".join(classifiers) or value or "unknown (see METADATA)", meta.relative_to(root).as_posix(), [])
    path = root / "usr/share/doc" / source.name / "copyright"
    if not path.is_file():
        return Licence("unknown (no copyright file in the package)", None, [])
    text = path.read_text(encoding="utf-8", errors="replace")
    rel = path.relative_to(root).as_posix()
    if re.match(r"\s*Format:", text):
        paragraphs = []
        for para in re.split(r"\n\s*\n", text):
            files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", para, re.M)
            lic = re.search(r"^License: *(\S.*)$", para, re.M)
            if files and lic:
                paragraphs.append((files.group(1).split(), lic.group(1).strip()))
        names = list(dict.fromkeys(lic for globs, lic in paragraphs if not all(g.startswith("debian/") for g in globs)))
        return Licence(" / ".join(names) or "unknown (see copyright)", rel, paragraphs)
    found = []
    for pattern, name in _MENTIONS:
        for m in re.finditer(pattern, text, re.I):
            found.append(name or m.group(0).upper())
    names = list(dict.fromkeys(found))
    return Licence(("see copyright (mentions " + ", ".join(names) + ")") if names else "see copyright", rel, [])


def licences_markdown(sources: Sequence[Source], states: dict[str, dict[str, Any]],
                      licences: dict[str, Licence], rows: list[dict[str, Any]]) -> str:
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        by_source[r["source"]][r["license"]] += 1
    lines = ["# Licences of the open sound set", "",
             "Every file keeps the licence of the package it came from (the copyright file is copied",
             "with it, under packages/). Per-file licences are in manifest.jsonl (`license`).", "",
             "| source | version | licence(s) of the files used | copyright file | files |", "|---|---|---|---|---|"]
    for s in sources:
        state = states[s.name]
        if state["status"] == "failed":
            lines.append(f"| {s.name} | - | not fetched: {state['reason']} | - | 0 |")
            continue
        lic = licences[s.name]
        used = "; ".join(f"{k} ({n})" for k, n in by_source[s.name].most_common()) or f"{lic.summary} (no file used)"
        where = f"packages/{s.folder}/{lic.copyright_file}" if lic.copyright_file else "-"
        lines.append(f"| {s.name} | {state.get('version', '?')} | {used.replace('|', '/')} | {where} | "
                     f"{sum(by_source[s.name].values())} |")
    return "\n".join(lines) + "\n"
