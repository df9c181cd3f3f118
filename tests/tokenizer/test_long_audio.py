"""Long audio (issue 16): chunked encoding of whole files, windowed decoding of clips longer than the decoder's training length."""

import pytest
import torch

from lmmsn.tokenizer.model import build_tokenizer, crossfade, tokenizer_config, window_starts


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config("tiny"), with_vae=False)
    model.train()
    model.compute_loss(torch.randn(2, 16, 8))  # codebook initialised from data
    return _context_dependent(model.eval())


def _context_dependent(model):
    # the DiT starts adaLN-zero (it outputs 0 whatever its context): give every weight a value,
    # so a frame's decode depends on the frames it attends to and windowing can change it
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def test_window_starts_cover_every_frame_and_end_at_the_last():
    assert window_starts(10, 16, 4) == [0]
    assert window_starts(40, 16, 4) == [0, 12, 24]
    assert window_starts(41, 16, 4) == [0, 12, 24, 25]
    for length in range(17, 90):
        starts = window_starts(length, 16, 4)
        covered = set().union(*(range(s, s + 16) for s in starts))
        assert covered == set(range(length)) and starts[-1] + 16 == length
        assert all(b - a <= 12 for a, b in zip(starts[:-1], starts[1:], strict=True))  # neighbours overlap by >= 4 frames


def test_crossfade_ramps_only_where_a_neighbour_meets():
    w = crossfade(8, 3, fade_in=True, fade_out=True)
    assert torch.allclose(w, torch.tensor([0.25, 0.5, 0.75, 1, 1, 0.75, 0.5, 0.25]))
    assert torch.equal(crossfade(8, 3, fade_in=False, fade_out=False), torch.ones(8))
    assert (crossfade(8, 0, True, True) == 1).all()


def test_a_clip_no_longer_than_the_window_decodes_exactly_as_one_pass(tiny):
    codes = torch.randint(0, tiny.codebook_size, (2, 20))
    one = tiny.decode_latents(codes, steps=2, generator=torch.Generator().manual_seed(3))
    win = tiny.decode_latents(codes, steps=2, generator=torch.Generator().manual_seed(3), window=20, overlap=4)
    assert torch.equal(one, win)


def test_windows_see_at_most_window_frames_and_blend_to_their_own_decodes(tiny, monkeypatch):
    codes = torch.randint(0, tiny.codebook_size, (1, 40))
    seen = []
    real = tiny.decoder.forward

    def spy(x, t, q, mask=None):
        seen.append(x.shape[1])
        return real(x, t, q, mask)

    monkeypatch.setattr(tiny.decoder, "forward", spy)
    out = tiny.decode_latents(codes, steps=2, generator=torch.Generator().manual_seed(5), window=16, overlap=4)
    assert out.shape == (1, 40, 8) and torch.isfinite(out).all()
    assert set(seen) == {16}  # never the whole 40 frames
    # frames only the first window covers at full weight equal that window decoded alone
    # from its slice of the one noise draw (starts 0, 12, 24: window 0 alone on frames 0..11)
    noise = torch.randn((1, 40, 8), generator=torch.Generator().manual_seed(5))
    first = tiny._decode_pass(codes[:, :16], 2, None, None, None, noise=noise[:, :16])
    assert torch.allclose(out[:, :12], first[:, :12], atol=1e-6)
    middle = tiny._decode_pass(codes[:, 12:28], 2, None, None, None, noise=noise[:, 12:28])
    assert torch.allclose(out[:, 16:24], middle[:, 4:12], atol=1e-6)  # window 1 alone at full weight
    # an overlap frame is the weighted mean of the two windows' decodes
    w0, w1 = crossfade(16, 4, False, True)[13], crossfade(16, 4, True, True)[1]
    assert torch.allclose(out[:, 13], (w0 * first[:, 13] + w1 * middle[:, 1]) / (w0 + w1), atol=1e-6)


def test_windowing_comes_from_the_config_and_bad_settings_are_refused(tiny):
    from dataclasses import replace

    with pytest.raises(ValueError, match="decode_overlap"):
        tokenizer_config("tiny", decode_window=8, decode_overlap=8)
    codes = torch.randint(0, tiny.codebook_size, (1, 30))
    with pytest.raises(ValueError, match="overlap"):
        tiny.decode_latents(codes, steps=1, window=8, overlap=9)
    old = tiny.config
    try:
        tiny.config = replace(old, decode_window=10, decode_overlap=2)
        a = tiny.decode_latents(codes, steps=1, generator=torch.Generator().manual_seed(1))
        b = tiny.decode_latents(codes, steps=1, generator=torch.Generator().manual_seed(1), window=10, overlap=2)
        c = tiny.decode_latents(codes, steps=1, generator=torch.Generator().manual_seed(1), window=30)
    finally:
        tiny.config = old
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_mse_objective_and_padded_batches_window_too():
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = tokenizer_config("tiny")
    model = _context_dependent(build_tokenizer(replace(cfg, flow=replace(cfg.flow, objective="mse")), with_vae=False).eval())
    codes = torch.randint(0, model.codebook_size, (2, 30))
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 10:] = False  # row 1 is all padding in the later windows
    out = model.decode_latents(codes, window=8, overlap=2, mask=mask)
    assert torch.isfinite(out).all()
    alone = model.decode_latents(codes[:1], window=8, overlap=2)
    assert torch.allclose(out[0], alone[0], atol=1e-6)  # the padded neighbour does not leak in


@pytest.mark.parametrize("length", [17, 40, 41, 57])
def test_windows_that_agree_blend_to_their_common_value(tiny, monkeypatch, length):
    # every window decodes to the same latent per frame: the blend must return it unchanged,
    # including where the last window overlaps its neighbour by more than `overlap`
    target = torch.randn(1, length, 8)
    calls = []

    def same(codes, steps, temperature, generator, mask, noise, method=None):
        start = next(s for s in window_starts(length, 16, 4) if s not in calls)
        calls.append(start)
        return target[:, start:start + codes.shape[1]]

    monkeypatch.setattr(tiny, "_decode_pass", same)
    out = tiny.decode_latents(torch.zeros(1, length, dtype=torch.long), window=16, overlap=4)
    assert calls == window_starts(length, 16, 4) and torch.allclose(out, target, atol=1e-6)


def test_long_waveforms_encode_in_chunks_to_the_one_pass_codes(monkeypatch):
    torch.manual_seed(0)
    model = build_tokenizer(tokenizer_config("tiny")).eval()
    wav = torch.randn(1, 1, 16000 * 3)
    whole = model.encode(wav, chunk_frames=None)
    used = []
    real = model.encoder.forward_chunked
    monkeypatch.setattr(model.encoder, "forward_chunked", lambda x, c: used.append((x.shape[1], c)) or real(x, c))
    chunked = model.encode(wav, chunk_frames=7)
    assert used == [(whole.shape[1], 7)] and whole.shape[1] > 7
    assert torch.equal(chunked, whole)
    used.clear()
    assert torch.equal(model.encode(wav, chunk_frames=whole.shape[1]), whole) and used == []  # short enough: one pass


def test_the_conditional_mean_decode_is_one_euler_step_from_the_source_mean(tiny):
    from lmmsn.tokenizer.flow import CONDITIONAL_MEAN

    codes = torch.randint(0, tiny.codebook_size, (2, 12))
    got = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(1), **CONDITIONAL_MEAN)
    again = tiny.decode_latents(codes, generator=torch.Generator().manual_seed(2), **CONDITIONAL_MEAN)
    assert torch.equal(got, again)  # no noise enters
    q = tiny.quantizer.decode(codes)
    x0 = tiny._source_mean(q)
    x0 = torch.zeros(*codes.shape, tiny.latent_dim) if x0 is None else x0
    with torch.no_grad():
        expected = tiny.denormalize(x0 + tiny._velocity(x0, torch.zeros(2), q, None))
    assert torch.allclose(got, expected, atol=1e-5)
    midpoint = tiny.decode_latents(codes, steps=1, temperature=0.0, method="midpoint")
    assert not torch.allclose(midpoint, got, atol=1e-3)  # the method override reaches the solver
