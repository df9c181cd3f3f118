"""lmmsn.llm.audio_init: audio rows from the tokenizer's codebook keep its geometry, text rows untouched."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lmmsn.llm.audio_init import codebook_vectors, init_audio_rows, projected
from lmmsn.llm.model import AudioLM, LoraConfig
from lmmsn.llm.tiny import write_tiny_base

K = 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_tiny_base(tmp_path_factory.mktemp("base") / "tiny")


def _effective(lm: AudioLM) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output rows as the peft model computes them (delta written in)."""
    ids = torch.arange(lm.vocabulary.size)
    with torch.no_grad():
        emb = lm.model.get_input_embeddings()(ids[None])[0]
        hidden = torch.eye(emb.shape[1])[None]
        head = lm.model.get_output_embeddings()(hidden)[0].T  # [V, H]: column j of W^T is row j
    return emb, head


def test_rows_keep_the_codebook_geometry_and_the_text_rows(base):
    g = torch.Generator().manual_seed(1)
    vectors = torch.randn(K, 8, generator=g) * torch.linspace(0.5, 3, 8)  # [K, d], d < width
    torch.manual_seed(0)
    plain = AudioLM.from_base(base, K, LoraConfig(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(0)
    lm = AudioLM.from_base(base, K, LoraConfig(r=4, alpha=8, dropout=0.0), audio_vectors=vectors)
    voc = lm.vocabulary
    audio = slice(voc.first_audio_id, voc.first_audio_id + K)
    for (e, h), (pe, ph) in [(_effective(lm), _effective(plain))]:
        for mat, ref in ((e, pe), (h, ph)):
            assert torch.equal(mat[: voc.first_audio_id], ref[: voc.first_audio_id])  # text rows untouched
            assert torch.equal(mat[voc.soa_id], ref[voc.soa_id]) and torch.equal(mat[voc.eoa_id], ref[voc.eoa_id])
            rows = mat[audio]
            z = (vectors - vectors.mean(0)) / vectors.std(0)
            ratio = torch.cdist(rows, rows)[~torch.eye(K, dtype=bool)] / torch.cdist(z, z)[~torch.eye(K, dtype=bool)]
            assert ratio.std() / ratio.mean() < 1e-4  # distances between codes: the codebook's, one scale
            text = mat[: voc.first_audio_id]
            spread = (text - text.mean(0)).norm(dim=1).mean()
            assert (rows - text.mean(0)).norm(dim=1).mean() == pytest.approx(float(spread), rel=1e-4)
    # mean resizing gives no such structure: its audio distances do not follow the codebook's
    pe = _effective(plain)[0][audio]
    r = torch.cdist(pe, pe)[~torch.eye(K, dtype=bool)] / torch.cdist(vectors, vectors)[~torch.eye(K, dtype=bool)]
    assert r.std() / r.mean() > 0.1


def test_wider_codebook_than_the_model_still_projects_orthonormally():
    y = projected(torch.randn(K, 100, generator=torch.Generator().manual_seed(0)), 16)
    assert y.shape == (K, 16) and torch.isfinite(y).all()


def test_codebook_file_errors_and_size_mismatch(tmp_path, base):
    with pytest.raises(FileNotFoundError, match="tokenizer export"):
        codebook_vectors(tmp_path / "nope")
    save_file({"other": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="quantizer.embed"):
        codebook_vectors(tmp_path)
    save_file({"quantizer.embed": torch.randn(K + 1, 4)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="33 codes"):
        AudioLM.from_base(base, K, LoraConfig(r=4, alpha=8, dropout=0.0), audio_vectors=codebook_vectors(tmp_path))


def test_recipe_reads_model_audio_init(tmp_path, base):
    from lmmsn.training.llm_module import LLMModelConfig, build_audio_lm

    vectors = torch.randn(K, 4, generator=torch.Generator().manual_seed(3))
    save_file({"quantizer.embed": vectors}, str(tmp_path / "model.safetensors"))
    lm = build_audio_lm(LLMModelConfig(base_model=str(base), codebook_size=K, dtype="float32",
                                       lora=LoraConfig(r=4, alpha=8, dropout=0.0), audio_init=str(tmp_path)))
    rows = _effective(lm)[0][lm.vocabulary.first_audio_id:][:K]
    assert torch.corrcoef(torch.stack([torch.pdist(rows), torch.pdist((vectors - vectors.mean(0)) / vectors.std(0))]))[0, 1] > 0.999


def test_init_writes_only_audio_rows_of_a_plain_model(base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmmsn.llm.vocabulary import AudioVocabulary

    model = AutoModelForCausalLM.from_pretrained(base)
    voc = AudioVocabulary.extend(AutoTokenizer.from_pretrained(base), K)
    model.resize_token_embeddings(voc.size)
    before = model.get_input_embeddings().weight.detach().clone()
    init_audio_rows(model, voc, torch.randn(K, 6))
    after = model.get_input_embeddings().weight.detach()
    changed = (after != before).any(1).nonzero().flatten()
    assert changed.tolist() == list(voc.audio_ids)
