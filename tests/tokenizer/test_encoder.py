import pytest
import torch

from lmmsn.tokenizer.blocks import TransformerBlock
from lmmsn.tokenizer.encoder import CausalEncoder, EncoderConfig


def tiny_encoder(layers: int = 2) -> CausalEncoder:
    torch.manual_seed(0)
    return CausalEncoder(EncoderConfig(dim=16, num_layers=layers, num_heads=2, ffn_dim=32), latent_dim=8, out_dim=4)


def test_shapes():
    enc = tiny_encoder()
    assert enc(torch.randn(3, 11, 8)).shape == (3, 11, 4)


@pytest.mark.parametrize("t", [0, 5, 9])
def test_causal_by_gradient(t):
    """Output frame t has zero gradient w.r.t. every input frame > t, non-zero for frames <= t."""
    enc = tiny_encoder()
    x = torch.randn(2, 10, 8, requires_grad=True)
    enc(x)[:, t].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 2))  # [T]
    assert torch.all(grad[t + 1 :] == 0)
    assert torch.all(grad[: t + 1] > 0)


def test_bidirectional_block_is_not_causal():
    """The same block run non-causally does look ahead (the causal test above can fail)."""
    torch.manual_seed(0)
    block = TransformerBlock(16, 2, 32, causal=False)
    block.reset_parameters()
    x = torch.randn(1, 6, 16, requires_grad=True)
    block(x)[:, 0].sum().backward()
    assert x.grad[:, 1:].abs().sum() > 0


def test_padding_does_not_change_valid_frames():
    enc = tiny_encoder()
    x = torch.randn(1, 12, 8)
    y = x.clone()
    y[:, 8:] = 100.0  # garbage in the padded tail
    assert torch.allclose(enc(x)[:, :8], enc(y)[:, :8], atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"dim": 15, "num_heads": 2}, {"dim": 12, "num_heads": 4}, {"num_layers": 0}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        EncoderConfig(**kwargs)


@pytest.mark.parametrize("chunk", [1, 7, 16, 100])
@pytest.mark.parametrize("residual", [False, True])
def test_chunked_encode_with_a_cache_equals_one_pass(chunk, residual):
    """Long audio: the causal encoder in chunks over a key/value cache gives the one-pass output."""
    torch.manual_seed(0)
    enc = CausalEncoder(EncoderConfig(dim=32, num_layers=3, num_heads=4, ffn_dim=64, residual=residual), latent_dim=8,
                        out_dim=6).eval()
    for p in enc.parameters():  # non-zero everywhere (the residual variant starts its projection at 0)
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 45, 8)
    with torch.no_grad():
        whole = enc(x)
    assert torch.allclose(enc.forward_chunked(x, chunk), whole, atol=1e-5)
    with pytest.raises(ValueError, match="chunk_frames"):
        enc.forward_chunked(x, 0)


def test_tokenizer_chunked_codes_equal_one_pass_codes():
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny")).eval()
    latents = torch.randn(1, 300, tok.latent_dim)
    assert torch.equal(tok.encode_latents(latents, chunk_frames=64), tok.encode_latents(latents))
