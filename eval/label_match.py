"""Which label and category a free-text caption names: the documented, deterministic matching rule.

Used by `eval.audio_lm` to score generated captions of labelled clips
(`evaluation-practice.md` section 2: extraction is a documented, tested
function; unmatched answers are counted as unmatched, never guessed).

The rule, in full:

1. **Words.** Lower-case the text; its words are the runs of letters a-z
   (digits, punctuation, quotes and hyphens separate words: "hi-hat" is
   "hi hat"); each word is folded by `fold` (a few English inflection rules,
   below), so "barks", "barking" and "barked" are all "bark".
2. **Terms.** Every label of the manifests has terms: the label itself and
   the phrases of `SYNONYMS[label]` (hand-written: the words the corpus'
   captions use for it, e.g. "pain grunt" <- "grunts in pain", "speech" <-
   "says"). A term matches where its folded words occur contiguously in the
   caption's folded words.
3. **Label accuracy.** A caption names the clip's label when any term of that
   label matches anywhere in it (the issue's rule: "the label or its synonyms
   appear in the caption").
4. **Category.** The caption's category is the category of its first term: the
   match that starts at the earliest word, the longest one when several start
   there ("a snare drum hit" is "snare drum", not "drum"). A term's category is
   the majority category over the manifest rows of every label that has the
   term (ties: alphabetical), so "bird" (labels bird and birds) is animal.
5. **Unmatched.** A caption with no matching term has no category and names no
   label; it counts as wrong and is reported as unmatched (empty captions
   separately). Nothing is guessed.

`fold` (written here, not a stemmer library: the rule must be checkable by
hand, and Porter-style stems such as "cri" for "cries" would make the synonym
table harder to read; the same folding is applied to captions and terms, so
only consistency matters): irregular plurals from `IRREGULAR` first
(wolves -> wolf, ...); then "-ies" -> "-y" (cries -> cry); "-sses/-ches/-shes/
-xes/-zes" lose "-es"; a final "s" goes (not after "s", "u" or "i": glass, bus,
iris); "-ing" (words over 5 letters) or "-ed" (over 4) goes; a doubled final
consonant other than l, s, z is undoubled (hitting -> hitt -> hit).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

RULE_VERSION = 1
"Bumped whenever `fold`, `SYNONYMS` or the precedence changes (results record it)."

IRREGULAR = {"wolves": "wolf", "knives": "knife", "leaves": "leaf", "geese": "goose", "mice": "mouse",
             "men": "man", "women": "woman", "children": "child", "teeth": "tooth", "feet": "foot",
             "oxen": "ox", "calves": "calf", "hooves": "hoof", "people": "person"}
"Irregular plurals folded to their singular."

SYNONYMS: dict[str, tuple[str, ...]] = {
    # speech and human sounds
    "speech": ("say", "says", "speak", "speech", "spoken", "talk", "announce", "word", "syllable", "letter",
               "pronounce", "whisper", "count", "read aloud", "narrate"),
    "pain grunt": ("grunt", "groan", "moan", "in pain"),
    "scream": ("scream", "cry out", "cries out", "shriek", "yell", "shout"),
    "laughter": ("laugh", "giggle", "chuckle"),
    "applause": ("applaud", "applause", "clapping crowd"),
    "finger snap": ("snap",),
    "breath": ("breathe", "breath"),
    "call to prayer": ("call to prayer", "minaret"),
    # animals
    "bird": ("bird", "songbird"),
    "birds": ("bird",),
    "bird of prey": ("bird of prey", "eagle", "hawk", "falcon", "large bird"),
    "wolf": ("wolf",),
    "horse": ("horse", "neigh", "whinny"),
    "horse gallop": ("gallop", "hoof", "trot"),
    "sheep": ("sheep", "bleat", "lamb"),
    "duck": ("duck", "quack", "drake"),
    "drake": ("duck", "quack"),
    "gander": ("goose", "honk"),
    "stag": ("stag", "deer", "elk"),
    "doe": ("deer",),
    "moose": ("moose",),
    "ox": ("ox", "cattle"),
    "farm animals": ("farm animal",),
    "boar": ("boar",),
    "donkey": ("donkey", "bray"),
    "frog": ("frog", "croak", "toad"),
    "crickets": ("cricket",),
    "claws": ("claw", "slash"),
    "dromedary": ("camel",),
    "python": ("snake",),
    "blister beetle": ("beetle",),
    "cockchafer": ("beetle",),
    # environment
    "keyboard typing": ("keyboard", "typing"),
    "wood chopping": ("chop wood", "chops wood", "chopping wood"),
    "fire": ("fire", "flame", "torch", "campfire", "crackle", "burn"),
    "stone cutting": ("chisel", "chiselled", "stonemason", "stone cutting"),
    "cooking": ("cook", "kitchen", "sizzle", "food"),
    "bubbling": ("bubble", "boil"),
    "saw": ("saw", "sawmill"),
    "anvil": ("anvil", "blacksmith", "smith"),
    "hammering": ("hammer",),
    "bow and arrow": ("arrow", "bow"),
    "sharpening": ("sharpen", "whetstone"),
    "tree falling": ("tree fall", "tree crash", "timber"),
    "fishing net": ("fishing net",),
    "grinding": ("grind", "millstone"),
    "metal clatter": ("clatter",),
    "loom": ("loom", "weave"),
    "ship": ("ship", "boat"),
    "rockfall": ("rockfall", "rocks collapse", "rock fall", "avalanche"),
    "coins": ("coin", "clink"),
    "thunder": ("thunder", "lightning"),
    "explosion": ("explosion", "explode", "blast"),
    "mortar and pestle": ("mortar", "pestle"),
    "door closing": ("door close", "door closes", "door slam"),
    "phone ringing": ("telephone ring", "phone ring"),
    "water drop": ("droplet", "water drop", "drip"),
    "gun reload": ("reload",),
    "fire extinguished": ("extinguish",),
    "steam": ("hiss",),
    "gunshot": ("gunshot", "shotgun fire", "rifle fire", "gun fire"),
    "glass breaking": ("glass break", "smash", "shatter"),
    "ocean waves": ("wave", "seashore", "surf"),
    "paper crumpling": ("crumple", "trash"),
    "card shuffle": ("shuffle",),
    "camera lens": ("camera", "shutter"),
    "apple bite": ("bite",),
    "bite": ("bite",),
    "yoyo": ("yo yo",),
    "chest closing": ("chest close", "chest closes"),
    "gate closing": ("gate close", "gate closes"),
    "metal hit": ("metal is struck", "metal struck"),
    "wood knock": ("wood is knocked", "knock"),
    "water splash": ("splash",),
    "flint and steel": ("flint",),
    # electronic
    "notification": ("chime", "notification", "alert", "ding", "login", "logoff", "logout", "shutdown", "desktop",
                     "system ready"),
    "glitch": ("glitch", "glitchy"),
    "electronic percussion": ("blip", "blup", "bleep", "bong", "electronic beep", "electronic bell",
                              "electronic flip", "electronic tick", "electronic click", "electronic triangle",
                              "electronic wood", "ping", "plip", "twang", "twip", "fuzz"),
    "error beep": ("error sound", "error", "beep"),
    "lose jingle": ("losing jingle", "lose jingle", "losing"),
    "game over jingle": ("game over",),
    "secret jingle": ("secret",),
    "power up": ("power up",),
    "falling": ("falling sound",),
    "hurt": ("hurt",),
    "jump": ("jump",),
    "laser": ("laser",),
    "phone": ("phone tone", "telephone", "phone"),
    "busy signal": ("busy signal",),
    "sine tone": ("hz tone", "sine"),
    # music and instruments
    "music": ("music", "soundtrack", "song", "melody", "tune"),
    "music loop": ("music loop", "electronic loop", "electric loop"),
    "drum loop": ("drum loop", "beat loop", "breakbeat", "amen break"),
    "drum machine": ("drum machine",),
    "synth pad": ("synth pad", "pad chord"),
    "vinyl backspin": ("backspin",),
    "vinyl rewind": ("rewound", "rewind"),
    "vinyl hiss": ("vinyl",),
    "choir": ("choir", "chorus"),
    "drone": ("drone",),
    "glass hum": ("humming wine glass", "glass hum"),
    "glass rub": ("rubs a wine glass", "glass rub"),
    "snare drum": ("snare",),
    "hi-hat": ("hi hat", "hihat"),
    "kick drum": ("kick", "bass drum"),
    "drums": ("drum",),
    "horn": ("horn",),
    "guitar": ("guitar",),
}
"label -> extra phrases (the label itself is always a term). Labels absent here match by their own words only."

_WORD = re.compile(r"[a-z]+")


def fold(word: str) -> str:
    """A word with English inflections folded away (module docstring)."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif w.endswith(("sses", "ches", "shes", "xes", "zes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """The folded words of `text` (module docstring, step 1)."""
    return [fold(w) for w in _WORD.findall(text.lower())]


@dataclass(frozen=True)
class Match:
    """A term found in a caption."""

    term: tuple[str, ...]
    "The folded words of the term."
    start: int
    "Index of its first word in the caption's words."
    labels: tuple[str, ...]
    "Labels that have this term."
    category: str
    "The term's category (module docstring, step 4)."


class LabelTable:
    """Terms of every label and their categories (module docstring).

    Args:
        label_categories: {label: Counter of categories over the manifest rows with that label}.
        synonyms: extra phrases per label (default `SYNONYMS`).
    """

    def __init__(self, label_categories: Mapping[str, Mapping[str, int]],
                 synonyms: Mapping[str, Sequence[str]] | None = None) -> None:
        synonyms = SYNONYMS if synonyms is None else synonyms
        self.label_categories = {label: dict(c) for label, c in label_categories.items()}
        self.terms: dict[str, set[tuple[str, ...]]] = {}
        owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for label in self.label_categories:
            terms = {tuple(words(t)) for t in (label, *synonyms.get(label, ()))}
            terms.discard(())
            self.terms[label] = terms
            for term in terms:
                owners[term].add(label)
        self.owners = {term: tuple(sorted(labels)) for term, labels in owners.items()}
        self.term_category: dict[tuple[str, ...], str] = {}
        for term, labels in self.owners.items():
            counts: Counter[str] = Counter()
            for label in labels:
                counts.update(self.label_categories[label])
            self.term_category[term] = min(counts, key=lambda c: (-counts[c], c))
        self._by_first: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for term in self.owners:
            self._by_first[term[0]].append(term)
        for terms in self._by_first.values():
            terms.sort(key=lambda t: (-len(t), t))  # longest first at each start

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]], synonyms: Mapping[str, Sequence[str]] | None = None) -> LabelTable:
        """The table of manifest rows (their `label` and `category`)."""
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for row in rows:
            label, category = row.get("label"), row.get("category")
            if isinstance(label, str) and label.strip() and isinstance(category, str):
                counts[label.strip()][category] += 1
        if not counts:
            raise ValueError("no rows with a label and a category")
        return cls(counts, synonyms)

    def matches(self, caption: str) -> list[Match]:
        """Every term occurrence in `caption`, in order of start (longest first at a start)."""
        ws = words(caption)
        out = []
        for i, w in enumerate(ws):
            for term in self._by_first.get(w, ()):
                if tuple(ws[i : i + len(term)]) == term:
                    out.append(Match(term, i, self.owners[term], self.term_category[term]))
        return out

    def first(self, caption: str) -> Match | None:
        """The caption's first term (earliest start, then longest), or None (unmatched)."""
        found = self.matches(caption)
        return found[0] if found else None

    def category(self, caption: str) -> str | None:
        """The caption's category (step 4), or None when no term matches."""
        match = self.first(caption)
        return None if match is None else match.category

    def names_label(self, caption: str, label: str) -> bool:
        """Whether any term of `label` appears in `caption` (step 3). An unknown label matches by its own words."""
        terms = self.terms.get(label) or {tuple(words(label))}
        ws = words(caption)
        return any(tuple(ws[i : i + len(t)]) == t for t in terms if t for i in range(len(ws) - len(t) + 1))

    def judge(self, caption: str, label: str, category: str) -> dict[str, object]:
        """Everything the report records about one caption of a clip with `label` and `category`."""
        match = self.first(caption)
        empty = not caption.strip()
        return {"empty": empty, "matched": match is not None,
                "term": " ".join(match.term) if match else None,
                "predicted_category": match.category if match else None,
                "category_correct": match is not None and match.category == category,
                "label_correct": self.names_label(caption, label)}


__all__ = ["IRREGULAR", "RULE_VERSION", "SYNONYMS", "LabelTable", "Match", "fold", "words"]
