"""audio_lm_loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from lmmsn.llm.losses import (
    IGNORE_INDEX,
    LossConfig,
    TrainableRowsHead,
    audio_lm_loss,
    linear_audio_lm_loss,
    output_head_weight,
    plain_ce,
)

AUDIO = range(4, 6)  # ids 4 and 5 are audio tokens in a 7-token vocabulary (6 = <eoa>: weight 1)


def _hand(logits, targets, weights, coef, normalize):
    ces, zs = [], []
    for row, t in zip(logits, targets, strict=True):
        log_z = math.log(sum(math.exp(x) for x in row))
        ces.append(log_z - row[t])
        zs.append(log_z**2)
    denom = sum(weights) if normalize == "weights" else len(ces)
    ce = sum(w * c for w, c in zip(weights, ces, strict=True)) / denom
    return ce, coef * sum(zs) / len(zs), ces


@pytest.mark.parametrize("normalize", ["tokens", "weights"])
def test_weighting_and_z_loss_match_hand_computation(normalize):
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7, dtype=torch.float64)
    labels = torch.tensor([[0, 4, IGNORE_INDEX, 6, 5]])  # targets (shifted): 4, masked, 6, 5
    settings = LossConfig(audio_weight=10.0, z_loss_coef=0.5, normalize=normalize)
    out = audio_lm_loss(logits, labels, AUDIO, settings)
    rows = [logits[0, 0].tolist(), logits[0, 2].tolist(), logits[0, 3].tolist()]
    ce, z, ces = _hand(rows, [4, 6, 5], [10.0, 1.0, 10.0], 0.5, normalize)
    assert out.ce.item() == pytest.approx(ce, rel=1e-6)
    assert out.z_loss.item() == pytest.approx(z, rel=1e-6)
    assert out.total.item() == pytest.approx(ce + z, rel=1e-6)
    assert out.text_loss.item() == pytest.approx(ces[1], rel=1e-6)
    assert out.audio_loss.item() == pytest.approx((ces[0] + ces[2]) / 2, rel=1e-6)
    hits = [int(torch.argmax(logits[0, 0])) == 4, int(torch.argmax(logits[0, 3])) == 5]
    assert out.audio_accuracy.item() == pytest.approx(sum(hits) / 2)
    assert (int(out.num_text), int(out.num_audio)) == (1, 2)


def test_examples_normalisation_weighs_every_example_the_same_by_hand():
    torch.manual_seed(2)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    labels = torch.tensor([[0, 4, 5, 4, 6],  # a generation-like reply: targets 4, 5, 4 (audio), 6
                           [0, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])  # a one-token text answer
    out = audio_lm_loss(logits, labels, AUDIO, LossConfig(audio_weight=10.0, z_loss_coef=0.0, normalize="examples"))
    _, _, first = _hand([logits[0, i].tolist() for i in range(4)], [4, 5, 4, 6], [1] * 4, 0.0, "tokens")
    _, _, second = _hand([logits[1, 0].tolist()], [1], [1], 0.0, "tokens")
    per_example = [sum(w * c for w, c in zip([10, 10, 10, 1], first, strict=True)) / 4, second[0]]
    assert out.ce.item() == pytest.approx(sum(per_example) / 2, rel=1e-6)
    tokens = audio_lm_loss(logits, labels, AUDIO, LossConfig(audio_weight=10.0, z_loss_coef=0.0))
    assert tokens.ce.item() == pytest.approx((sum(w * c for w, c in zip([10, 10, 10, 1], first, strict=True))
                                              + second[0]) / 5, rel=1e-6)


def test_examples_normalisation_of_a_packed_batch_equals_the_padded_one():
    from lmmsn.llm.data import collate
    from lmmsn.llm.packing import collate_packed
    from lmmsn.llm.prompts import Example

    g = torch.Generator().manual_seed(3)
    examples = []
    for n, prompt in ((9, 3), (4, 2), (12, 8), (6, 1)):
        ids = torch.randint(1, 7, (n,), generator=g)
        labels = ids.clone()
        labels[:prompt] = IGNORE_INDEX
        examples.append(Example(ids, labels))
    padded, packed = collate(examples, pad_id=0), collate_packed(examples, pad_id=0, capacity=16)
    assert packed["input_ids"].shape[0] < len(examples)
    table = torch.randn(7, 7, generator=g, dtype=torch.float64)  # logits depend on the token only: alike in both layouts

    def loss(batch, positions):
        return audio_lm_loss(table[batch["input_ids"]], batch["labels"], AUDIO,
                             LossConfig(audio_weight=10.0, z_loss_coef=0.0, normalize="examples"), positions).ce
    assert loss(packed, packed["position_ids"]).item() == pytest.approx(loss(padded, None).item(), rel=1e-6)
    assert loss(packed, None).item() != pytest.approx(loss(padded, None).item(), rel=1e-3)  # rows are not examples here


def test_audio_weight_scales_audio_gradient_only():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 7, requires_grad=True)
    labels = torch.tensor([[0, 5, 1]])  # position 0 -> audio target, position 1 -> text target
    grads = []
    for weight in (1.0, 10.0):
        logits.grad = None
        audio_lm_loss(logits, labels, AUDIO, LossConfig(audio_weight=weight, z_loss_coef=0.0)).total.backward()
        grads.append(logits.grad.clone())
    torch.testing.assert_close(grads[1][0, 0], 10 * grads[0][0, 0])
    torch.testing.assert_close(grads[1][0, 1], grads[0][0, 1])


def test_all_masked_gives_zero_with_gradient_path():
    logits = torch.randn(2, 4, 7, requires_grad=True)
    out = audio_lm_loss(logits, torch.full((2, 4), IGNORE_INDEX), AUDIO)
    assert out.total.item() == 0.0 and out.total.requires_grad


def test_unit_weights_equal_torch_cross_entropy_with_ignored_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, requires_grad=True)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = IGNORE_INDEX  # prompt tokens
    labels[2, 5:] = IGNORE_INDEX  # padding
    out = audio_lm_loss(logits, labels, range(5, 9), LossConfig(audio_weight=1.0, z_loss_coef=0.0))
    reference = plain_ce(logits, labels)
    assert torch.allclose(out.total, reference, atol=1e-6)
    (g_ours,) = torch.autograd.grad(out.total, logits)
    (g_ref,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-7)


# ---- chunked linear cross-entropy ----------------------------------------------------------------


def _linear_case(seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 9, 8, generator=g, dtype=dtype, requires_grad=True)  # [B, L, D]
    weight = torch.randn(13, 8, generator=g, dtype=dtype, requires_grad=True)  # [V, D]
    labels = torch.randint(0, 13, (3, 9), generator=g)
    labels[0, :3] = IGNORE_INDEX  # a prompt
    labels[2, 6:] = IGNORE_INDEX  # padding
    labels[1, 2:5] = torch.tensor([7, 8, 9])  # audio targets for sure
    return hidden, weight, labels


@pytest.mark.parametrize("chunk_size", [0, 1, 4, 7, 100])
@pytest.mark.parametrize("normalize", ["tokens", "weights", "examples"])
def test_chunked_linear_loss_equals_full_logits_in_value_and_gradient(chunk_size, normalize):
    audio = range(7, 11)
    settings = LossConfig(audio_weight=10.0, z_loss_coef=0.3, normalize=normalize, chunk_size=chunk_size)
    hidden, weight, labels = _linear_case(0)
    full = audio_lm_loss(hidden @ weight.T, labels, audio, settings)
    ours = linear_audio_lm_loss(hidden, weight, labels, audio, settings)
    for name in ("total", "ce", "z_loss", "text_loss", "audio_loss", "audio_accuracy", "num_text", "num_audio"):
        torch.testing.assert_close(getattr(ours, name).double(), getattr(full, name).double(), rtol=1e-9,
                                   atol=1e-12, msg=name)
    assert float(ours.num_audio) >= 3 and float(ours.z_loss) > 0
    ref = torch.autograd.grad(full.total, (hidden, weight))
    got = torch.autograd.grad(ours.total, (hidden, weight))
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert got[0][0, :2].abs().sum() == 0  # positions whose target is ignored get no gradient
    assert got[0][0, 2].abs().sum() > 0


def test_chunked_linear_loss_backward_of_a_part_and_frozen_weight():
    """Only CE (no z-loss path) and a frozen head: the gradient of each output is right alone."""
    audio = range(7, 11)
    settings = LossConfig(z_loss_coef=0.0, chunk_size=5)
    hidden, weight, labels = _linear_case(1)
    weight = weight.detach()
    full = audio_lm_loss(hidden @ weight.T, labels, audio, settings)
    ours = linear_audio_lm_loss(hidden, weight, labels, audio, settings)
    (ref,) = torch.autograd.grad(full.ce, hidden)
    (got,) = torch.autograd.grad(ours.ce, hidden)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_chunked_linear_loss_float32_and_bfloat16_autocast_close_to_full():
    hidden, weight, labels = _linear_case(2, torch.float32)
    settings = LossConfig(chunk_size=4)
    full = audio_lm_loss(hidden @ weight.T, labels, range(7, 11), settings)
    ours = linear_audio_lm_loss(hidden, weight, labels, range(7, 11), settings)
    torch.testing.assert_close(ours.total, full.total, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full_bf = audio_lm_loss(torch.nn.functional.linear(hidden, weight), labels, range(7, 11), settings)
        ours_bf = linear_audio_lm_loss(hidden, weight, labels, range(7, 11), settings)
    torch.testing.assert_close(ours_bf.total, full_bf.total, rtol=1e-3, atol=1e-3)
    g_ref = torch.autograd.grad(full_bf.total, (hidden, weight))
    g_got = torch.autograd.grad(ours_bf.total, (hidden, weight))
    for a, b in zip(g_got, g_ref, strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert (a - b).norm() / b.norm() < 2e-2


@pytest.mark.parametrize("rows", [[9, 10, 11, 12], [2, 11, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]],
                         ids=["span", "scattered", "all"])
@pytest.mark.parametrize("chunk_size", [0, 1, 4, 100])
@pytest.mark.parametrize("base_trains", [False, True])
def test_trainable_rows_head_equals_full_logits_of_the_merged_matrix(rows, chunk_size, base_trains):
    """Frozen base + trainable rows (peft's trainable tokens): value and every gradient that trains.

    Both sides compute the loss in float32 (by design), summed in a different order (ours runs
    the last position with an ignored target): equal to float32 rounding, not bit for bit.
    """
    audio = range(7, 11)
    settings = LossConfig(audio_weight=10.0, z_loss_coef=0.3, chunk_size=chunk_size)
    hidden, weight, labels = _linear_case(3)
    base = weight.detach().requires_grad_(base_trains)
    g = torch.Generator().manual_seed(4)
    delta = torch.randn(len(rows), base.shape[1], generator=g, dtype=base.dtype, requires_grad=True)
    head = TrainableRowsHead(base, rows, delta)
    merged = base.index_copy(0, torch.tensor(rows), delta)  # what peft's forward multiplies by
    full = audio_lm_loss(hidden @ merged.T, labels, audio, settings)
    ours = linear_audio_lm_loss(hidden, head, labels, audio, settings)
    for name in ("total", "ce", "z_loss", "text_loss", "audio_loss", "audio_accuracy"):
        torch.testing.assert_close(getattr(ours, name), getattr(full, name), rtol=1e-6, atol=1e-7, msg=name)
    inputs = (hidden, delta, base) if base_trains else (hidden, delta)
    ref = torch.autograd.grad(full.total, inputs)
    got = torch.autograd.grad(ours.total, inputs)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert got[1].abs().sum() > 0
    if base_trains:  # the replaced rows reach no logit: zero, as through index_copy
        assert got[2][rows].abs().sum() == 0
        assert len(rows) == base.shape[0] or got[2].abs().sum() > 0


def test_trainable_rows_head_frozen_base_gets_no_gradient():
    hidden, weight, labels = _linear_case(5)
    base = weight.detach()
    delta = torch.randn(3, base.shape[1], dtype=base.dtype, requires_grad=True)
    out = linear_audio_lm_loss(hidden, TrainableRowsHead(base, [10, 11, 12], delta), labels, range(7, 11),
                               LossConfig(chunk_size=4))
    out.total.backward()
    assert base.grad is None and delta.grad is not None and hidden.grad is not None


def test_trainable_rows_head_rejects_bad_rows():
    base = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="delta must be"):
        TrainableRowsHead(base, [3, 4], torch.zeros(3, 2))
    with pytest.raises(ValueError, match="distinct"):
        TrainableRowsHead(base, [3, 3], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="distinct"):
        TrainableRowsHead(base, [4, 5], torch.zeros(2, 2))


def test_output_head_weight_of_an_audio_lm_gives_its_logits(tmp_path):
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.tiny import write_tiny_base

    lm = AudioLM.from_base(write_tiny_base(tmp_path / "base"), 16, LoraConfig(r=2, alpha=4, dropout=0.0))
    adapter = lm.model.get_base_model().get_output_embeddings().token_adapter
    with torch.no_grad():  # trained new rows differ from the base rows they replace
        adapter.trainable_tokens_delta[adapter.active_adapters[0]].add_(1.0)
    head = output_head_weight(lm.model)
    # The recipe's head: frozen text rows, the new rows as a trainable delta (no [V, D] gradient).
    assert isinstance(head, TrainableRowsHead)
    assert not head.base.requires_grad and head.delta.requires_grad
    assert list(head.rows) == lm.vocabulary.new_ids and head.span() is not None
    ids = torch.randint(0, lm.vocabulary.size, (2, 6))
    out = lm.model(input_ids=ids, output_hidden_states=True)
    hidden = lm.model.get_base_model().model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(hidden @ head.merged().T, out.logits, rtol=1e-5, atol=1e-5)


def test_llm_module_chunked_loss_equals_full_logits_loss(tmp_path):
    """The training step's default (chunked) path: same loss and same LoRA / new-row gradients."""
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.tiny import write_tiny_base
    from lmmsn.training.llm_module import AudioLMModule, TrainLLMConfig

    torch.manual_seed(0)
    lm = AudioLM.from_base(write_tiny_base(tmp_path / "base"), 16, LoraConfig(r=2, alpha=4, dropout=0.0))
    ids = torch.randint(0, lm.vocabulary.size, (2, 12))
    labels = ids.clone()
    labels[:, :3] = IGNORE_INDEX
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    results = []
    for chunk in (0, 5):
        config = TrainLLMConfig(loss=LossConfig(chunk_size=chunk, z_loss_coef=0.01))
        module = AudioLMModule(lm, config)
        params = lm.trainable_parameters()
        out = module.loss(batch)
        grads = torch.autograd.grad(out.total, list(params.values()))
        results.append((out, dict(zip(params, grads, strict=True))))
    assert isinstance(output_head_weight(lm.model), TrainableRowsHead)  # chunk 5: chunked, new rows only
    (full, g_full), (chunked, g_chunked) = results
    torch.testing.assert_close(chunked.total, full.total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.audio_accuracy, full.audio_accuracy)
    nonzero = {name for name, grad in g_full.items() if grad.abs().sum() > 0}
    assert any("lm_head" in name for name in nonzero)  # the new head rows get a gradient
    assert any("lora_B" in name for name in nonzero)  # LoRA (lora_A's is 0 while lora_B is zero-init)
    for name, grad in g_full.items():
        torch.testing.assert_close(g_chunked[name], grad, rtol=1e-4, atol=1e-6, msg=name)
