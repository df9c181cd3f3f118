"""Stage 0 of the demo model (lmmsn.training.text_base): text tokenizer, corpus, training, export, resume."""

from __future__ import annotations

import json

import pytest
import torch

from lmmsn.config import load_config
from lmmsn.training import text_base as tb

ROWS = [
    {"caption": "a frog croaks", "category": "animal", "label": "frog"},
    {"caption": "a snare drum hit", "category": "music_instrument", "label": "snare drum"},
    {"caption": 'a voice says in Russian: "Жаба."', "category": "speech", "label": "speech", "transcript": "Жаба."},
    {"caption": "a wolf howls", "category": "animal", "label": "wolf"},
    {"caption": "rain falls", "category": "environment", "label": "rain"},
    {"caption": "a kick drum hit", "category": "music_instrument", "label": "kick drum"},
]
TINY = ["tokenizer.vocab_size=320", "model.hidden_size=32", "model.num_hidden_layers=1", "model.intermediate_size=64",
        "model.num_attention_heads=2", "model.num_key_value_heads=2", "corpus.batch_size=4", "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1", "optim.warmup_steps=1", "corpus.val_fraction=0.1",
        "optim.min_lr_ratio=1.0"]  # constant after warm-up: the first half of a resumed run has the same schedule


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return tb.corpus_documents(ROWS, chat_renders=2, seed=0)


def test_corpus_holds_texts_and_text_only_chat_renders(docs):
    from lmmsn.llm.instructions import all_phrasings
    from lmmsn.llm.prompts import VICUNA_SYSTEM

    assert "a frog croaks</s>" in docs and "Жаба.</s>" in docs
    chats = [d for d in docs if d.startswith(VICUNA_SYSTEM)]
    assert chats and all("<audio>" not in d for d in docs)
    assert any(d.endswith("ASSISTANT: a frog croaks</s>") for d in chats)
    requests = [d for d in chats if d.endswith("ASSISTANT:")]  # generation requests: no text reply
    assert requests and all(any(r["caption"] in d for r in ROWS) for d in requests)
    asked = {d.split("USER: ", 1)[1].split(" ASSISTANT:")[0] for d in chats}
    assert asked & set(all_phrasings())
    assert tb.corpus_documents(ROWS, 2, seed=0) == docs and tb.corpus_documents(ROWS, 2, seed=1) != docs


def test_text_tokenizer_is_llama_style(docs):
    tokenizer = tb.train_text_tokenizer(docs, tb.TextTokenizerConfig(vocab_size=400))
    vocab = tokenizer.get_vocab()
    assert [vocab[t] for t in tb.SPECIAL_TOKENS] == [0, 1, 2, 3] and vocab["<0x00>"] == 4 and vocab["<0xFF>"] == 259
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (3, 1, 2)
    ids = tokenizer("A chat between")["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[0] == "<s>" and pieces[1].startswith("▁")  # SentencePiece-style word-initial pieces
    text = "a 狗 barks 🐕"  # characters never seen: spelled in byte pieces, decoded back
    encoded = tokenizer(text)["input_ids"]
    assert "<unk>" not in tokenizer.convert_ids_to_tokens(encoded) and "<0xE7>" in tokenizer.convert_ids_to_tokens(encoded)
    assert tokenizer.decode(encoded, skip_special_tokens=True) == text
    assert len(tokenizer) <= 400


def test_first_reply_token_is_a_target_with_this_tokenizer(docs):
    from lmmsn.llm.prompts import IGNORE_INDEX, render_chat, tokenize_rendered

    tokenizer = tb.train_text_tokenizer(docs, tb.TextTokenizerConfig(vocab_size=400))
    rendered = render_chat([{"role": "user", "content": "What is this sound?"},
                            {"role": "assistant", "content": "a frog croaks"}], add_generation_prompt=False)
    example = tokenize_rendered(rendered, tokenizer)
    targets = [t for t, lab in zip(example.input_ids.tolist(), example.labels.tolist(), strict=True) if lab != IGNORE_INDEX]
    assert tokenizer.decode(targets) == "a frog croaks</s>"


def _config(tmp_path, name, *extra):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return load_config(tb.TextBaseConfig, tb.__file__.replace("lmmsn/training/text_base.py", "recipes/configs/llm/demo_base.yaml"),
                       [f"corpus.manifests=[{manifest}]", f"output_dir={tmp_path / name}", *TINY, *extra])


def test_tiny_run_learns_exports_an_hf_base_and_resumes_exactly(tmp_path):
    from transformers import AutoModelForCausalLM

    from lmmsn.llm.model import AudioLM, LoraConfig

    straight = tb.run(_config(tmp_path, "straight", "trainer.max_steps=8", "trainer.checkpoint_every_n_steps=4",
                              "trainer.val_every_n_steps=4"))
    (metrics,) = (tmp_path / "straight").glob("logs/*/metrics.csv")
    import csv

    losses = [float(r["train/loss"]) for r in csv.DictReader(metrics.open()) if r.get("train/loss")]
    assert losses[-1] < losses[0] and "val/loss" in straight.metrics
    info = json.loads((straight.export / tb.EXPORT_INFO).read_text())
    assert info["steps"] == 8 and info["rows"] == len(ROWS) and info["text_tokens"] <= 320
    model = AutoModelForCausalLM.from_pretrained(straight.export)
    assert model.config.hidden_size == 32 and not model.config.tie_word_embeddings
    lm = AudioLM.from_base(straight.export, 16, LoraConfig(r=2, alpha=4, dropout=0.0))
    assert lm.vocabulary.first_audio_id == model.config.vocab_size and len(lm.text_tokenizer) == lm.vocabulary.size

    tb.run(_config(tmp_path, "resumed", "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=4"))
    resumed = tb.run(_config(tmp_path, "resumed", "trainer.max_steps=8", "trainer.checkpoint_every_n_steps=4"))
    assert json.loads((resumed.export / tb.EXPORT_INFO).read_text())["steps"] == 8
    again = AutoModelForCausalLM.from_pretrained(resumed.export).state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again[name], value, msg=name)


def test_config_errors():
    with pytest.raises(ValueError):
        tb.TextModelConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError):
        tb.TextTokenizerConfig(vocab_size=100)
    with pytest.raises(ValueError):
        tb.TextCorpusConfig(manifests=[])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tb.read_manifest_rows(["/nonexistent/train.jsonl"])


def test_demo_base_config_loads_and_names_its_command():
    from pathlib import Path

    path = Path(tb.__file__).parents[2] / "recipes/configs/llm/demo_base.yaml"
    assert path.read_text().splitlines()[0].startswith("# .venv/bin/python recipes/train_text_base.py --config "
                                                       "recipes/configs/llm/demo_base.yaml")
    cfg = load_config(tb.TextBaseConfig, path)
    assert cfg.model.hidden_size % cfg.model.num_attention_heads == 0 and cfg.tokenizer.vocab_size >= 1000
