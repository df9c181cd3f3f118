"""Package rules of `data_prep.open_audio_rules` for games: voice packs, music and effects by folder.

Hedgewars (voice packs whose file names are the English lines, music, effects), Battle for
Wesnoth (people's hit and death cries, weapons, ambience, horn signals, UI), Widelands (music,
trades, animals, UI), MegaGlest (animal units, weapons, tools, tilesets) and Minetest
(footsteps on their surface, digging, tools). Each rule registers itself with
`open_audio_labels.rule` when this module is imported.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from data_prep.open_audio_labels import NO_RULE, Label, by_name, known, lookup, rule, speech, words

_HEDGEWARS_LINES = {
    "amazing": "Amazing!", "boring": "Boring!", "brilliant": "Brilliant!", "bugger": "Bugger!",
    "byebye": "Bye bye!", "comeonthen": "Come on then!", "coward": "Coward!", "cutitout": "Cut it out!",
    "drat": "Drat!", "enemydown": "Enemy down!", "excellent": "Excellent!", "fire": "Fire!",
    "firstblood": "First blood!", "flawless": "Flawless!", "flyaway": "Fly away!",
    "gonnagetyou": "Gonna get you!", "grenade": "Grenade!", "hello": "Hello!", "hurry": "Hurry!",
    "illgetyou": "I'll get you!", "incoming": "Incoming!", "justyouwait": "Just you wait!",
    "kamikaze": "Kamikaze!", "leavemealone": "Leave me alone!", "melon": "Melon!", "missed": "Missed!",
    "nooo": "Nooo!", "nutter": "Nutter!", "ohdear": "Oh dear!", "oops": "Oops!", "ouch": "Ouch!",
    "reinforcements": "Reinforcements!", "revenge": "Revenge!", "runaway": "Run away!",
    "sameteam": "Same team!", "solong": "So long!", "stupid": "Stupid!", "takecover": "Take cover!",
    "thisoneismine": "This one's mine!", "traitor": "Traitor!", "uh-oh": "Uh-oh!", "victory": "Victory!",
    "watchit": "Watch it!", "watchthis": "Watch this!", "whatthe": "What the...!", "yessir": "Yes, sir!",
    "youllregretthat": "You'll regret that!"}
_HEDGEWARS_VOCAL = {"laugh": Label("human_sounds", "laughter", "a cartoonish voice laughs"),
                    "ooff": Label("human_sounds", "pain grunt", "a cartoonish voice grunts in pain"),
                    "ow": Label("human_sounds", "pain grunt", "a cartoonish voice cries out in pain"),
                    "poisoncough": Label("human_sounds", "cough", "a cartoonish voice coughs"),
                    "poisonmoan": Label("human_sounds", "groan", "a cartoonish voice groans"),
                    "jump": Label("human_sounds", "effort grunt", "a cartoonish voice grunts with effort"),
                    "firepunch": Label("human_sounds", "battle cry", "a cartoonish voice yells as it punches")}
_HEDGEWARS_LANG = {"Default_es": "es", "Default_pl": "pl", "Default_ru": "ru", "Default_uk": "uk",
                   "Russian_pl": "pl"}


@rule("hedgewars-data")
def _hedgewars(root: Path, files: list[str]) -> dict[str, Label | str]:
    """Data/Sounds/voices/<pack>/<Line>.ogg (the file name is the English line), Data/Music/,
    Data/Sounds/ (effects, by name)."""
    out: dict[str, Label | str] = {}
    for rel in files:
        parts = rel.split("/")
        stem = PurePosixPath(rel).stem
        if "/voices/" in rel:
            pack, key = parts[-2], re.sub(r"\d+$", "", stem.lower())
            lang = _HEDGEWARS_LANG.get(pack, "en")
            if key in _HEDGEWARS_VOCAL:
                out[rel] = _HEDGEWARS_VOCAL[key]
            elif pack == "Russian":  # the Soviet team's voice: whether it speaks English is unknown
                out[rel] = Label("speech", "speech", "a cartoonish voice with a Russian character shouts")
            elif key in _HEDGEWARS_LINES:
                style = " ".join(words(pack.split("_")[0]))
                voice = "a cartoonish voice" if style in ("default", "classic") else f"a cartoonish {style} voice"
                out[rel] = speech(_HEDGEWARS_LINES[key] if lang == "en" else None, lang, voice, "shouts")
            else:
                out[rel] = NO_RULE
        elif "/Music/" in rel:
            theme = " ".join(words(stem))
            out[rel] = Label("music", "music", {"main theme": "the main theme of a video game",
                                                "sdmusic": "tense sudden-death music from a video game",
                                                "olympics sd": "tense sudden-death music from a video game"}.get(
                theme, f"video game music for the {theme} level"))
        elif stem == "ride_of_the_valkyries":
            out[rel] = Label("music", "music", "a snippet of Wagner's Ride of the Valkyries")
        else:
            out[rel] = by_name(rel)
    return out


_WESNOTH_VOICE = {"human": "a man", "human female": "a woman", "human old": "an old man",
                  "dwarf": "a dwarf", "elf": "an elf"}
_WESNOTH_UI = {"bell": "a notification bell dings", "timer": "a countdown timer ticks",
               "gamestart": "a game start jingle plays"}


@rule("wesnoth-1.16-data")
def _wesnoth(root: Path, files: list[str]) -> dict[str, Label | str]:
    """core/sounds/<creature>-<hit|die>-<n> (people grunt and cry out; fantasy monsters are
    left out), weapons by name, core/sounds/ambient/, horn-signals/, and 1.16/sounds/ (UI)."""
    out: dict[str, Label | str] = {}
    for rel in files:
        stem = PurePosixPath(rel).stem
        tokens = words(stem)
        if rel.startswith("usr/share/games/wesnoth/1.16/sounds/"):
            out[rel] = Label("electronic", "notification", _WESNOTH_UI.get(tokens[0], "a user interface click") if tokens
                             else "a user interface click")
            continue
        if "/horn-signals/" in rel:
            out[rel] = Label("music_instrument", "horn", "a horn signal is blown")
            continue
        if "/ambient/" in rel:
            amb = {"morning": Label("environment", "morning ambience", "birds and insects on a quiet morning"),
                   "night": Label("environment", "night ambience", "crickets and night sounds outdoors"),
                   "ship": Label("environment", "ship", "a wooden ship creaks on the sea"),
                   "wardrums": Label("music_instrument", "drums", "war drums are beaten")}
            out[rel] = amb.get(tokens[0] if tokens else "") or by_name(rel)
            continue
        action = next((a for a in ("hit", "die") if a in tokens), None)
        creature = " ".join(tokens[:tokens.index(action)]) if action else ""
        if action and creature in _WESNOTH_VOICE:
            who = _WESNOTH_VOICE[creature]
            out[rel] = (Label("human_sounds", "pain grunt", f"{who} grunts in pain") if action == "hit"
                        else Label("human_sounds", "death cry", f"{who} cries out and dies"))
        elif tokens and tokens[0] in ("wolf", "horse", "bat"):
            what = {"wolf": "a wolf growls" if "growl" in tokens else "a wolf yelps",
                    "horse": "a horse gallops" if "canter" in tokens else "a horse whinnies",
                    "bat": "a bat squeaks and flaps"}[tokens[0]]
            out[rel] = Label("animal", "horse gallop" if "canter" in tokens else tokens[0], what)
        elif tokens[:1] in (["bite"], ["claws"]):
            out[rel] = Label("animal", "bite" if tokens[0] == "bite" else "claws",
                             "an animal bites" if tokens[0] == "bite" else "an animal slashes with its claws")
        elif "laugh" in tokens:
            out[rel] = Label("human_sounds", "laughter", "a witch cackles" if "witches" in tokens else "a dwarf laughs")
        elif creature or any(t in tokens for t in ("magic", "heal", "wail", "hiss", "ink", "entangle",
                                                   "petrified", "slowed", "poison", "squishy", "wose")):
            out[rel] = "fantasy creature or magic sound"
        else:
            out[rel] = lookup(tokens) or NO_RULE
    return out


@rule("widelands-data")
def _widelands(root: Path, files: list[str]) -> dict[str, Label | str]:
    """data/music/ (game music), data/sound/<trade>/ and animals/ by name, UI sounds."""
    ui = {"click": "a user interface click", "message": "a message notification chime",
          "lobby chat": "a chat notification sound", "lobby freshmen": "a chat notification sound"}
    farm = {"farm animal": Label("animal", "farm animals", "farm animals call")}
    out: dict[str, Label | str] = {}
    for rel in files:
        tokens = words(PurePosixPath(rel).stem)
        phrase = " ".join(tokens)
        if "/data/music/" in rel:
            out[rel] = Label("music", "music", "orchestral video game music")
        elif phrase in ui:
            out[rel] = Label("electronic", "notification", ui[phrase])
        elif phrase in farm:
            out[rel] = farm[phrase]
        elif phrase == "stonegrind":
            out[rel] = Label("environment", "grinding", "a millstone grinds grain")
        elif phrase == "mortar":
            out[rel] = Label("environment", "mortar and pestle", "a pestle grinds in a mortar")
        elif "/military/" in rel or phrase in ("create construction site", "blackwood", "goldspin"):
            out[rel] = NO_RULE
        elif "/taverns/" in rel:
            out[rel] = Label("environment", "cooking", "food sizzles as it cooks in a tavern")
        elif tokens[:1] in (["goldping"], ["ironping"]):
            out[rel] = Label("environment", "metal ping", "a piece of metal rings as it is struck")
        elif phrase == "sharpening":
            out[rel] = Label("environment", "sharpening", "a blade is sharpened on a whetstone")
        else:
            out[rel] = lookup(tokens) or NO_RULE
    return out


_MEGAGLEST_ANIMALS = {"bull": "bull", "cow": "cow", "pig": "pig", "chicken": "chicken", "sheep": "sheep",
                      "elephant": "elephant", "ele": "elephant", "wild sow": "wild sow", "beehive": "bee",
                      "bee": "bee", "thunderbird": "eagle", "eagle": "eagle", "wolf": "wolf", "owl": "owl",
                      "rooster": "rooster", "hawk": "hawk", "mudchute cow": "cow"}
_MEGAGLEST_WEAPON = {"archer": "bow", "fire archer": "bow", "axe thrower": "axe", "axe indian": "axe",
                     "battleaxe": "axe", "battleaxe berserk": "axe", "swordman": "sword",
                     "swordman berserk": "sword", "guard": "sword", "gladiator": "sword", "spearman": "spear",
                     "spearman berserk": "spear", "cudgel lady": "club", "catapult": "catapult"}
_MEGAGLEST_ACTIONS = ("ack", "select", "attack", "die", "hit", "walk", "build", "mine", "harvest", "summon",
                      "heal", "fly", "standing", "work")


@rule("megaglest-data")
def _megaglest(root: Path, files: list[str]) -> dict[str, Label | str]:
    """units/<unit>/sounds/ and commondata/sounds/<unit>_<action><n>: animal units call whatever
    the action, a weapon unit's attack is its weapon, work is its tool; voice lines
    (ack/select/die of people) are left out (their words are unknown)."""
    out: dict[str, Label | str] = {}
    for rel in files:
        parts = rel.split("/")
        tokens = words(PurePosixPath(rel).stem)
        if "/music/" in rel:
            out[rel] = Label("music", "music", "a piece of video game music")
        elif "/menu/sound/" in rel:
            out[rel] = Label("electronic", "sonar ping" if "sonar" in tokens else "notification",
                             "an electronic sonar ping" if "sonar" in tokens else "a user interface click")
        elif "/water_sounds/" in rel:
            out[rel] = Label("environment", "water", "water splashes and flows")
        elif "/tilesets/" in rel:
            if tokens and tokens[0] in ("day", "sunny", "desertday", "good"):
                out[rel] = Label("environment", "daytime ambience", "outdoor ambience by day")
            elif tokens and tokens[0] in ("night", "nightime"):
                out[rel] = Label("environment", "night ambience", "outdoor ambience at night")
            else:
                hit = lookup(tokens)
                out[rel] = hit if hit and hit.category in ("animal", "environment") else NO_RULE
        else:
            action = next((a for a in _MEGAGLEST_ACTIONS if a in tokens), None)
            unit = " ".join(tokens[:tokens.index(action)]) if action else " ".join(tokens)
            folder = " ".join(words(parts[-3])) if "/units/" in rel else ""
            animal = _MEGAGLEST_ANIMALS.get(unit)
            if folder in _MEGAGLEST_ANIMALS and unit[:3] in (folder[:3], _MEGAGLEST_ANIMALS[folder][:3]):
                animal = _MEGAGLEST_ANIMALS[folder]  # ele1.wav in units/elephant/; not ground_attack in thunderbird
            if animal:
                out[rel] = lookup(words(animal)) or NO_RULE
            elif unit == "horseman" and action == "walk":
                out[rel] = known("gallop")
            elif action == "attack" and (unit in _MEGAGLEST_WEAPON or folder in _MEGAGLEST_WEAPON):
                out[rel] = known(_MEGAGLEST_WEAPON.get(unit) or _MEGAGLEST_WEAPON[folder])
            elif unit in ("worker", "technician") and action in ("build", "mine", "harvest"):
                out[rel] = known({"build": "hammering", "mine": "pickaxe", "harvest": "woodcutting"}[action])
            elif action in ("ack", "select", "die"):
                out[rel] = "unit voice line (words unknown)"
            elif (action is None or unit in ("anvil", "arrow")) and folder != "minaret":
                hit = lookup(tokens)  # e.g. knife4.wav, wicker_fire.wav, magic_building_fall7.wav
                out[rel] = hit if hit and hit.category == "environment" else NO_RULE
            else:
                out[rel] = NO_RULE
    return out


_MINETEST_SURFACE = {"wood", "gravel", "water", "metal", "snow", "grass", "ice", "sand", "dirt", "hard", "glass"}


@rule("minetest-data")
def _minetest(root: Path, files: list[str]) -> dict[str, Label | str]:
    """mods/<mod>/sounds/<mod>_<what>[.<n>].ogg (footsteps name their surface)."""
    out: dict[str, Label | str] = {}
    for rel in files:
        tokens = words(PurePosixPath(rel).stem)
        surface = next((t for t in tokens if t in _MINETEST_SURFACE), None)
        if "footstep" in tokens:
            where = {"hard": "a hard floor", "water": "shallow water"}.get(surface or "", surface or "the ground")
            out[rel] = Label("environment", "footsteps", f"footsteps on {where}")
        elif "place" in tokens:
            out[rel] = Label("environment", "block placed", "a block is set down with a thud")
        elif {"dig", "dug"} & set(tokens):
            out[rel] = Label("environment", "digging", f"someone digs into {surface or 'the ground'}")
        elif "tool" in tokens and "breaks" in tokens:
            out[rel] = Label("environment", "tool breaking", "a tool snaps and breaks")
        elif "damage" in tokens:
            out[rel] = known("ouch")
        elif "flint" in tokens:
            out[rel] = Label("environment", "flint and steel", "flint strikes steel")
        elif "ignite" in tokens:
            out[rel] = known("fuse")
        elif tokens[:1] == ["soundstuff"] or "smoke" in tokens:
            out[rel] = NO_RULE
        else:
            out[rel] = lookup([t for t in tokens if t not in ("default", "env", "sounds", "doors", "tnt",
                                                              "xpanes", "carts", "steel")]) or NO_RULE
    return out
