"""The `lmmsn` command (lmmsn/cli.py): help text, in-process commands, and the installed console script."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmmsn.audio import load_audio, save_audio
from lmmsn.cli import build_parser, main
from tests.conftest import sine
from tests.test_pipeline import FRAME, build_tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("cli"))


@pytest.fixture
def clip(tmp_path) -> Path:
    return save_audio(tmp_path / "clip.wav", sine(0.1, 16000, channels=2), 16000)


def test_help_explains_every_option():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"generate", "caption", "tokenize", "reconstruct", "info", "export"}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, f"lmmsn {name} {action.dest}: no help text"


def test_commands_in_process(exported, clip, tmp_path, capsys):
    out = tmp_path / "gen.flac"
    assert main(["generate", "dog", "rain", "-o", str(out), "--seconds", "0.05", "--seed", "0",
                 "--codes", str(tmp_path / "codes.json"), "-c", str(exported)]) == 0
    codes = json.loads((tmp_path / "codes.json").read_text())
    for i in range(2):
        path = tmp_path / f"gen_{i}.flac"
        wav, sr = load_audio(path)
        T = len(codes[str(path)]["codes"])
        assert sr == 16000 and wav.shape == (2, T * FRAME) and 1 <= T <= 6

    assert main(["tokenize", str(clip), "-c", str(exported)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(printed[str(clip)]["codes"]) == 12 and printed[str(clip)]["codebook_size"] == 32
    # A tokenizer export works as well as a pipeline directory. (Codes are not compared: the tiny
    # VAE has no checkpoint, so each load builds it with fresh random weights.)
    assert main(["tokenize", str(clip), "-c", str(exported / "audio_tokenizer"), "-o", str(tmp_path / "c.json")]) == 0
    assert len(json.loads((tmp_path / "c.json").read_text())[str(clip)]["codes"]) == 12

    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "rec.wav"), "-c", str(exported), "--seed", "0"]) == 0
    rec, sr = load_audio(tmp_path / "rec.wav")
    assert sr == 16000 and rec.shape == (2, 12 * FRAME)  # VAE length_mode "floor": whole frames only

    capsys.readouterr()
    assert main(["caption", str(clip), "-c", str(exported), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith(f"{clip}\t")

    assert main(["caption", str(tmp_path / "missing.wav"), "-c", str(exported)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["generate", "x", "-o", str(tmp_path / "x.mp3"), "-c", str(exported)]) == 2
    assert "cannot write '.mp3'" in capsys.readouterr().err


def test_generate_passes_the_guidance_scale(exported, tmp_path, capsys, monkeypatch):
    from lmmsn.pipeline import Pipeline

    seen = []
    real = Pipeline.generate

    def spy(self, prompt, **kwargs):
        seen.append(kwargs["guidance_scale"])
        return real(self, prompt, **kwargs)

    monkeypatch.setattr(Pipeline, "generate", spy)
    out = tmp_path / "g.wav"
    base = ["generate", "dog", "-o", str(out), "--seconds", "0.05", "--seed", "0", "-c", str(exported)]
    assert main([*base, "--guidance-scale", "3"]) == 0 and out.is_file()
    assert main(base) == 0
    assert seen == [3.0, 1.0]  # default 1: no guidance
    capsys.readouterr()
    for bad in ("-1", "nan", "x"):
        assert main([*base, "--guidance-scale", bad]) == 2
        assert "--guidance-scale: must be a finite number >= 0" in capsys.readouterr().err
    assert len(seen) == 2


@pytest.mark.slow  # several fresh interpreters importing torch + transformers: ~6 min on 2 cores
def test_installed_console_script(exported, clip, tmp_path):
    """Subprocess: the `lmmsn` entry point generates a valid file, `info` reads the export,
    and a missing checkpoint exits 2 with the searched places."""
    exe = shutil.which("lmmsn", path=str(Path(sys.executable).parent))
    assert exe, "lmmsn console script is not installed (pip install -e .)"
    env = {**os.environ, "LMMSN_CHECKPOINT": str(exported)}
    out = tmp_path / "dog.wav"
    done = subprocess.run([exe, "generate", "dog barking", "-o", str(out), "--seconds", "0.05", "--seed", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    wav, sr = load_audio(out)
    assert sr == 16000 and wav.shape[0] == 2 and 0 < wav.shape[1] <= 6 * FRAME and wav.shape[1] % FRAME == 0
    done = subprocess.run([exe, "info", str(exported), "--json"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["kind"] == "pipeline" and info["components"]["audio_tokenizer"]["kind"] == "audio_tokenizer"
    assert info["components"]["audio_tokenizer"]["parameters"]["model.safetensors"] > 0
    env.pop("LMMSN_CHECKPOINT")
    done = subprocess.run([exe, "caption", str(clip)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 2 and "Searched, in order" in done.stderr and "Traceback" not in done.stderr
