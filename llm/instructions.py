"""Instruction dialogues built from a labelled corpus' metadata (caption, category, label, transcript).

The demo model's fine-tuning data (paper Sec. 3.2, stage 2, on our open corpus
instead of OpenAQA): every clip of a manifest row (`caption`, `category`,
`label`, optional `transcript`) gets several alternative dialogues, each a
question about the clip and its answer, or a generation request with the clip
as the assistant's reply:

    caption     "<audio>\\n<caption question>"              -> caption
    category    "<audio>\\n<category question>"             -> "<category name>."
    label       "<audio>\\n<label question for the category>" -> label
    transcript  "<audio>\\n<transcription question>"        -> transcript   (speech with a transcript)
    generate    "<generation request with the caption>"     -> "<audio>"    (audio in the assistant turn)

Several phrasings per question type (drawn per clip from a seeded RNG), so the
model does not learn one wording; the pipeline's defaults (`CAPTION_INSTRUCTION`,
`GENERATE_INSTRUCTION` of `lmmsn.llm.prompts`) are always among them, because
`Pipeline.caption` / `Pipeline.generate` ask with them. The stage-0 text base
(`lmmsn.training.text_base`) trains on the same phrasings, so they are
in-vocabulary for its BPE tokenizer.

The dialogues use the `{"role", "content"}` form that `lmmsn.llm.prompts.render_chat`
reads, with `AUDIO_PLACEHOLDER` where the clip goes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from lmmsn.llm.prompts import AUDIO_PLACEHOLDER, CAPTION_INSTRUCTION, GENERATE_INSTRUCTION

CAPTION_QUESTIONS = (
    CAPTION_INSTRUCTION,
    "What is this sound?",
    "What can be heard in this recording?",
    "Write a short caption for this audio.",
    "What do you hear?",
)
"Questions whose answer is the clip's caption; the first is `Pipeline.caption`'s default."
CATEGORY_QUESTIONS = (
    "What category of sound is this?",
    "What kind of sound is this?",
    "Is this speech, music, an instrument, an animal, a human sound, an environmental sound or an electronic sound?",
)
"Questions whose answer is the category's name (`CATEGORY_NAMES`)."
LABEL_QUESTIONS = (
    "What is the sound source?",
    "Name the sound in a few words.",
    "What is making this sound?",
)
"Questions whose answer is the clip's label (any category)."
CATEGORY_LABEL_QUESTIONS = {
    "animal": ("What animal is this?", "Which animal makes this sound?"),
    "music_instrument": ("Which instrument is playing?", "What instrument is this?"),
}
"Extra label questions for categories whose label is a kind of thing (an animal, an instrument)."
TRANSCRIPT_QUESTIONS = (
    "Transcribe the speech.",
    "What does the voice say?",
    "Write down what is said.",
)
"Questions whose answer is the transcript (speech clips with one)."
GENERATION_REQUESTS = (
    GENERATE_INSTRUCTION,
    "Make the sound of {prompt}.",
    "Create audio of {prompt}.",
    "Produce this sound: {prompt}",
)
"User messages asking for audio ({prompt}: the caption); the first is `Pipeline.generate`'s."
CATEGORY_NAMES = {
    "animal": "an animal sound",
    "electronic": "an electronic sound",
    "environment": "an environmental sound",
    "human_sounds": "a human sound",
    "human_vocal_music": "vocal music",
    "music": "music",
    "music_instrument": "a musical instrument",
    "speech": "speech",
}
"How a category is said in answers (the open corpus' categories; others are said as written, '_' as ' ')."
KINDS = ("caption", "category", "label", "transcript", "generate")
"Dialogue kinds, in the order `clip_dialogues` writes them."


def category_name(category: str) -> str:
    """The answer naming `category` (`CATEGORY_NAMES`, else the name with '_' as ' ')."""
    return CATEGORY_NAMES.get(category, category.replace("_", " "))


def _question(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{AUDIO_PLACEHOLDER}\n{question}"}, {"role": "assistant", "content": answer}]


def _text(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def clip_dialogues(
    meta: Mapping[str, Any], rng: random.Random, kinds: tuple[str, ...] = KINDS
) -> list[list[dict[str, str]]]:
    """The alternative dialogues of one clip, one per kind it has the metadata for (module docstring).

    Args:
        meta: the clip's metadata: `caption` (or the first of `captions`), `category`,
            `label`, `transcript`; missing fields skip their kinds.
        rng: draws each question's phrasing.
        kinds: which kinds to write (`KINDS` order is kept).

    Returns:
        A list of dialogues (possibly empty), each two messages.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown dialogue kinds {sorted(unknown)}; known: {list(KINDS)}")
    captions = meta.get("captions")
    caption = _text(meta, "caption") or next((c.strip() for c in captions or [] if isinstance(c, str) and c.strip()), None)
    category, label, transcript = _text(meta, "category"), _text(meta, "label"), _text(meta, "transcript")
    out: list[list[dict[str, str]]] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        if kind == "caption" and caption:
            out.append(_question(rng.choice(CAPTION_QUESTIONS), caption))
        elif kind == "category" and category:
            out.append(_question(rng.choice(CATEGORY_QUESTIONS), category_name(category) + "."))
        elif kind == "label" and label and category != "speech":  # a speech clip's label is its category
            questions = LABEL_QUESTIONS + CATEGORY_LABEL_QUESTIONS.get(category or "", ())
            out.append(_question(rng.choice(questions), label))
        elif kind == "transcript" and transcript and category == "speech":
            out.append(_question(rng.choice(TRANSCRIPT_QUESTIONS), transcript))
        elif kind == "generate" and caption:
            request = rng.choice(GENERATION_REQUESTS).format(prompt=caption)
            out.append([{"role": "user", "content": request}, {"role": "assistant", "content": AUDIO_PLACEHOLDER}])
    return out


def all_phrasings() -> list[str]:
    """Every question and request template (with '{prompt}' left in), for the text base's corpus."""
    extra = [q for qs in CATEGORY_LABEL_QUESTIONS.values() for q in qs]
    return [*CAPTION_QUESTIONS, *CATEGORY_QUESTIONS, *LABEL_QUESTIONS, *extra, *TRANSCRIPT_QUESTIONS,
            *GENERATION_REQUESTS]


__all__ = [
    "CAPTION_QUESTIONS",
    "CATEGORY_LABEL_QUESTIONS",
    "CATEGORY_NAMES",
    "CATEGORY_QUESTIONS",
    "GENERATION_REQUESTS",
    "KINDS",
    "LABEL_QUESTIONS",
    "TRANSCRIPT_QUESTIONS",
    "all_phrasings",
    "category_name",
    "clip_dialogues",
]
