"""Package rules of `data_prep.open_audio_rules` for sample libraries, sound themes and example clips.

Music sample libraries (Sonic Pi by family prefix, LMMS by folder, Hydrogen drum kits from
`drumkit.xml`, ChucK, Csound), codec2 and alsa-utils speech test recordings, desktop sound
themes (event names), sound-icons, Bucklespring key sounds and the sound assets of PyPI wheels
(arcade, audioflux, pygame). Each rule registers itself with `open_audio_labels.rule` when this
module is imported.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from data_prep.open_audio_labels import (
    DRUMS,
    NO_RULE,
    Label,
    by_name,
    known,
    lookup,
    rule,
    speech,
    words,
)

_SYNTH_WHOOSH = Label("electronic", "whoosh", "a synthetic whoosh sweeps past")
_SONIC_PI = {"ambi": None, "bass": known("synth bass"), "bd": known("kick"), "sn": known("snare"),
             "tabla": known("tabla"), "guit": known("electric guitar"), "glitch": known("glitch"),
             "elec": Label("electronic", "electronic percussion", "an electronic percussion hit"),
             "vinyl": Label("music", "vinyl", "a vinyl record scratches")}
_SONIC_PI_NAMES = {
    "ambi_choir": known("choir"), "ambi_drone": known("drone"), "ambi_haunted_hum": known("drone"),
    "ambi_glass_hum": Label("music", "glass hum", "a glass hums with a sustained tone"),
    "ambi_glass_rub": Label("music", "glass rub", "a wet finger rubs the rim of a glass"),
    "ambi_lunar_land": Label("music", "ambient", "an ambient electronic soundscape"),
    "ambi_sauna": Label("music", "ambient", "an ambient electronic soundscape"),
    "ambi_piano": known("piano"), "ambi_dark_woosh": _SYNTH_WHOOSH, "ambi_swoosh": _SYNTH_WHOOSH,
    "ambi_soft_buzz": Label("electronic", "buzz", "a soft electronic buzz"),
    "loop_3d_printer": Label("environment", "3d printer", "a 3D printer whirs"),
    "loop_tabla": Label("music", "tabla loop", "a tabla rhythm loop plays"),
    "loop_drone_g_97": known("drone"), "misc_burp": known("burp"), "misc_crow": known("crow"),
    "misc_cineboom": Label("electronic", "cinematic boom", "a deep cinematic boom"),
    "perc_bell": known("bell"), "perc_bell2": known("bell"), "perc_door": known("door"),
    "perc_impact1": known("impact"), "perc_impact2": known("impact"), "perc_snap": known("finger snap"),
    "perc_snap2": known("finger snap"), "perc_swash": _SYNTH_WHOOSH, "perc_swoosh": _SYNTH_WHOOSH,
    "perc_till": known("till"), "drum_roll": Label("music_instrument", "snare roll", "a drum roll is played"),
    "drum_cymbal_closed": known("hihat"), "drum_cymbal_open": known("hihat"), "drum_cymbal_pedal": known("hihat"),
    "drum_bass_hard": known("kick"), "drum_bass_soft": known("kick"), "drum_heavy_kick": known("kick"),
    "drum_splash_hard": known("splash cymbal"), "drum_splash_soft": known("splash cymbal"),
}


@rule("sonic-pi-samples")
def _sonic_pi(root: Path, files: list[str]) -> dict[str, Label | str]:
    """samples/<family>_<name>.flac; the family prefix (bd_, sn_, elec_, loop_, ...) says most."""
    out: dict[str, Label | str] = {}
    for rel in files:
        stem = PurePosixPath(rel).stem
        family = stem.split("_")[0]
        if stem in _SONIC_PI_NAMES:
            out[rel] = _SONIC_PI_NAMES[stem]
        elif family == "elec" and lookup(words(stem)[1:], DRUMS):
            out[rel] = lookup(words(stem)[1:], DRUMS)
        elif _SONIC_PI.get(family):
            out[rel] = _SONIC_PI[family]
        elif family == "loop":
            out[rel] = Label("music", "drum loop" if stem in ("loop_amen", "loop_amen_full", "loop_breakbeat",
                                                               "loop_compus", "loop_perc1", "loop_perc2")
                             else "music loop", "a drum loop plays" if "amen" in stem or "break" in stem
                             or "perc" in stem or "compus" in stem else "an electronic music loop plays")
        elif family == "mehackit":
            out[rel] = (Label("electronic", "phone", "an electronic phone tone") if "phone" in stem
                        else Label("electronic", "robot", "robotic electronic bleeps"))
        elif family == "drum":
            out[rel] = lookup(words(stem)[1:], DRUMS) or NO_RULE
        else:
            out[rel] = NO_RULE
    return out


_LMMS_DIRS = {"basses": known("synth bass"), "bassloops": Label("music_instrument", "synth bass", "a synth bass riff loops"),
              "beats": known("drum loop"), "latin": None, "effects": None, "misc": None,
              "shapes": Label("electronic", "synthesizer waveform", "a raw synthesizer waveform"),
              "waveforms": Label("electronic", "synthesizer waveform", "a raw synthesizer waveform")}


@rule("lmms-common")
def _lmms(root: Path, files: list[str]) -> dict[str, Label | str]:
    """samples/<kind>/<name>: the folder is the kind (basses, beats, drums, instruments, ...)."""
    effects = {"scratch": Label("music", "vinyl", "a vinyl record scratches"), "explode": known("explosion"),
               "wind chimes": known("wind chimes"), "warp": Label("electronic", "sci-fi warp", "a sci-fi warp effect"),
               "filter sweep": Label("electronic", "filter sweep", "a synthesizer filter sweeps"),
               "start": Label("electronic", "power up", "an electronic start-up sweep"),
               "stop": Label("electronic", "power down", "an electronic power-down sweep"),
               "chroma sound effect": Label("electronic", "synthesizer effect", "a synthesizer sound effect")}
    out: dict[str, Label | str] = {}
    for rel in files:
        kind = rel.split("/")[-2]
        tokens = words(PurePosixPath(rel).stem)
        phrase = " ".join(tokens)
        if kind == "effects":
            out[rel] = effects.get(phrase, NO_RULE)
        elif kind == "stringsnpads":
            out[rel] = known("strings") if "strings" in tokens or "string" in tokens else (
                known("bell") if "bell" in tokens else known("choir") if "choir" in tokens or "chorus" in tokens
                else known("synth pad"))
        elif kind == "latin":
            out[rel] = known("guitar") if "guitar" in tokens else Label("music_instrument", "brass", "a brass section plays")
        elif kind == "misc":
            out[rel] = {"metronome": known("metronome"), "applause": known("applause"), "breath": known("breath"),
                        "raving crowd": known("crowd")}.get(phrase, NO_RULE)
        elif kind == "beats" and ("kick" in tokens or "snare" in tokens or "hihat" in tokens):
            out[rel] = lookup(tokens[1:], DRUMS) or NO_RULE
        elif _LMMS_DIRS.get(kind):
            out[rel] = _LMMS_DIRS[kind]
        elif kind == "drums":
            out[rel] = (Label("music_instrument", "electronic zap", "an electronic zap drum hit") if "zap" in tokens
                        else lookup(tokens, DRUMS) or (known("claves") if "clav" in tokens else NO_RULE))
        else:
            out[rel] = lookup(tokens) or NO_RULE
    return out


@rule("hydrogen-data", "hydrogen-drumkits")
def _hydrogen(root: Path, files: list[str]) -> dict[str, Label | str]:
    """drumkits/<kit>/drumkit.xml names the instrument of every sample file."""
    names: dict[str, str] = {}
    for xml in sorted(root.glob("usr/share/hydrogen/data/drumkits/*/drumkit.xml")):
        try:
            tree = ET.parse(xml).getroot()
        except (ET.ParseError, OSError):
            continue
        kit = xml.parent.relative_to(root).as_posix()
        for inst in (el for el in tree.iter() if el.tag.rsplit("}", 1)[-1] == "instrument"):
            name = next((c.text or "" for c in inst if c.tag.rsplit("}", 1)[-1] == "name"), "")
            for f in (el.text for el in inst.iter() if el.tag.rsplit("}", 1)[-1] == "filename" and el.text):
                names.setdefault(f"{kit}/{f}", re.sub(r"\(.*?\)", "", name))
    out: dict[str, Label | str] = {}
    for rel in files:
        if "/drumkits/" not in rel:
            out[rel] = "not a drum-kit sample"
            continue
        tokens = words(names.get(rel, "")) or words(PurePosixPath(rel).stem)
        hit = lookup(tokens, DRUMS) or lookup(words(PurePosixPath(rel).stem), DRUMS)
        if hit is None and {"sangban", "kenkeni", "dununba"} & set(tokens):
            hit = Label("music_instrument", "dunun", "a dunun drum is hit")
        out[rel] = hit or NO_RULE
    return out


@rule("chuck-data")
def _chuck(root: Path, files: list[str]) -> dict[str, Label | str]:
    return {rel: by_name(rel, DRUMS) if "stereo_fx" not in rel and "granular" not in rel else NO_RULE
            for rel in files}


_CSOUND = {"bounce": known("bounce"), "mug": known("mug"), "wood": known("knock"),"choir": known("choir"), "classguit": known("guitar"), "classicalguitar": known("guitar"),
           "808loop": known("drum loop"), "808loopmono": known("drum loop"), "violins": known("violin"),
           "bassguitarc": known("bass guitar"), "bell": known("bell"), "seashore": known("seashore"),
           "flute": known("flute"), "marmstk1": known("marimba"), "synthpad": known("synth pad"),
           "bratschemono": known("viola"), "mandpluk": known("mandolin"),
           "fox": speech(None, "en"), "anditsall": speech(None, "en")}


@rule("csoundqt-examples")
def _csound(root: Path, files: list[str]) -> dict[str, Label | str]:
    return {rel: _CSOUND.get(PurePosixPath(rel).stem.lower(), NO_RULE) for rel in files}


@rule("codec2-examples")
def _codec2(root: Path, files: list[str]) -> dict[str, Label | str]:
    """codec2/wav/: the codec's English speech test recordings (some decoded at low bit rates)."""
    return {rel: speech(None, "en") if "/codec2/wav/" in rel else "codec test signal" for rel in files}


_DESKTOP = [  # (words in the event name, label, caption), first match wins
    ("error", "error sound", "a computer error alert sounds"), ("warning", "warning sound", "a computer warning alert sounds"),
    ("critical", "error sound", "a computer error alert sounds"), ("question", "alert", "a questioning computer alert"),
    ("login", "login chime", "a computer login chime"), ("log in", "login chime", "a computer login chime"),
    ("startup", "login chime", "a computer start-up chime"), ("logout", "logout chime", "a computer logout chime"),
    ("logoff", "logout chime", "a computer logout chime"), ("log out", "logout chime", "a computer logout chime"),
    ("shutdown", "logout chime", "a computer shut-down chime"),
    ("phone", "phone", "an electronic phone ringtone"), ("ring", "phone", "an electronic phone ringtone"),
    ("camera", "camera shutter", "an electronic camera shutter click"), ("shutter", "camera shutter", "an electronic camera shutter click"),
    ("trash", "trash emptied", "a computer trash-emptied sound effect"), ("test signal", "test tone", "an audio test tone"),
    ("bell", "bell notification", "a notification bell dings"), ("alarm", "alarm", "an electronic alarm rings"),
    ("device", "device sound", "a computer device plug sound"), ("power", "device sound", "a computer power plug sound"),
    ("battery", "alert", "a low battery alert"), ("window", "window sound", "a window-management sound effect"),
    ("click", "click", "a user interface click"), ("toggled", "click", "a user interface click"),
    ("", "notification", "a computer notification sound"),
]


@rule("sound-theme-freedesktop", "yaru-theme-sound", "oxygen-sounds", "gnome-audio")
def _desktop(root: Path, files: list[str]) -> dict[str, Label | str]:
    """Desktop event sounds (file names are event names); audio-channel-* speak a channel name."""
    out: dict[str, Label | str] = {}
    for rel in files:
        tokens = words(PurePosixPath(rel).stem)
        phrase = " ".join(t for t in tokens if t not in ("oxygen", "sys", "im", "k"))
        if tokens[:2] == ["audio", "channel"]:
            out[rel] = speech(" ".join(tokens[2:]).capitalize(), "en")
            continue
        if phrase == "card shuffle":
            out[rel] = known("card shuffle")
            continue
        label, caption = next((lab, cap) for key, lab, cap in _DESKTOP if f" {key} " in f" {phrase} " or not key)
        out[rel] = Label("electronic", label, caption)
    return out


_SOUND_ICONS = {"chord": known("guitar chord"), "cembalo": known("harpsichord"), "guitar": known("guitar"),
                "klavichord": known("clavichord"), "trumpet": known("trumpet"), "percussion": known("percussion"),
                "piano": known("piano"), "violoncello": known("cello"), "xylofon": known("xylophone"),
                "electric": known("electric piano"), "cymbaly": Label("music_instrument", "cimbalom", "a cimbalom is played"),
                "canary": known("canary"), "cockchafer": known("cockchafer"), "gummy": known("cat"),
                "pisk": known("beep"), "prompt": known("beep"), "glass": known("glass")}


@rule("sound-icons")
def _sound_icons(root: Path, files: list[str]) -> dict[str, Label | str]:
    return {rel: _SOUND_ICONS.get((words(PurePosixPath(rel).stem) or [""])[0], NO_RULE) for rel in files}


@rule("alsa-utils")
def _alsa(root: Path, files: list[str]) -> dict[str, Label | str]:
    """sounds/alsa/<Channel>.wav speak the channel; Noise.wav is a noise test signal."""
    out: dict[str, Label | str] = {}
    for rel in files:
        stem = PurePosixPath(rel).stem
        out[rel] = (Label("electronic", "noise", "a burst of white noise") if stem == "Noise"
                    else speech(stem.replace("_", " ").capitalize(), "en"))
    return out


@rule("bucklespring-data")
def _bucklespring(root: Path, files: list[str]) -> dict[str, Label | str]:
    """wav/<key>-<0|1>.wav: a mechanical keyboard key pressed (0) or released (1)."""
    return {rel: Label("environment", "keyboard typing", "a key on a mechanical keyboard is "
                       + ("released" if PurePosixPath(rel).stem.endswith("-1") else "pressed")) for rel in files}


_ARCADE = {"laser": known("laser"), "gameover": Label("electronic", "game over jingle", "a retro game-over jingle"),
           "coin": Label("electronic", "coin", "a retro video game coin pickup sound"),
           "error": Label("electronic", "error beep", "a retro error beep"),
           "lose": Label("electronic", "lose jingle", "a retro losing jingle"),
           "upgrade": Label("electronic", "power up", "a retro power-up sound"),
           "fall": Label("electronic", "falling", "a retro falling sound effect"),
           "jump": Label("electronic", "jump", "a retro jump sound effect"),
           "phase": Label("electronic", "jump", "a retro jump sound effect"),
           "secret": Label("electronic", "secret jingle", "a retro secret-found jingle"),
           "hit": Label("electronic", "hit", "a retro hit sound effect"),
           "rock": Label("electronic", "hit", "a retro hit sound effect"),
           "hurt": Label("electronic", "hurt", "a retro hurt sound effect"),
           "explosion": Label("electronic", "explosion", "a retro explosion sound effect")}
_PYPI_FILES = {"guitar_chord1": known("guitar chord"), "guitar_chord2": known("guitar chord"),
               "220": known("sine"), "880": known("sine"), "voice": speech(None, "en"),
               "chord_metronome1": Label("music", "music", "guitar chords played over a metronome"),
               "chord_metronome2": Label("music", "music", "guitar chords played over a metronome"),
               "car_door": known("car door"), "boom": known("explosion"), "whiff": known("whoosh"),
               "punch": known("punch"), "house_lo": Label("music", "music", "a short house music loop"),
               "secosmic_lo": Label("music", "music", "a short electronic music loop")}


@rule("pypi:arcade", "pypi:audioflux", "pypi:pygame")
def _pypi(root: Path, files: list[str]) -> dict[str, Label | str]:
    """Sound assets of PyPI wheels: arcade's sfxr-style game sounds and music, audioflux's and
    pygame's example clips."""
    out: dict[str, Label | str] = {}
    for rel in files:
        stem = PurePosixPath(rel).stem
        if "/assets/music/" in rel:
            out[rel] = Label("music", "music", "electronic video game music")
        elif "/assets/sounds/" in rel:
            out[rel] = _ARCADE.get((words(stem) or [""])[0], NO_RULE)
        else:
            out[rel] = _PYPI_FILES.get(stem, NO_RULE)
    return out
