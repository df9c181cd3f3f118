"""Constrained decoding (lmmsn/generation.py) on a tiny random Llama with a made-up id layout."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmmsn.generation import (
    AudioSpanConstraint,
    AudioSpanLogitsProcessor,
    SamplingConfig,
    audio_token_budget,
    sample,
)

# Made-up layout: 0 pad, 1 bos, 2 eos, 3..39 text, 40..61 audio codes, 62 <soa>, 63 <eoa>.
V, PAD, BOS, EOS = 64, 0, 1, 2
AUDIO = list(range(40, 62))
SOA, EOA = 62, 63
TEXT = list(range(3, 40))


@pytest.fixture(scope="module")
def llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
    )
    model = LlamaForCausalLM(config).eval()
    # Push the random model toward text tokens, so an unconstrained span would hold text.
    with torch.no_grad():
        model.lm_head.weight[TEXT] *= 4
    return model


def constraint(**kw) -> AudioSpanConstraint:
    return AudioSpanConstraint(soa_id=SOA, eoa_id=EOA, audio_ids=AUDIO, extra_forbidden_ids=[PAD], **kw)


def left_pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(map(len, rows))
    ids = torch.tensor([[PAD] * (L - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def run(model, rows, *, seed, max_new, temperature=1.0, eos=EOS, **kw):
    ids, mask = left_pad(rows)
    return sample(
        model, ids, mask, max_new_tokens=max_new, sampling=SamplingConfig(temperature=temperature),
        constraint=constraint(**kw), vocab_size=V, eos_token_id=eos, pad_token_id=PAD, seed=seed,
    )


def spans(seq: list[int]) -> list[list[int]]:
    """Contents of every audio span of `seq` (closed or still open at the end)."""
    out, cur = [], None
    for t in seq:
        if t == SOA and cur is None:
            cur = []
        elif t == EOA and cur is not None:
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(t)
    if cur is not None:
        out.append(cur)
    return out


def test_budget_matches_paper_frame_count():
    assert audio_token_budget(10, 44100 / 2048) == 215  # DESIGN.md: T = 215 for 10 s
    assert audio_token_budget(0.5, 125) == 62
    assert audio_token_budget(0.001, 10) == 1
    with pytest.raises(ValueError):
        audio_token_budget(0, 10)


def test_span_state_by_hand():
    proc = AudioSpanLogitsProcessor(constraint(max_tokens=3), V)
    ids = torch.tensor([
        [5, 6, SOA, 40, 41],            # inside, 2 written
        [5, SOA, 40, EOA, 7],           # closed
        [PAD, PAD, 5, 6, SOA],          # inside, none yet
        [SOA, 40, EOA, SOA, 40],        # second span, 1 written
    ])
    inside, count = proc.span_state(ids)
    assert inside.tolist() == [True, False, True, True]
    assert count.tolist()[0] == 2 and count.tolist()[2] == 0 and count.tolist()[3] == 1
    scores = proc(ids, torch.zeros(4, V))
    finite = torch.isfinite(scores)
    assert finite[0, AUDIO].all() and finite[0, EOA] and not finite[0, TEXT].any()
    assert not finite[1, AUDIO].any() and not finite[1, EOA] and finite[1, SOA] and finite[1, TEXT].all()
    assert not finite[2, EOA]  # min_tokens=1: a span may not close empty
    full = proc(torch.tensor([[SOA, 40, 41, 42]]), torch.zeros(1, V))
    assert torch.isfinite(full[0]).nonzero().flatten().tolist() == [EOA]  # max reached: only <eoa>


def test_no_text_inside_audio_spans_over_many_seeds(llama):
    """Property test: free generation (spans opened by the model or the prompt) over 16 seeds."""
    prompts = [[BOS, 5, 6, 7], [BOS, 9, SOA], [BOS, 5, SOA, 40, 41], [BOS, 11, 12, 13, 14, 15]]
    max_tokens = 6
    saw_span = 0
    for seed in range(16):
        new = run(llama, prompts, seed=seed, max_new=16, temperature=1.5, max_tokens=max_tokens, min_tokens=2)
        for prompt, row in zip(prompts, new.tolist(), strict=True):
            seq = prompt + row
            if EOS in row:  # everything after the row's end is padding
                seq = prompt + row[: row.index(EOS) + 1]
            assert PAD not in seq[1:], f"seed {seed}: pad sampled"
            for span in spans(seq):
                saw_span += 1
                assert all(t in AUDIO for t in span), f"seed {seed}: text inside a span: {seq}"
                assert len(span) <= max_tokens, f"seed {seed}: span longer than bound: {seq}"
            # Audio ids never appear outside spans; <eoa> never without an open span.
            depth = 0
            for t in seq:
                if t == SOA:
                    assert depth == 0
                    depth = 1
                elif t == EOA:
                    assert depth == 1, f"seed {seed}: stray <eoa>: {seq}"
                    depth = 0
                elif t in AUDIO:
                    assert depth == 1, f"seed {seed}: audio token outside a span: {seq}"
    assert saw_span >= 32  # the two prompts that open a span alone give 32


def test_unconstrained_model_would_break_the_property(llama):
    """The property test can fail: without the processor this model writes text inside spans."""
    ids, mask = left_pad([[BOS, 9, SOA]] * 8)
    with torch.inference_mode():
        torch.manual_seed(0)
        out = llama.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=True,
                             temperature=1.5, top_k=0, pad_token_id=PAD, eos_token_id=EOS)
    assert any(t in TEXT for t in out[:, 3:].flatten().tolist())


@pytest.mark.parametrize("max_tokens", [1, 5, 9])
def test_span_length_is_bounded_and_closed(llama, max_tokens):
    """A prompt ending in <soa>, <eoa> as stop token: exactly 1..max audio tokens then <eoa>."""
    for seed in range(5):
        new = run(llama, [[BOS, 9, SOA], [BOS, 4, 5, 6, SOA]], seed=seed, max_new=max_tokens + 1,
                  eos=EOA, max_tokens=max_tokens, min_tokens=max_tokens)
        for row in new.tolist():
            assert row[:max_tokens] == [t for t in row[:max_tokens] if t in AUDIO]
            assert len(row[:max_tokens]) == max_tokens and row[max_tokens] == EOA


def test_seed_reproducible_and_isolated(llama):
    rows = [[BOS, 9, SOA], [BOS, 4, 5, SOA]]
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = run(llama, rows, seed=7, max_new=8, max_tokens=8)
    after = torch.rand(3)
    b = run(llama, rows, seed=7, max_new=8, max_tokens=8)
    c = run(llama, rows, seed=8, max_new=8, max_tokens=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(before, after)  # a seeded call leaves the global RNG where it was


def test_kv_cached_generate_matches_full_recompute(llama):
    """Greedy `sample` (KV cache) equals a loop that re-runs the whole sequence each step."""
    prompt = [BOS, 5, 6, SOA]
    new = run(llama, [prompt], seed=0, max_new=7, temperature=0, eos=EOA, max_tokens=6)
    proc = AudioSpanLogitsProcessor(constraint(max_tokens=6), V)
    seq = torch.tensor([prompt])
    with torch.inference_mode():
        for _ in range(7):
            logits = llama(seq, use_cache=False).logits[:, -1]
            nxt = proc(seq, logits).argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
            if nxt.item() == EOA:
                break
    assert new[0, : seq.shape[1] - len(prompt)].tolist() == seq[0, len(prompt):].tolist()


def test_batched_greedy_equals_per_prompt(llama):
    """Left-padded batch vs. batch size 1, greedy, fp32 CPU (is the tiny model batch-invariant?)."""
    rows = [[BOS, 9, SOA], [BOS, 4, 5, 6, 7, 8, SOA], [BOS, 10, 11, SOA]]
    batched = run(llama, rows, seed=0, max_new=9, temperature=0, eos=EOA, max_tokens=8)
    for i, r in enumerate(rows):
        single = run(llama, [r], seed=0, max_new=9, temperature=0, eos=EOA, max_tokens=8)
        n = single.shape[1]
        assert batched[i, :n].tolist() == single[0].tolist()


# ---- our decoding loop ("lmmsn" engine) and classifier-free guidance ------------------------------


def run_engine(model, rows, *, engine, cache=None, sampling=None, seed=0, max_new=10, eos=EOS, uncond=None,
               compile_step=False, **kw):
    ids, mask = left_pad(rows)
    extra = {}
    if uncond is not None:
        extra["unconditional_ids"], extra["unconditional_mask"] = left_pad(uncond)
    return sample(model, ids, mask, max_new_tokens=max_new, sampling=sampling or SamplingConfig(),
                  constraint=constraint(**kw), vocab_size=V, eos_token_id=eos, pad_token_id=PAD, seed=seed,
                  cache_implementation=cache, engine=engine, compile_step=compile_step, **extra)


@pytest.mark.parametrize("cache", [None, "static"])
@pytest.mark.parametrize("sampling", [
    SamplingConfig(temperature=0),
    SamplingConfig(temperature=1.3),
    SamplingConfig(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.3),
])
def test_our_loop_writes_the_same_tokens_as_transformers_generate(llama, cache, sampling):
    """Same seed, same left-padded batch, same processors: token-identical to `model.generate`."""
    rows = [[BOS, 9, SOA], [BOS, 4, 5, 6, 7, 8], [BOS, 10, 11, SOA, 40]]
    for seed in range(3):
        theirs = run_engine(llama, rows, engine="transformers", cache=cache, sampling=sampling, seed=seed,
                            max_new=14, max_tokens=6, min_tokens=2)
        ours = run_engine(llama, rows, engine="lmmsn", cache=cache, sampling=sampling, seed=seed,
                          max_new=14, max_tokens=6, min_tokens=2)
        assert ours.tolist() == theirs.tolist(), f"seed {seed}"


def test_our_loop_stops_like_generate_when_every_row_ended(llama):
    rows = [[BOS, 9, SOA], [BOS, 4, 5, SOA]]
    ours = run_engine(llama, rows, engine="lmmsn", max_new=20, eos=EOA, max_tokens=3, min_tokens=1)
    theirs = run_engine(llama, rows, engine="transformers", max_new=20, eos=EOA, max_tokens=3, min_tokens=1)
    assert ours.shape[1] <= 4 and ours.tolist() == theirs.tolist()
    assert all(EOA in row for row in ours.tolist())


def test_guidance_scale_one_equals_plain_sampling(llama):
    rows, uncond = [[BOS, 9, 12, 13, SOA], [BOS, 4, 5, SOA]], [[BOS, SOA], [BOS, SOA]]
    for seed in range(3):
        plain = run_engine(llama, rows, engine="lmmsn", seed=seed, max_tokens=8)
        guided = run_engine(llama, rows, engine="lmmsn", seed=seed, max_tokens=8, uncond=uncond,
                            sampling=SamplingConfig(guidance_scale=1.0))
        assert guided.tolist() == plain.tolist()


def test_guidance_follows_its_formula_inside_spans(llama):
    """Greedy, scale 3: each audio token is argmax of cond + 2 (cond - uncond) over the allowed ids."""
    prompt, uncond, scale = [BOS, 9, 12, 13, SOA], [BOS, SOA], 3.0
    new = run_engine(llama, [prompt], engine="lmmsn", uncond=[uncond], max_new=6, eos=EOA, max_tokens=5,
                     sampling=SamplingConfig(temperature=0, guidance_scale=scale)).tolist()[0]
    plain = run_engine(llama, [prompt], engine="lmmsn", max_new=6, eos=EOA, max_tokens=5,
                       sampling=SamplingConfig(temperature=0)).tolist()[0]
    proc = AudioSpanLogitsProcessor(constraint(max_tokens=5), V)
    cond_seq, uncond_seq, expected = torch.tensor([prompt]), torch.tensor([uncond]), []
    with torch.inference_mode():
        for _ in range(len(new)):
            cond = llama(cond_seq).logits[:, -1]
            unc = llama(uncond_seq).logits[:, -1]
            token = proc(cond_seq, cond + (scale - 1) * (cond - unc)).argmax(-1, keepdim=True)
            expected.append(int(token))
            cond_seq, uncond_seq = torch.cat([cond_seq, token], 1), torch.cat([uncond_seq, token], 1)
    assert new == expected
    assert new != plain  # guidance changed the span on this model


def test_guidance_needs_unconditional_prompts(llama):
    with pytest.raises(ValueError, match="unconditional"):
        run_engine(llama, [[BOS, 9, SOA]], engine="lmmsn", sampling=SamplingConfig(guidance_scale=2.0))
    with pytest.raises(ValueError, match="engine='lmmsn'"):
        run_engine(llama, [[BOS, 9, SOA]], engine="transformers", uncond=[[BOS, SOA]],
                   sampling=SamplingConfig(guidance_scale=2.0))


def test_incremental_span_state_equals_recomputed_state():
    proc = AudioSpanLogitsProcessor(constraint(max_tokens=9), V)
    g = torch.Generator().manual_seed(0)
    seq = torch.tensor([[BOS, 5], [BOS, SOA], [SOA, 40], [PAD, BOS]])
    inside, count = proc.span_state(seq)
    for _ in range(40):
        token = torch.tensor([SOA, EOA, 40, 7])[torch.randint(0, 4, (4,), generator=g)]
        inside, count = proc.advance(token, inside, count)
        seq = torch.cat([seq, token[:, None]], 1)
        ref_inside, ref_count = proc.span_state(seq)
        assert inside.tolist() == ref_inside.tolist()
        assert count[inside].tolist() == ref_count[inside].tolist()


def test_the_compiled_step_writes_the_same_tokens_and_compiles_once(llama, monkeypatch):
    """compile_step: token-identical to the eager static loop (left padding, guidance), one compiled step per model."""
    import lmmsn.generation as generation

    compiles = []
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiles.append(kw) or real(fn, **kw))
    monkeypatch.setattr(generation, "_COMPILED", generation.weakref.WeakKeyDictionary())
    rows, uncond = [[BOS, 9, SOA], [BOS, 4, 5, 6, 7, 8]], [[BOS, SOA], [BOS, SOA]]
    sampling = SamplingConfig(temperature=1.3, guidance_scale=2.0)
    for seed in range(2):
        eager = run_engine(llama, rows, engine="lmmsn", cache="static", sampling=sampling, seed=seed, max_new=12,
                           max_tokens=6, min_tokens=2, uncond=uncond)
        compiled = run_engine(llama, rows, engine="lmmsn", cache="static", sampling=sampling, seed=seed, max_new=12,
                              max_tokens=6, min_tokens=2, uncond=uncond, compile_step=True)
        assert compiled.tolist() == eager.tolist(), f"seed {seed}"
    assert compiles == [{"dynamic": False}]  # the second call reused the first one's compiled step
    with pytest.raises(ValueError, match="static cache"):
        run_engine(llama, rows, engine="lmmsn", cache=None, max_new=4, compile_step=True)
