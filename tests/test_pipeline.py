"""lmmsn.pipeline / lmmsn.api: generate, caption and chat end to end from an exported tiny pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmmsn.audio import AudioError, load_audio, save_audio
from lmmsn.checkpoints import (
    DEFAULT_NAME,
    ENV_CHECKPOINT,
    ENV_HUB_ID,
    CheckpointNotFoundError,
    resolve_checkpoint,
)
from lmmsn.export import ExportError
from lmmsn.pipeline import GeneratedAudio, Pipeline
from tests.conftest import sine

FRAME = 128  # samples per token of the tiny VAE (16 kHz, 125 tokens/s)


def build_tiny_pipeline(directory: Path) -> Path:
    """Tiny random tokenizer (codebook 32) + tiny random Llama with LoRA, exported to `directory`."""
    from lmmsn.llm.model import AudioLM, LoraSettings
    from lmmsn.llm.tiny import write_tiny_base
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    with torch.random.fork_rng():
        torch.manual_seed(0)
        tok = build_tokenizer(tokenizer_config("tiny"))
        lm = AudioLM.from_base(write_tiny_base(directory / "base"), codebook_size=tok.codebook_size,
                               lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    return Pipeline(tok, lm).save_pretrained(directory / "pipe")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def pipe(exported) -> Pipeline:
    import lmmsn

    return lmmsn.load(str(exported), device="cpu")


def test_export_layout_and_lazy_import(exported, pipe):
    import lmmsn

    assert lmmsn.Pipeline is Pipeline
    with pytest.raises(AttributeError):
        lmmsn.no_such_name  # noqa: B018
    names = {p.name for p in exported.iterdir()}
    assert {"config.yaml", "format_version", "tokenizer", "llm"} <= names
    assert (exported / "tokenizer" / "model.safetensors").is_file()
    assert (exported / "llm" / "adapter" / "adapter_model.safetensors").is_file()
    assert pipe.device.type == "cpu" and next(pipe.lm.model.parameters()).dtype == torch.float32


def test_generate_end_to_end_and_save(pipe, tmp_path):
    clips = pipe.generate(["dog barking", "rain on a roof"], seconds=0.1, seed=0)
    assert len(clips) == 2
    for clip in clips:
        T = clip.codes.numel()
        assert 1 <= T <= 12  # floor(0.1 s * 125 tokens/s)
        assert clip.codes.min() >= 0 and clip.codes.max() < 32
        assert clip.waveform.shape == (2, T * FRAME) and torch.isfinite(clip.waveform).all()
        assert clip.sample_rate == 16000
    for ext in ("wav", "flac"):
        path = clips[0].save(tmp_path / f"dog.{ext}")
        wav, sr = load_audio(path)
        assert sr == 16000 and wav.shape == clips[0].waveform.shape
    single = pipe.generate("dog barking", seconds=0.1, seed=0)
    assert isinstance(single, GeneratedAudio)


def test_seconds_bounds_the_length(pipe):
    for seconds, tokens in [(0.05, 6), (0.1, 12)]:
        exact = pipe.generate("x", seconds=seconds, min_seconds=seconds, seed=1)
        assert exact.codes.numel() == tokens and exact.waveform.shape[-1] == tokens * FRAME
    for seed in range(4):
        assert pipe.generate("x", seconds=0.03, seed=seed).codes.numel() <= 3


def test_same_seed_same_audio(pipe):
    a = pipe.generate(["a dog", "a cat"], seconds=0.06, seed=3)
    b = pipe.generate(["a dog", "a cat"], seconds=0.06, seed=3)
    c = pipe.generate(["a dog", "a cat"], seconds=0.06, seed=4)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.codes, y.codes) and torch.equal(x.waveform, y.waveform)
    assert any(not torch.equal(x.waveform, z.waveform) for x, z in zip(a, c, strict=True))


def test_batched_equals_per_prompt_greedy(pipe):
    """Greedy LLM + deterministic ODE (temperature 0): a left-padded batch vs. batch size 1.

    Also measures how far the batched logits are from the per-prompt logits in fp32 on CPU.
    """
    prompts = ["dog", "a long prompt about heavy rain falling on a tin roof", "car engine"]
    kw = dict(seconds=0.08, temperature=0.0, ode_temperature=0.0, seed=0)
    batched = pipe.generate(prompts, **kw)
    for i, p in enumerate(prompts):
        single = pipe.generate(p, **kw)
        assert torch.equal(batched[i].codes, single.codes), f"prompt {i}"
        # Decoding is per clip and deterministic at ODE temperature 0: same codes -> same audio.
        assert torch.equal(batched[i].waveform, single.waveform)
    ids, mask = pipe._batch([pipe.generation_prompt(p) for p in prompts])
    with torch.inference_mode():
        logits_b = pipe.lm.model(input_ids=ids, attention_mask=mask).logits[:, -1]
        diffs = []
        for i in range(len(prompts)):
            keep = mask[i].bool()
            logits_1 = pipe.lm.model(input_ids=ids[i : i + 1, keep]).logits[:, -1]
            diffs.append((logits_b[i] - logits_1[0]).abs().max().item())
    print(f"\nbatch invariance (fp32 CPU): max |logit batched - single| per prompt = {diffs}")
    assert max(diffs) < 1e-4


def test_caption_paths_tensors_and_lists(pipe, tmp_path):
    wav = sine(0.1, 16000, channels=2)
    path = save_audio(tmp_path / "clip.wav", wav, 16000)
    text = pipe.caption(path, max_new_tokens=6)
    assert isinstance(text, str)
    both = pipe.caption([path, load_audio(path)[0]], max_new_tokens=6)
    assert isinstance(both, list) and len(both) == 2 and both[0] == both[1] == text
    # The prompt holds the clip's tokens as one audio span.
    codes = pipe.encode(path)[0]
    prompt = pipe.caption_prompt(codes)
    assert pipe.vocabulary.format_audio(codes) in prompt and prompt.endswith("ASSISTANT:")
    # Mono input at another rate is converted, not rejected.
    assert isinstance(pipe.caption(sine(0.1, 8000), sample_rate=8000, max_new_tokens=3), str)


def test_chat_audio_in_and_out(pipe):
    clip = pipe.generate("dog", seconds=0.05, seed=0)
    messages = [{"role": "user", "content": "What is this?", "audio": clip}]
    result = pipe.chat(messages, seconds=0.05, max_new_tokens=8, temperature=1.0, seed=0)
    assert isinstance(result.text, str)
    assert len(result.audio) == result.text.count("<audio>")
    assert all(1 <= a.codes.numel() <= 6 for a in result.audio)
    follow = [*messages, result.message, {"role": "user", "content": "And now?"}]
    assert isinstance(pipe.chat(follow, max_new_tokens=4, seed=0).text, str)


@pytest.mark.parametrize(
    "audio, match",
    [
        (torch.zeros(2, 0), "empty"),
        (torch.full((2, 160), float("nan")), "NaN"),
        (torch.ones(2, 160, dtype=torch.int32), "floating"),
        (123, "torch.Tensor"),
        ("does/not/exist.wav", "no such file"),
        ([], "empty list"),
    ],
)
def test_garbage_audio_is_a_clear_error(pipe, audio, match):
    with pytest.raises(AudioError, match=match):
        pipe.caption(audio)


def test_missing_checkpoint_lists_searched_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_CHECKPOINT, str(tmp_path / "nowhere"))
    monkeypatch.delenv(ENV_HUB_ID, raising=False)
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint()
    msg = str(info.value)
    assert str(tmp_path / "nowhere") in msg and f"${ENV_CHECKPOINT}" in msg
    assert str(tmp_path / "checkpoints" / DEFAULT_NAME) in msg
    assert f"${ENV_HUB_ID}: not set" in msg
    assert "recipes/train_tokenizer.py" in msg and "lmmsn export" in msg
    monkeypatch.delenv(ENV_CHECKPOINT)
    with pytest.raises(CheckpointNotFoundError, match=f"\\${ENV_CHECKPOINT}: not set"):
        resolve_checkpoint()
    with pytest.raises(CheckpointNotFoundError, match="the given name under checkpoints/"):
        resolve_checkpoint("no-such-model")


def test_non_pipeline_directory_is_rejected_by_kind(exported, monkeypatch):
    monkeypatch.setenv(ENV_CHECKPOINT, str(exported))
    assert resolve_checkpoint() == exported
    with pytest.raises(ExportError, match="expected 'pipeline'"):
        resolve_checkpoint(exported / "tokenizer")


def test_module_functions_use_the_default_pipeline(pipe):
    import lmmsn
    from lmmsn import api

    lmmsn.set_default(pipe)
    try:
        a = lmmsn.generate("dog", seconds=0.05, seed=5)
        assert torch.equal(a.waveform, pipe.generate("dog", seconds=0.05, seed=5).waveform)
        assert isinstance(lmmsn.caption(a.waveform, max_new_tokens=3), str)
    finally:
        api.set_default(None)
