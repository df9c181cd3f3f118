"""Package rules of `data_prep.open_audio_rules` for packages that speak, from their own metadata.

Tux Paint stamp descriptions (`<stamp>.txt`, one line per language), qABCs alphabet JSON (which
word is an animal / an instrument, the spoken word), KTuberling / KLettres sound XML (the spoken
word or letter), and the voice packs of Kajongg and gcin. Each rule registers itself with
`open_audio_labels.rule` when this module is imported.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from data_prep.open_audio_labels import (
    LANGUAGES,
    NO_RULE,
    Label,
    by_name,
    lookup,
    rule,
    speech,
    words,
)


def _a(noun: str) -> str:
    low = noun.lower()
    return "an" if low[:1] in "aeiou" and not low.startswith(("uni", "eu", "one", "use")) else "a"


def _the_sound_of(name: str) -> str:
    """'the sound of a kite' / 'the sound of balloons'."""
    plural = name.endswith("s") and not name.endswith(("ss", "us"))
    return f"the sound of {name}" if plural else f"the sound of {_a(name)} {name}"


def _sound_xml(path: Path) -> dict[str, str]:
    """file (relative to the XML's folder) -> spoken name, from <sound name=... file=...>."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return {}
    return {el.get("file", ""): el.get("name", "") for el in root.iter("sound") if el.get("file")}


@rule("tuxpaint-stamps-default")
def _tuxpaint(root: Path, files: list[str]) -> dict[str, Label | str]:
    """Stamp `<s>.ogg` is the stamp's sound effect, `<s>_desc[_<lang>].ogg` its description read
    aloud (text in `<s>.txt`: English first line, then `<lang>.utf8=...`); digits and letters
    speak themselves, also as `<s>_<lang>.ogg`."""
    out: dict[str, Label | str] = {}
    texts: dict[Path, dict[str, str]] = {}
    for rel in files:
        path = PurePosixPath(rel)
        stem = re.sub(r"(\.(ogg|wav))+$", "", path.name, flags=re.I)
        m = re.fullmatch(r"(.+?)_desc(?:_([A-Za-z]{2,3}(?:_[A-Za-z]{2,4})?))?", stem)
        loc = re.fullmatch(r"(.+?)_([a-z]{2,3}(?:_[A-Za-z]{2,4})?)", stem)
        loc = loc if loc and loc.group(2).split("_")[0] in LANGUAGES else None
        spoken = "/symbols/math/" in f"/{rel}" or "/symbols/alphabets/" in f"/{rel}"
        if m or (spoken and loc) or (spoken and "/math/" in f"/{rel}"):
            stamp, lang = (m.group(1), m.group(2)) if m else ((loc.group(1), loc.group(2)) if loc else (stem, None))
            txt = root / path.parent / f"{stamp}.txt"
            if txt not in texts:
                texts[txt] = _tuxpaint_text(txt)
            text = texts[txt].get(lang or "en") or texts[txt].get((lang or "en").split("_")[0])
            out[rel] = speech(text, lang or "en")
        elif spoken:
            out[rel] = speech(None, "de" if "/german/" in rel else "en")
        elif loc:
            out[rel] = "localized stamp sound (content unknown)"
        else:
            out[rel] = lookup(words(stem)) or lookup(words(_TUXPAINT_ALIASES.get(stem, ""))) or NO_RULE
    return out


_TUXPAINT_ALIASES = {"final-roll-call": "bugle", "apollo_lander": "rocket", "bathyscape": "sonar",
                     "santahat": "sleigh bells", "hard_candy": "zipper", "nandou": "bird",
                     "tucan": "bird", "camera_35mm": "camera shutter", "xing_school": "",
                     "gift": "paper"}


def _tuxpaint_text(txt: Path) -> dict[str, str]:
    try:
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    texts = {"en": lines[0].strip()} if lines and "=" not in lines[0] else {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.endswith(".utf8") and value.strip():
            texts[key[:-5]] = value.strip()
    return texts


_QABCS_NOT_OBJECTS = {"cheburashka", "dogmatix", "dunno", "emelya", "firebird", "ivasyk", "joker", "ole_lukoje",
                      "prince", "umka", "ursula", "yaga", "x-men", "sailorboy", "schooler", "pupil", "chef",
                      "clown", "gamekeeper", "robot", "yeti", "sound", "ode", "circus",
                      "xbox", "yinyang", "star", "earth", "igloo", "christmas_tree", "quarter", "x-ray"}


@rule("qabcs-data")
def _qabcs(root: Path, files: list[str]) -> dict[str, Label | str]:
    """`abcs/<lang>/abc*.json`: per letter and theme (animals, instrument, ...) the spoken word
    (`sound_pic`, in `<lang>/sounds/words/`), the letter (`sound_letter`) and a noise (`noises`,
    in `all/noises/`)."""
    base = "usr/share/qabcs/abcs"
    words_of: dict[str, str] = {}
    themes_of: dict[str, set[str]] = {}
    for props in sorted((root / base).glob("*/abc*.properties")):
        lang = props.parent.name
        try:
            lines = props.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:  # <theme>:<letter>=<word>==<sound_pic>=<noise>
            head, _, rest = line.partition("=")
            fields = rest.split("=")
            if ":" not in head or len(fields) < 3:
                continue
            theme = head.split(":")[0]
            if fields[0] and fields[2]:
                words_of.setdefault(f"{base}/{lang}/sounds/words/{fields[2]}.ogg", fields[0].capitalize())
            if len(fields) > 3 and fields[3]:
                themes_of.setdefault(f"{base}/all/noises/{fields[3]}.ogg", set()).add(theme)
    for js in sorted((root / base).glob("*/abc*.json")):
        lang = js.parent.name
        try:
            letters = json.loads(js.read_text(encoding="utf-8")).get("letters", [])
        except (ValueError, OSError, AttributeError):
            continue
        for entry in letters:
            for letter, themes in entry.items():
                if not isinstance(themes, dict):
                    continue
                if themes.get("sound_letter"):
                    words_of[f"{base}/{lang}/sounds/alpha/{themes['sound_letter']}"] = letter
                for theme, item in themes.items():
                    if not isinstance(item, dict):
                        continue
                    if item.get("sound_pic") and item.get("name"):
                        words_of[f"{base}/{lang}/sounds/words/{item['sound_pic']}"] = item["name"].capitalize()
                    if item.get("noises"):
                        themes_of.setdefault(f"{base}/all/noises/{item['noises']}", set()).add(theme)
    out: dict[str, Label | str] = {}
    for rel in files:
        parts = rel.split("/")
        stem = PurePosixPath(rel).stem
        if "/sounds/words/" in rel or "/sounds/alpha/" in rel:
            out[rel] = speech(words_of.get(rel) or stem.replace("_", " "), parts[4])
        elif "/noises/" in rel:
            themes = themes_of.get(rel, set())
            hit = lookup(words(stem))
            name = stem.replace("_", " ")
            if stem in _QABCS_NOT_OBJECTS or stem.endswith("_flag"):
                out[rel] = "character or unknown noise"
            elif hit and (hit.category == "animal" or hit.category == "music_instrument" and "animals" not in themes):
                out[rel] = hit
            elif "animals" in themes:
                out[rel] = Label("animal", name, _the_sound_of(name))
            elif "instrument" in themes:
                out[rel] = Label("music_instrument", name, f"{name} are played" if name.endswith("s")
                                 else f"{_a(name)} {name} is played")
            elif hit:
                out[rel] = hit
            elif not themes - {"dummy"}:
                out[rel] = "character or unknown noise"
            else:  # toys, food, misc: the noise the object makes
                out[rel] = Label("environment", name, _the_sound_of(name))
        else:
            out[rel] = by_name(rel)
    return out


@rule("ktuberling-data", "klettres-data")
def _sound_themes(root: Path, files: list[str]) -> dict[str, Label | str]:
    """KTuberling `sounds/<lang>.soundtheme` and KLettres `<lang>/sounds.xml` name what each file
    says (KTuberling's names are English keys, so they are transcripts of the English set only)."""
    names: dict[str, str] = {}
    for xml in sorted(root.glob("usr/share/ktuberling/sounds/*.soundtheme")):
        names.update({f"usr/share/ktuberling/sounds/{f}": n for f, n in _sound_xml(xml).items()})
    for xml in sorted(root.glob("usr/share/klettres/*/sounds.xml")):
        names.update({f"usr/share/klettres/{f}": n for f, n in _sound_xml(xml).items()})
    out: dict[str, Label | str] = {}
    for rel in files:
        parts = rel.split("/")
        lang = parts[4] if parts[2] == "ktuberling" else parts[3]
        name = names.get(rel)
        if parts[2] == "ktuberling" and (not lang.startswith("en") or (name and "_" in name)):
            name = None  # a key, not the spoken word
        out[rel] = speech(name, lang)
    return out


_KAJONGG = {"chow": "Chow", "pung": "Pung", "kong": "Kong", "mahjongg": "Mah Jongg",
            "nochoice": "No choice", "dangerousgame": "Dangerous game",
            "originalcall": "Original call", "violatesoriginalcall": "Violates original call"}


@rule("kajongg")
def _kajongg(root: Path, files: list[str]) -> dict[str, Label | str]:
    """voices/[de/]<male|female><n>/<call>.ogg: a player's calls (tile names, 'Pung', ...)."""
    out: dict[str, Label | str] = {}
    for rel in files:
        parts = rel.split("/")
        lang = "de" if "/voices/de/" in rel else "en"
        voice = "a man" if parts[-2].startswith("male") else "a woman" if parts[-2].startswith("female") else "a voice"
        text = _KAJONGG.get(PurePosixPath(rel).stem) if lang == "en" else None
        out[rel] = speech(text, lang, voice, "calls") if "/voices/" in rel else NO_RULE
    return out


@rule("gcin-voice")
def _gcin(root: Path, files: list[str]) -> dict[str, Label | str]:
    """ogg/<zhuyin syllable><tone digit>/<n>.ogg: one Mandarin syllable (tone 1 unmarked)."""
    marks = {"2": "ˊ", "3": "ˇ", "4": "ˋ", "5": "˙"}
    out: dict[str, Label | str] = {}
    for rel in files:
        syllable = rel.split("/")[-2]
        text = re.sub(r"[1-5]$", lambda m: marks.get(m.group(0), ""), syllable)
        out[rel] = Label("speech", "speech", f'a voice says the Mandarin syllable "{text}"', text, "zh")
    return out
