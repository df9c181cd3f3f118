"""Issue 16 'one graph': the LLM step's forward + loss (full logits and chunked) traces with 0 graph breaks."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("normalize", ["tokens", "examples"])
@pytest.mark.parametrize("chunked", [False, True])
def test_llm_forward_and_loss_compile_without_graph_breaks(tmp_path, chunked, normalize):
    import torch._dynamo as dynamo

    from lmmsn.llm.losses import LossConfig, audio_lm_loss, linear_audio_lm_loss, output_head_weight
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.tiny import write_tiny_base

    lm = AudioLM.from_base(write_tiny_base(tmp_path / "tiny"), 32, LoraConfig(r=4, alpha=8, dropout=0.0))
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :3] = -100
    mask = torch.ones_like(ids)
    audio = lm.vocabulary.audio_ids

    def step(ids, mask, labels):
        if not chunked:
            logits = lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            return audio_lm_loss(logits, labels, audio, LossConfig(normalize=normalize)).total
        hidden = lm.model.get_base_model().model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        return linear_audio_lm_loss(hidden, output_head_weight(lm.model), labels, audio, LossConfig(chunk_size=16, normalize=normalize)).total

    dynamo.reset()
    explained = dynamo.explain(step)(ids, mask, labels)
    assert explained.graph_break_count == 0, [str(b.reason).splitlines()[0] for b in explained.break_reasons]
