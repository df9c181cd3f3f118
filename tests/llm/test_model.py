"""AudioLM: only LoRA + new rows train, text rows stay bit-identical, save/load round trips."""

from __future__ import annotations

import pytest
import torch

from lmmsn.llm.losses import audio_lm_loss
from lmmsn.llm.model import AudioLM, LoraConfig
from lmmsn.llm.tiny import write_tiny_base

K = 32


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return write_tiny_base(tmp_path_factory.mktemp("tiny_base"))


@pytest.fixture(scope="module")
def trained(base_dir):
    """An AudioLM, its effective embedding/head matrices before and after one AdamW step."""
    torch.manual_seed(0)
    lm = AudioLM.from_base(base_dir, K, LoraConfig(r=4, alpha=8, dropout=0.0))
    before = _effective_rows(lm)
    params = list(lm.trainable_parameters().values())
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    voc = lm.vocabulary
    text = lm.text_tokenizer("a dog barks", add_special_tokens=True).input_ids
    ids = torch.tensor([text + voc.audio_span_ids(list(range(K)))])  # every new token appears
    labels = ids.clone()
    out = audio_lm_loss(lm(ids), labels, voc.audio_ids)
    out.total.backward()
    opt.step()
    return lm, before, _effective_rows(lm)


def _effective_rows(lm: AudioLM) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding and output matrices the model really uses ([V, D] each)."""
    model = lm.model
    vocab = model.get_input_embeddings().weight.shape[0] if hasattr(model.get_input_embeddings(), "weight") else None
    ids = torch.arange(vocab or len(lm.text_tokenizer))
    with torch.no_grad():
        embed = model.get_input_embeddings()(ids).clone()  # [V, D]
        eye = torch.eye(embed.shape[1])
        head = model.get_output_embeddings()(eye).T.clone()  # [V, D]
    return embed, head


def test_only_lora_and_new_rows_are_trainable(trained):
    lm, _, _ = trained
    names = list(lm.trainable_parameters())
    assert names, "nothing trains"
    for name in names:
        assert "lora_" in name or "trainable_tokens_delta" in name, name
    deltas = {n: p for n, p in lm.trainable_parameters().items() if "trainable_tokens_delta" in n}
    # one delta for embed_tokens and one for lm_head (the dict form wraps both)
    assert any("embed_tokens" in n for n in deltas) and any("lm_head" in n for n in deltas), list(deltas)
    for p in deltas.values():
        assert p.shape[0] == K + 2
    n_lora = sum("lora_" in n for n in names)
    n_linear = 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert n_lora == 2 * n_linear  # A and B each
    assert lm.vocabulary.eoa_id + 1 == len(lm.text_tokenizer)


def test_text_rows_frozen_and_new_rows_changed_after_step(trained):
    lm, (embed0, head0), (embed1, head1) = trained
    first = lm.vocabulary.first_audio_id
    assert torch.equal(embed0[:first], embed1[:first])
    assert torch.equal(head0[:first], head1[:first])
    new = slice(first, lm.vocabulary.eoa_id + 1)
    assert (embed0[new] != embed1[new]).any(dim=1).all(), "some new embedding row did not change"
    assert (head0[new] != head1[new]).any(dim=1).all(), "some new lm_head row did not change"


def test_save_load_identical_logits(trained, tmp_path):
    lm, _, _ = trained
    lm.model.eval()
    ids = torch.tensor([[1, 5, 9, *lm.vocabulary.audio_span_ids([3, 0, 31]), 7]])
    with torch.no_grad():
        ref = lm(ids)
    out = lm.save_pretrained(tmp_path / "export", merge=True)
    for name in ["config.yaml", "format_version", "audio_vocabulary.json", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors", "text_tokenizer/tokenizer.json", "merged/config.json"]:
        assert (out / name).is_file(), name
    loaded = AudioLM.from_pretrained(out)
    assert loaded.vocabulary == lm.vocabulary
    with torch.no_grad():
        got = loaded(ids)
    assert torch.equal(got, ref)
    merged = AudioLM.from_pretrained(out / "merged")
    with torch.no_grad():
        got_merged = merged(ids)
    torch.testing.assert_close(got_merged, ref, atol=1e-5, rtol=1e-5)
    lm.model.train()
