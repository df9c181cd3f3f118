"""Prompt formats: Vicuna v1.1 golden strings, label masks with three tokenizer families, prompts = training prefixes."""

from __future__ import annotations

import random

import pytest
import torch

from lmmsn.llm.prompts import (
    CAPTION_INSTRUCTION,
    IGNORE_INDEX,
    VICUNA_SYSTEM,
    caption_messages,
    caption_prompt,
    chat_prompt,
    draw_audio_first,
    generation_messages,
    generation_prompt,
    openaqa_messages,
    render_chat,
    render_pretraining,
    token_labels,
    tokenize_rendered,
)
from lmmsn.llm.vocabulary import AudioVocabulary
from tests.llm.text_tokenizers import KINDS, build_text_tokenizer, pieces

V = AudioVocabulary(32, 1000)


@pytest.fixture(scope="module", params=KINDS)
def text_tok(request):
    """(tokenizer, vocabulary) of one tokenizer family, extended with 32 audio tokens."""
    tokenizer = build_text_tokenizer(request.param)
    return tokenizer, AudioVocabulary.extend(tokenizer, 32)


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
    continued = chat_prompt([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<soa>"}],
                            continue_final_message=True)
    assert continued == VICUNA_SYSTEM + " USER: Hi ASSISTANT: <soa>"


def test_chat_errors():
    with pytest.raises(ValueError, match="alternate"):
        chat_prompt([{"role": "assistant", "content": "x"}])
    with pytest.raises(ValueError, match="placeholder"):
        chat_prompt([{"role": "user", "content": "<audio> <audio>"}], V, [[1]])
    with pytest.raises(ValueError, match="left without"):
        chat_prompt([{"role": "user", "content": "no clip"}], V, [[1]])
    with pytest.raises(ValueError, match="continue_final_message"):
        chat_prompt([{"role": "user", "content": "x"}], continue_final_message=True)


def test_token_labels_any_character_in_a_span():
    spans = [(5, 10)]
    offsets = [(0, 0), (3, 5), (4, 6), (9, 12), (10, 12), (7, 7), (10, 10)]
    assert token_labels(offsets, spans) == [False, False, True, True, False, True, False]


def test_replies_are_labels_from_their_first_token(text_tok):
    """Every reply token, the first one ("▁A" / "ĠA") and the lone space before <soa> included; no prompt token."""
    tokenizer, voc = text_tok
    messages = [{"role": "user", "content": "<audio>\nWhat is the sound?"}, {"role": "assistant", "content": "A dog barks."},
                {"role": "user", "content": "Generate audio of: dog barking"}, {"role": "assistant", "content": "<audio>"}]
    rendered = render_chat(messages, voc, [[5, 6, 7], [1, 2]])
    example = tokenize_rendered(rendered, tokenizer)
    assert torch.equal(example.input_ids, torch.tensor(tokenizer(rendered.text).input_ids))
    kept = example.labels[example.labels != IGNORE_INDEX].tolist()
    assert pieces(tokenizer, kept) == " A dog barks.</s> <soa><a_1><a_2><eoa></s>"
    assert kept.count(tokenizer.eos_token_id) == 2 and voc.soa_id in kept and kept.count(voc.soa_id) == 1


@pytest.mark.parametrize("which", ["caption", "generation", "caption-pretrain", "generation-pretrain"])
def test_inference_prompt_is_the_training_render_cut_where_the_model_takes_over(text_tok, which):
    """Token for token: prompt ids = the training example's first ids; after them every token is a target."""
    tokenizer, voc = text_tok
    codes = [4, 9, 2]
    if which == "caption":
        prompt = caption_prompt(codes, voc)
        rendered = render_chat(caption_messages("A dog barks."), voc, [codes])
    elif which == "generation":
        prompt = generation_prompt("dog barking")
        rendered = render_chat(generation_messages("dog barking"), voc, [codes])
    elif which == "caption-pretrain":
        prompt = caption_prompt(codes, voc, style="pretrain")
        rendered = render_pretraining("a dog barks", codes, voc, audio_first=True)
    else:
        prompt = generation_prompt("dog barking", style="pretrain")
        rendered = render_pretraining("dog barking", codes, voc, audio_first=False)
    assert rendered.text.startswith(prompt)
    prompt_ids = tokenizer(prompt).input_ids
    example = tokenize_rendered(rendered, tokenizer)
    n = len(prompt_ids)
    assert example.input_ids[:n].tolist() == prompt_ids
    assert (example.labels[n:] == example.input_ids[n:]).all()  # all the model writes after the prompt is learned
    if which.startswith("generation"):
        assert prompt_ids[-1] == voc.soa_id
    if which == "caption":  # the chat prompt itself is never learned (pretraining pairs learn everything)
        assert (example.labels[:n] == IGNORE_INDEX).all()
        assert prompt.endswith("ASSISTANT:") and CAPTION_INSTRUCTION in prompt


def test_pretraining_every_token_but_bos_is_a_target(text_tok):
    tokenizer, voc = text_tok
    for audio_first in (False, True):
        example = tokenize_rendered(render_pretraining("A dog barks", [3, 1], voc, audio_first), tokenizer)
        assert example.labels[0] == IGNORE_INDEX and example.input_ids[0] == tokenizer.bos_token_id
        assert torch.equal(example.labels[1:], example.input_ids[1:])


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


def test_generation_and_caption_conversations():
    assert generation_messages("rain") == [{"role": "user", "content": "Generate audio of: rain"},
                                           {"role": "assistant", "content": "<audio>"}]
    assert caption_messages("A dog.", "What is it?") == [{"role": "user", "content": "<audio>\nWhat is it?"},
                                                         {"role": "assistant", "content": "A dog."}]
    assert generation_prompt("rain") == VICUNA_SYSTEM + " USER: Generate audio of: rain ASSISTANT: <soa>"
    with pytest.raises(ValueError, match="style"):
        generation_prompt("rain", style="alpaca")


def test_openaqa_record():
    record = {"instruction": "What animal is heard?", "input": "", "output": "A dog.", "audio_id": "x.wav"}
    messages = openaqa_messages(record)
    assert messages == [{"role": "user", "content": "<audio>\nWhat animal is heard?"},
                        {"role": "assistant", "content": "A dog."}]
    with pytest.raises(ValueError, match="instruction"):
        openaqa_messages({"output": "x"})
