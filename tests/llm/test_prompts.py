"""Prompt formats: Vicuna v1.1 golden strings, label masks, pretraining pair order, OpenAQA."""

from __future__ import annotations

import random

import pytest
import torch

from lmmsn.llm.prompts import (
    IGNORE_INDEX,
    VICUNA_SYSTEM,
    chat_prompt,
    draw_audio_first,
    openaqa_messages,
    render_chat,
    render_pretraining,
    tokenize_rendered,
)
from lmmsn.llm.tiny import build_tiny_tokenizer
from lmmsn.llm.vocabulary import AudioVocabulary

V = AudioVocabulary(32, 1000)


def test_vicuna_template_golden():
    assert VICUNA_SYSTEM == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions."
    )
    messages = [
        {"role": "user", "content": "<audio>\nWhat is this?"},
        {"role": "assistant", "content": "A dog barks."},
        {"from": "human", "value": "Make it rain."},
    ]
    got = chat_prompt(messages, V, [[3, 1]])
    assert got == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <soa><a_3><a_1><eoa>\n"
        "What is this? ASSISTANT: A dog barks.</s>USER: Make it rain. ASSISTANT:"
    )
    assert chat_prompt([{"role": "user", "content": "Hi"}]) == VICUNA_SYSTEM + " USER: Hi ASSISTANT:"
    closed = chat_prompt([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    assert closed == VICUNA_SYSTEM + " USER: Hi ASSISTANT: Yo</s>"


def test_chat_errors():
    with pytest.raises(ValueError, match="alternate"):
        chat_prompt([{"role": "assistant", "content": "x"}])
    with pytest.raises(ValueError, match="placeholder"):
        chat_prompt([{"role": "user", "content": "<audio> <audio>"}], V, [[1]])
    with pytest.raises(ValueError, match="left without"):
        chat_prompt([{"role": "user", "content": "no clip"}], V, [[1]])


def test_only_replies_are_labels():
    tokenizer = build_tiny_tokenizer()
    voc = AudioVocabulary.extend(tokenizer, 32)
    messages = [{"role": "user", "content": "<audio>\nWhat is it?"}, {"role": "assistant", "content": "Rain falls."},
                {"role": "user", "content": "And?"}, {"role": "assistant", "content": "Thunder."}]
    rendered = render_chat(messages, voc, [[5, 6, 7]])
    example = tokenize_rendered(rendered, tokenizer)
    assert torch.equal(example.input_ids, torch.tensor(tokenizer(rendered.text).input_ids))
    kept = example.labels[example.labels != IGNORE_INDEX].tolist()
    eos = tokenizer.eos_token_id
    assert kept.count(eos) == 2 and kept[-1] == eos
    assert tokenizer.decode(kept, skip_special_tokens=True) == "Rain falls.Thunder."
    assert voc.soa_id not in kept  # the audio clip is in the (masked) prompt


def test_pretraining_order_is_seeded_and_both_orders_occur():
    draws = [draw_audio_first(random.Random(7), 0.5) for _ in range(3)]
    assert len(set(draws)) == 1
    rng_a, rng_b = random.Random(3), random.Random(3)
    seq_a = [draw_audio_first(rng_a, 0.5) for _ in range(64)]
    assert seq_a == [draw_audio_first(rng_b, 0.5) for _ in range(64)]
    assert 16 < sum(seq_a) < 48
    assert not any(draw_audio_first(random.Random(i), 0.0) for i in range(20))
    text_first = render_pretraining("a dog", [1, 2], V, audio_first=False)
    audio_first = render_pretraining("a dog", [1, 2], V, audio_first=True)
    assert text_first.text == "a dog <soa><a_1><a_2><eoa></s>"
    assert audio_first.text == "<soa><a_1><a_2><eoa> a dog</s>"
    assert text_first.target_spans == [(0, len(text_first.text))]


def test_openaqa_record():
    record = {"instruction": "What animal is heard?", "input": "", "output": "A dog.", "audio_id": "x.wav"}
    messages = openaqa_messages(record)
    assert messages == [{"role": "user", "content": "<audio>\nWhat animal is heard?"},
                        {"role": "assistant", "content": "A dog."}]
    with pytest.raises(ValueError, match="instruction"):
        openaqa_messages({"output": "x"})
