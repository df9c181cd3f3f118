"""scripts/train_demo.py: the whole demo chain at tiny sizes, in one process, then the exported pipeline in use."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lmmsn.audio import save_audio
from tests.conftest import sine

ROOT = Path(__file__).resolve().parents[2]
CLIPS = [("animal", "frog", "a frog croaks", None, 300.0), ("animal", "wolf", "a wolf howls", None, 500.0),
         ("speech", "speech", 'a voice says in Spanish: "uno"', "uno", 700.0),
         ("speech", "speech", 'a voice says in Spanish: "dos"', "dos", 800.0),
         ("music_instrument", "snare drum", "a snare drum hit", None, 2000.0),
         ("music_instrument", "hi-hat", "a hi-hat hit", None, 3000.0)]


def _driver():
    spec = importlib.util.spec_from_file_location("train_demo", ROOT / "scripts/train_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_demo"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _corpus(root: Path) -> Path:
    rows = []
    for i, (category, label, caption, transcript, freq) in enumerate(CLIPS):
        path = f"audio/{i}.wav"
        save_audio(root / path, sine(0.3 + 0.1 * (i % 2), 16000, freq=freq), 16000)
        row = {"path": path, "source": "fixture", "category": category, "label": label, "caption": caption}
        if transcript:
            row["transcript"] = transcript
        rows.append(row)
    manifest = root / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_tiny_chain_trains_exports_and_the_pipeline_works(tmp_path, monkeypatch):
    import lmmsn

    monkeypatch.chdir(ROOT)
    driver = _driver()
    manifest = _corpus(tmp_path / "corpus")
    argv = ["--tiny", "--in-process", "--manifest", str(manifest), "--audio-root", str(tmp_path / "corpus"),
            "--work", str(tmp_path / "work"), "--checkpoint", str(tmp_path / "lm-msn"), "--max-speech", "1"]
    assert driver.main(argv) == 0
    work = tmp_path / "work"
    timings = json.loads((work / "timings.json").read_text())
    assert list(timings) == list(driver.STAGES) and all(t > 0 for t in timings.values())
    from lmmsn.data.loader import shard_samples

    kept = [s.meta["category"] for s in shard_samples(work / "data/conversations", even="none")]
    assert kept.count("speech") == 1 and kept.count("animal") >= 2  # --max-speech 1: one speech segment is left
    index = json.loads((work / "data/conversations/index.json").read_text())
    assert index["conversations"]["left_out_by_cap"]["speech"] >= 1
    base = json.loads((work / "text_base/export/text_base.json").read_text())
    assert base["rows"] == len(CLIPS) and base["steps"] == 2
    for stage in ("pretrain", "finetune"):  # the LLM's audio vocabulary is the tokenizer's codebook
        cfg = (work / stage / "config.yaml").read_text()
        assert "codebook_size: 32" in cfg and f"train_shards: {work / 'data/conversations'}" in cfg
    assert "init_from: " + str(work / "pretrain/export") in (work / "finetune/config.yaml").read_text()

    pipe = lmmsn.load(str(tmp_path / "lm-msn"), device="cpu")
    assert (tmp_path / "lm-msn/llm/config.json").is_file()  # the merged LLM: no reference to runs/ left
    clip = pipe.generate("a frog croaks", seconds=0.1, seed=0)
    assert clip.codes.numel() >= 1 and clip.waveform.shape[-1] > 0
    text = pipe.caption(str(tmp_path / "corpus/audio/0.wav"), max_new_tokens=4)
    assert isinstance(text, str)
    reply = pipe.chat([{"role": "user", "content": "What is this sound?", "audio": str(tmp_path / "corpus/audio/1.wav")}],
                      max_new_tokens=4, seconds=0.1, seed=0)
    assert isinstance(reply.text, str)

    # a rerun finds every stage done; --stages export alone redoes only the export
    assert driver.Chain(work=work, checkpoint=tmp_path / "lm-msn").done("finetune")
    chain, args = driver.parse_args([*argv, "--stages", "export"])
    assert chain.run(["export"]) == {} and chain.run(["export"], force=True).keys() == {"export"}


def test_options_are_checked():
    driver = _driver()
    with pytest.raises(SystemExit):
        driver.parse_args(["--set", "nostage:x=1"])
    with pytest.raises(SystemExit):
        driver.parse_args(["--stages", "data,train"])
    chain, _ = driver.parse_args(["--set", "llm:trainer.max_steps=3", "--set", "pretrain:optim.lr=0.1", "--max-speech", "-1"])
    assert chain.overrides == {"llm": ["trainer.max_steps=3"], "pretrain": ["optim.lr=0.1"]} and chain.max_speech is None
    assert Path(chain.base_config).is_absolute() and Path(chain.work).is_absolute()


def test_demo_llm_configs_keep_the_papers_method():
    from lmmsn.config import load_config
    from lmmsn.training.llm_module import TrainLLMConfig

    pre = load_config(TrainLLMConfig, ROOT / "recipes/configs/llm/demo_pretrain.yaml")
    ft = load_config(TrainLLMConfig, ROOT / "recipes/configs/llm/demo_finetune.yaml")
    for cfg in (pre, ft):
        assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.lora.target_modules) == (64, 128, "all-linear")
        assert (cfg.loss.audio_weight, cfg.loss.z_loss_coef) == (10.0, 1e-4)
        assert cfg.model.base_model == "runs/demo/text_base/export"
    assert pre.mode == "pretrain" and pre.data.batch.audio_first_prob == 0.5
    assert ft.mode == "finetune" and ft.model.init_from == "runs/demo/pretrain/export" and ft.merge
    assert 0 < ft.data.batch.generation_fraction < 1


def test_missing_checkpoint_says_how_to_train_the_demo(tmp_path, monkeypatch):
    from lmmsn import checkpoints

    monkeypatch.delenv(checkpoints.ENV_CHECKPOINT, raising=False)
    monkeypatch.delenv(checkpoints.ENV_HUB_ID, raising=False)
    monkeypatch.setattr(checkpoints, "checkpoint_roots", lambda: [tmp_path / "checkpoints"])
    with pytest.raises(checkpoints.CheckpointNotFoundError) as err:
        checkpoints.resolve_checkpoint()
    assert "bash scripts/train_demo.sh" in str(err.value) and (ROOT / "scripts/train_demo.sh").is_file()
