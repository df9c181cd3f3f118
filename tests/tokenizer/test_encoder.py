import pytest
import torch

from lmmsn.blocks import TransformerBlock
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
