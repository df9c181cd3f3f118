"""Labelling rules of `data_prep.open_audio`: (package, file in it) -> category, label, caption.

A rule sees one extracted package (its root folder and the audio files found in it) and
returns, per file, a `Label` or the reason the file gets none (then it is listed as
skipped, never guessed). Three layers, most specific first:

1. package rules (`PACKAGE_RULES`) that read the package's own metadata: Tux Paint stamp
   descriptions (`<stamp>.txt`, one line per language), qABCs alphabet JSON (which word
   is an animal / an instrument, the spoken word), KTuberling / KLettres sound XML (the
   spoken word or letter), Hydrogen `drumkit.xml` (instrument names), voice-pack folders
   (Hedgewars, Kajongg, gcin), game folders (music/, ambient/, UI sounds);
2. a keyword lexicon (`LEXICON`, in `open_audio_labels`) matched on the words of the file
   name, longest phrase first (`drum_tom_lo_soft` -> "tom drum"), with a drum-kit lexicon
   (`DRUMS`, where "hat" means hi-hat) only inside drum kits;
3. nothing else: a file no rule names is skipped with "no labelling rule".

Categories: speech, music_instrument, environment, animal, music, human_sounds,
electronic. Speech rows have label "speech", `lang` and, where the package says what is
spoken, `transcript`.

This module holds `RULES_VERSION` and `label_package`, which applies the rules; the rules are
`open_audio_rules_speech` (packages that speak), `open_audio_rules_games` (games) and
`open_audio_rules_samples` (sample libraries, sound themes, example clips), written with the
vocabulary of `open_audio_labels` (`Label`, the lexicon, `speech`, the `rule` registry), whose
names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Imported for their side effect: each module registers its package rules in PACKAGE_RULES.
from data_prep import open_audio_rules_games, open_audio_rules_samples, open_audio_rules_speech  # noqa: F401
from data_prep.open_audio_labels import (  # noqa: F401 -- re-exported: the API of this module before the split
    CATEGORIES,
    DRUMS,
    LANGUAGES,
    LEXICON,
    NO_RULE,
    PACKAGE_RULES,
    Label,
    Rule,
    by_name,
    known,
    language,
    lookup,
    rule,
    speech,
    words,
)

RULES_VERSION = 2
"Bump when a rule changes what a file gets: manifests built with other rules are rebuilt."


def label_package(package: str, root: Path, files: Iterable[str]) -> dict[str, Label | str]:
    """Label (or the reason for none) of each audio file of an extracted package.

    Args:
        package: source name (Debian package, or 'pypi:name==version').
        root: the package's extracted folder.
        files: audio files, relative to `root` (POSIX separators).
    """
    files = list(files)
    key = package.split("==")[0]
    fn = PACKAGE_RULES.get(key)
    if fn is None:
        return {f: by_name(f) for f in files}
    return fn(root, files)
