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
    """Tiny random audio tokenizer (codebook 32) + tiny random Llama with LoRA, exported to `directory`."""
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.tiny import write_tiny_base
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    with torch.random.fork_rng():
        torch.manual_seed(0)
        tok = build_tokenizer(tokenizer_config("tiny"))
        lm = AudioLM.from_base(write_tiny_base(directory / "base"), codebook_size=tok.codebook_size,
                               lora=LoraConfig(r=4, alpha=8, dropout=0.0))
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
    assert {"config.yaml", "format_version", "audio_tokenizer", "llm"} <= names and "tokenizer" not in names
    assert (exported / "audio_tokenizer" / "model.safetensors").is_file()
    assert (exported / "llm" / "adapter" / "adapter_model.safetensors").is_file()
    assert (exported / "llm" / "text_tokenizer" / "tokenizer.json").is_file()
    assert pipe.device.type == "cpu" and next(pipe.lm.model.parameters()).dtype == torch.float32
    assert pipe.audio_tokenizer.codebook_size == 32 and pipe.lm.text_tokenizer.padding_side == "left"


def test_pipelines_exported_before_the_rename_still_load(exported, pipe, tmp_path):
    """Old layout: `tokenizer: tokenizer` + `tokenizer/` for the audio tokenizer, `llm/tokenizer/` for the text one."""
    import shutil

    import yaml

    from lmmsn.pipeline import load_audio_tokenizer

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    (old / "audio_tokenizer").rename(old / "tokenizer")
    (old / "llm" / "text_tokenizer").rename(old / "llm" / "tokenizer")
    document = yaml.safe_load((old / "config.yaml").read_text())
    document = {"tokenizer": "tokenizer", **{k: v for k, v in document.items() if k != "audio_tokenizer"}}
    (old / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = Pipeline.from_pretrained(old, device="cpu")
    codes = torch.tensor([[3, 1, 4]])
    torch.testing.assert_close(loaded.audio_tokenizer.quantizer.embed, pipe.audio_tokenizer.quantizer.embed)
    assert loaded.lm.text_tokenizer("a dog").input_ids == pipe.lm.text_tokenizer("a dog").input_ids
    assert loaded.vocabulary.audio_span_ids(codes[0].tolist()) == pipe.vocabulary.audio_span_ids(codes[0].tolist())
    assert load_audio_tokenizer(old, device="cpu").codebook_size == 32


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


def _spy_sample(monkeypatch) -> list[dict]:
    """Record the keyword arguments of every `sample` call the pipeline makes."""
    import lmmsn.pipeline as module

    calls: list[dict] = []
    real = module.sample

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "sample", spy)
    return calls


@pytest.fixture(scope="module")
def guided_pipe(exported) -> Pipeline:
    """The tiny pipeline with distinct new head rows: the exported ones are all near the mean of
    the text rows (mean resizing), so the audio logits barely depend on the prompt and guidance
    would change no token."""
    import lmmsn

    pipe = lmmsn.load(str(exported), device="cpu")
    adapter = pipe.lm.model.get_base_model().get_output_embeddings().token_adapter
    with torch.no_grad():
        adapter.trainable_tokens_delta[adapter.active_adapters[0]].normal_(generator=torch.Generator().manual_seed(0))
    return pipe


def test_guidance_scale_one_is_plain_generation(guided_pipe, monkeypatch):
    calls = _spy_sample(monkeypatch)
    plain = guided_pipe.generate(["a dog", "rain on a roof"], seconds=0.08, seed=5)
    ones = guided_pipe.generate(["a dog", "rain on a roof"], seconds=0.08, seed=5, guidance_scale=1.0)
    for x, y in zip(plain, ones, strict=True):
        assert torch.equal(x.codes, y.codes)
    assert all(call.get("unconditional_ids") is None for call in calls)  # s = 1 runs no unconditional rows


def test_guidance_scale_runs_the_empty_caption_prompt_and_changes_the_tokens(guided_pipe, monkeypatch):
    pipe, prompts = guided_pipe, ["a dog", "rain on a roof"]
    calls = _spy_sample(monkeypatch)
    plain = pipe.generate(prompts, seconds=0.08, seed=5)
    guided = pipe.generate(prompts, seconds=0.08, seed=5, guidance_scale=4.0)
    assert any(not torch.equal(x.codes, y.codes) for x, y in zip(plain, guided, strict=True))
    call = calls[-1]
    assert call["sampling"].guidance_scale == 4.0
    uncond, _ = pipe._batch([pipe.generation_prompt("")])  # the same template with an empty caption
    assert pipe.generation_prompt("") != pipe.generation_prompt("a dog")
    assert call["unconditional_ids"].shape[0] == len(prompts)
    for row, keep in zip(call["unconditional_ids"], call["unconditional_mask"], strict=True):
        assert torch.equal(row[keep.bool()], uncond[0])
    # Greedy: the first code is the argmax of cond + (s - 1)(cond - uncond) over the audio ids.
    first = [clip.codes[0].item() for clip in pipe.generate(prompts, seconds=0.08, temperature=0.0,
                                                            guidance_scale=4.0)]
    audio = pipe.vocabulary.audio_ids
    with torch.inference_mode():
        ids, mask = pipe._batch([pipe.generation_prompt(p) for p in prompts])
        cond = pipe.lm.model(input_ids=ids, attention_mask=mask).logits[:, -1, audio.start : audio.stop]
        free = pipe.lm.model(input_ids=uncond).logits[:, -1, audio.start : audio.stop]
    assert first == (cond + 3.0 * (cond - free)).argmax(-1).tolist()


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf"), "2", True])
def test_bad_guidance_scale_is_one_clear_error(pipe, scale):
    with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 0"):
        pipe.generate("x", seconds=0.03, seed=0, guidance_scale=scale)


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


def test_inference_prompts_are_prefixes_of_the_fine_tuning_renders(pipe):
    """One prompt module: `generate`'s prompt for "dog barking" is, token for token, the start of the
    fine-tuning example of a generation conversation with that caption; `caption`'s likewise."""
    from lmmsn.data.format import Sample
    from lmmsn.llm.data import instruction_example

    tokenizer, codes = pipe.lm.text_tokenizer, torch.tensor([3, 1, 4, 1, 5])
    for caption, fraction, prompt in [("dog barking", 1.0, pipe.generation_prompt("dog barking")),
                                      ("A dog barks.", 0.0, pipe.caption_prompt(codes))]:
        sample = Sample("k", {"captions": [caption]}, codes=codes)
        example = instruction_example(sample, tokenizer, pipe.vocabulary, generation_fraction=fraction)
        prompt_ids = tokenizer(prompt).input_ids
        n = len(prompt_ids)
        assert example.input_ids[:n].tolist() == prompt_ids
        assert (example.labels[n:] == example.input_ids[n:]).all()  # what the model writes next is trained
    assert prompt_ids[-1] != pipe.vocabulary.soa_id
    assert tokenizer(pipe.generation_prompt("dog barking")).input_ids[-1] == pipe.vocabulary.soa_id


def test_input_is_cut_to_the_training_segment(pipe, monkeypatch):
    """caption / encode see at most config.input_seconds (default 10 s, the training segment) of a file."""
    assert pipe.config.input_seconds == 10.0
    long = sine(11.0, 16000, channels=2)
    first = pipe.encode(long[:, : 10 * 16000])[0]
    assert torch.equal(pipe.encode(long)[0], first)  # 1250 tokens, not 1375
    whole = pipe.encode(long, max_seconds=float("inf"))[0]
    windows = pipe.encode(long, windowed=True)[0]
    assert whole.numel() == windows.numel() == 1375 and torch.equal(windows[: first.numel()], first)
    assert pipe.encode(long, max_seconds=0.5)[0].numel() == 62  # floor(8000 samples / 128)
    monkeypatch.setattr(pipe.config, "input_seconds", 0.2)
    prompt = pipe.caption_prompt(pipe.encode(long)[0])
    assert prompt.count("<a_") == 25


def test_chat_audio_in_and_out(pipe):
    clip = pipe.generate("dog", seconds=0.05, seed=0)
    messages = [{"role": "user", "content": "What is this?", "audio": clip}]
    result = pipe.chat(messages, seconds=0.05, max_new_tokens=8, temperature=1.0, seed=0)
    assert isinstance(result.text, str)
    assert len(result.audio) == result.text.count("<audio>")
    assert all(1 <= a.codes.numel() <= 6 for a in result.audio)
    follow = [*messages, result.message, {"role": "user", "content": "And now?"}]
    assert isinstance(pipe.chat(follow, max_new_tokens=4, seed=0).text, str)


def test_chat_history_ends_replies_with_the_bases_eos(pipe):
    """Earlier assistant turns end with the base's eos as fine-tuning rendered them (Gemma: '<eos>')."""
    tok = pipe.lm.text_tokenizer
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
               {"role": "user", "content": "More?"}]
    assert "Hello</s>USER: More?" in pipe._chat(history)
    old = tok.eos_token
    try:
        tok.eos_token = "<unk>"  # stands in for a base whose eos is not '</s>'
        prompt = pipe._chat(history)
    finally:
        tok.eos_token = old
    assert "Hello<unk>USER: More?" in prompt and "</s>" not in prompt


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
        resolve_checkpoint(exported / "audio_tokenizer")


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
