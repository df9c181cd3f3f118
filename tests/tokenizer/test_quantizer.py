import pytest
import torch

from lmmsn.tokenizer.quantizer import QuantizerConfig, VectorQuantizer


def make(update: str = "ema", **kwargs) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(QuantizerConfig(codebook_size=32, dim=4, update=update, **kwargs))


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_encode_decode_forward_agree_in_eval(update):
    vq = make(update)
    vq.train()
    vq(torch.randn(4, 16, 4))  # initialise the codebook from data
    vq.eval()
    x = torch.randn(3, 7, 4)
    before = vq.embed.clone()
    out = vq(x)
    codes = vq.encode(x)
    assert codes.shape == (3, 7) and codes.dtype == torch.int64
    assert torch.equal(out.codes, codes)
    assert torch.equal(vq.decode(codes), out.quantized)
    assert torch.equal(vq.embed, before)  # eval never updates the codebook
    # nearest neighbour, by brute force
    dist = ((x[..., None, :] - vq.embed) ** 2).sum(-1)  # [B, T, K]
    assert torch.equal(codes, dist.argmin(-1))


def test_straight_through_gradient_reaches_input():
    vq = make(dead_code_fraction=0.0)  # keep the random codebook: quantized != x
    x = torch.randn(2, 5, 4, requires_grad=True)
    out = vq(x)
    assert not torch.equal(out.quantized, x)
    out.quantized.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # identity gradient through quantization


def test_first_step_initialises_codebook_from_data_and_ema_tracks_it():
    vq = make(dead_code_fraction=0.5, ema_decay=0.5)
    data = torch.randn(2, 64, 4) + 10.0  # far away from the N(0, 1) random init
    out = vq(data)
    assert out.replaced >= 16  # all codes start dead (zero counts); only codes given >= 2 vectors survive
    assert vq.embed.mean() > 8.0
    assert out.loss < 1.0  # every vector is now close to a data point
    assert out.perplexity == 1.0  # step 1 statistics: every vector went to the code nearest +10
    for _ in range(5):
        out = vq(data)
    assert out.perplexity > 4.0 and 4 / 32 < out.used_fraction <= 1  # spread over the re-initialised codes


def test_dead_codes_are_replaced_by_batch_vectors():
    vq = make(dead_code_fraction=0.5, ema_decay=0.9)
    vq.cluster_size.fill_(10.0)
    vq.cluster_size[3] = 0.0  # code 3 is dead
    x = torch.randn(1, 8, 4)
    out = vq(x)
    assert out.replaced >= 1
    assert (vq.embed[3][None] - x[0]).abs().sum(-1).min() < 1e-6  # now equals one of the batch vectors


def test_mask_excludes_padding_from_statistics_and_updates():
    vq = make(dead_code_fraction=0.0)
    vq.eval()
    x = torch.randn(1, 10, 4)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[:, :5] = True
    vq.train()
    out = vq(x, mask)
    assert torch.isclose(vq.cluster_size.sum(), torch.tensor(5 * (1 - 0.99)))
    padded = vq(torch.cat([x[:, :5], torch.full((1, 5, 4), 1e3)], 1), mask)
    assert torch.isfinite(padded.loss) and padded.loss < 1e3  # padding ignored by the loss
    assert out.used_fraction <= 5 / 32


def test_loss_mode_trains_the_codebook_by_gradient():
    vq = make("loss", dead_code_fraction=0.0)
    assert isinstance(vq.embed, torch.nn.Parameter)
    out = vq(torch.randn(2, 6, 4))
    out.loss.backward()
    assert vq.embed.grad is not None and vq.embed.grad.abs().sum() > 0


def test_out_of_range_codes_are_rejected():
    with pytest.raises(ValueError, match="codes must lie"):
        make().decode(torch.tensor([[0, 32]]))


def test_dead_threshold_scales_with_frames_per_code_so_a_uniform_codebook_never_churns():
    """The churn the absolute threshold caused: 550 frames per step, K = 1024, every code used uniformly."""
    torch.manual_seed(0)
    k, frames = 1024, 550
    vq = VectorQuantizer(QuantizerConfig(codebook_size=k, dim=8, dead_code_fraction=0.1))
    vq.embed.copy_(torch.randn(k, 8) * 10)
    restarts, active = [], []
    for step in range(300):
        codes = torch.arange(step * frames, (step + 1) * frames) % k  # round-robin: uniform use
        x = vq.embed[codes][None] + 0.01 * torch.randn(1, frames, 8)
        out = vq(x)
        if step >= 150:  # past the warm-up of the EMA counts
            restarts.append(out.replaced)
            active.append(float(out.active_fraction))
    assert sum(restarts) == 0
    assert min(active) == 1.0
    # The old rule (absolute count 1.0) would have called almost every code dead.
    assert float((vq.cluster_size < 1.0).float().mean()) > 0.9


def test_restarted_codes_do_not_count_as_active_and_get_a_grace_period():
    vq = make(dead_code_fraction=0.1, ema_decay=0.9)
    vq.cluster_size.fill_(10.0)
    vq.cluster_size[:4] = 0.0  # 4 of 32 codes dead
    out = vq(torch.randn(1, 8, 4))
    assert out.replaced >= 4
    assert float(out.active_fraction) <= 28 / 32  # measured before the restart
    assert torch.all(vq.cluster_size[:4] > vq.dead_threshold())  # not dead again at the next step


def test_tokenizer_training_step_compiles_without_graph_breaks():
    """Issue 16 'one graph': no data-dependent shapes or host syncs in the training loss (the quantizer's
    masked statistics and dead-code replacement were 12 graph breaks)."""
    import torch._dynamo as dynamo

    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny")).train()
    latents = torch.randn(2, 40, tok.latent_dim)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    dynamo.reset()
    explained = dynamo.explain(lambda lat, m: tok.compute_loss(lat, m).loss)(latents, mask)
    assert explained.graph_break_count == 0, [str(b.reason).splitlines()[0] for b in explained.break_reasons]
    assert explained.graph_count == 1
