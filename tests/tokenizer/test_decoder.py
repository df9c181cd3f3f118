import torch

from lmmsn.tokenizer.decoder import DecoderConfig, DiTDecoder, timestep_embedding


def tiny_decoder() -> DiTDecoder:
    torch.manual_seed(0)
    return DiTDecoder(DecoderConfig(dim=16, num_layers=2, num_heads=2, ffn_dim=32, timestep_dim=32), latent_dim=8, cond_dim=4)


def randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(1)
    for p in module.parameters():
        p.data.normal_(0, 0.3)


def test_adaln_zero_init_outputs_zero_and_timestep_embedding_shape():
    dec = tiny_decoder()
    out = dec(torch.randn(2, 7, 8), torch.rand(2), torch.randn(2, 7, 4))
    assert out.shape == (2, 7, 8)
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-Zero + zero output projection
    emb = timestep_embedding(torch.tensor([0.0, 0.5]), 256)
    assert emb.shape == (2, 256)
    assert torch.equal(emb[0, :128], torch.ones(128)) and torch.equal(emb[0, 128:], torch.zeros(128))


def test_depends_on_time_condition_and_whole_sequence():
    dec = tiny_decoder()
    randomise(dec)
    x, q = torch.randn(1, 6, 8), torch.randn(1, 6, 4)
    base = dec(x, torch.tensor([0.2]), q)
    assert not torch.allclose(base, dec(x, torch.tensor([0.7]), q))
    q2 = q.clone()
    q2[:, -1] += 1.0
    assert not torch.allclose(base[:, 0], dec(x, torch.tensor([0.2]), q2)[:, 0])  # non-causal: frame 0 sees the last code


def test_masked_frames_do_not_affect_valid_ones():
    dec = tiny_decoder()
    randomise(dec)
    x, q = torch.randn(2, 9, 8), torch.randn(2, 9, 4)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    y, q2 = x.clone(), q.clone()
    y[1, 5:] = 50.0
    q2[1, 5:] = -50.0
    t = torch.rand(2)
    a, b = dec(x, t, q, mask), dec(y, t, q2, mask)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert torch.allclose(a[0], b[0], atol=1e-5)
    assert torch.isfinite(b).all()
