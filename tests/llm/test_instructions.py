"""Instruction dialogues from corpus metadata (lmmsn.llm.instructions)."""

from __future__ import annotations

import random

import pytest
import torch

from lmmsn.llm import instructions as ins
from lmmsn.llm.prompts import (
    AUDIO_PLACEHOLDER,
    CAPTION_INSTRUCTION,
    GENERATE_INSTRUCTION,
    render_chat,
)
from lmmsn.llm.vocabulary import AudioVocabulary

FROG = {"captions": ["a frog croaks"], "category": "animal", "label": "frog"}
SPEECH = {"captions": ['a voice says in Spanish: "Una rana."'], "category": "speech", "label": "speech",
          "transcript": "Una rana."}


def test_kinds_follow_the_metadata_in_order():
    frog = ins.clip_dialogues(FROG, random.Random(0))
    assert [d[-1]["content"] for d in frog] == ["a frog croaks", "an animal sound.", "frog", AUDIO_PLACEHOLDER]
    speech = ins.clip_dialogues(SPEECH, random.Random(0))
    # a speech clip's label is its category: no label question; its transcript is asked instead
    assert [d[-1]["content"] for d in speech] == [SPEECH["captions"][0], "speech.", "Una rana.", AUDIO_PLACEHOLDER]
    (only,) = ins.clip_dialogues({"category": "animal"}, random.Random(0))  # no caption, label, transcript
    assert only[0]["content"].startswith(f"{AUDIO_PLACEHOLDER}\n") and only[1]["content"] == "an animal sound."
    assert ins.clip_dialogues({}, random.Random(0)) == []


def test_questions_come_from_the_phrasing_tables_and_vary():
    asked = {ins.clip_dialogues(FROG, random.Random(s))[0][0]["content"] for s in range(40)}
    assert asked == {f"{AUDIO_PLACEHOLDER}\n{q}" for q in ins.CAPTION_QUESTIONS}  # every phrasing, nothing else
    requests = {ins.clip_dialogues(FROG, random.Random(s))[-1][0]["content"] for s in range(40)}
    assert requests == {r.format(prompt="a frog croaks") for r in ins.GENERATION_REQUESTS}
    labels = {ins.clip_dialogues(FROG, random.Random(s))[2][0]["content"].split("\n")[1] for s in range(60)}
    assert labels == set(ins.LABEL_QUESTIONS + ins.CATEGORY_LABEL_QUESTIONS["animal"])


def test_the_pipeline_defaults_are_trained_phrasings():
    assert ins.CAPTION_QUESTIONS[0] == CAPTION_INSTRUCTION and ins.GENERATION_REQUESTS[0] == GENERATE_INSTRUCTION
    assert CAPTION_INSTRUCTION in ins.all_phrasings() and GENERATE_INSTRUCTION in ins.all_phrasings()


def test_same_rng_same_dialogues_and_unknown_kinds_fail():
    assert ins.clip_dialogues(FROG, random.Random(3)) == ins.clip_dialogues(FROG, random.Random(3))
    assert [d[-1]["content"] for d in ins.clip_dialogues(FROG, random.Random(0), ("label",))] == ["frog"]
    with pytest.raises(ValueError, match="unknown dialogue kinds"):
        ins.clip_dialogues(FROG, random.Random(0), ("captions",))


def test_generation_dialogue_puts_the_clip_in_the_assistant_target():
    vocabulary = AudioVocabulary(8, 100)
    dialogue = ins.clip_dialogues(FROG, random.Random(0), ("generate",))[0]
    rendered = render_chat(dialogue, vocabulary, [torch.tensor([1, 2, 3])], add_generation_prompt=False)
    span = vocabulary.format_audio(torch.tensor([1, 2, 3]))
    (start, end), = rendered.target_spans
    assert span in rendered.text[start:end] and rendered.text[:start].count("<soa>") == 0


def test_category_names():
    assert ins.category_name("music_instrument") == "a musical instrument"
    assert ins.category_name("new_kind") == "new kind"
