"""Hostile input for exported models and the `lmmsn` command (issue 14).

Broken exports (truncated or missing weights, binary files, unknown config keys, weights of
the wrong shape) fail with one message naming the file; every command-line user error exits 2
with one line on stderr and no traceback, before any model is loaded. A property layer throws
random argument lists at `lmmsn.cli.main` (seeded; `LMMSN_HYPOTHESIS_EXAMPLES`, default 200).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from lmmsn.cli import main
from lmmsn.config import ConfigError
from lmmsn.export import ExportError

EXAMPLES = int(os.environ.get("LMMSN_HYPOTHESIS_EXAMPLES", "200"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from tests.test_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for name in ("LMMSN_CHECKPOINT", "LMMSN_HUB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in process: (exit status, stdout, stderr); an exception escapes (the test fails)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit 2 and one line on stderr besides progress bars (transformers shows one while loading weights)."""
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _yaml_edit(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _retensor(path: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


# (name, how the copy is broken, the file the message must name (relative to the pipeline dir), a fragment)
FILE_LEVEL = [
    ("adapter truncated", lambda d: _truncate(d / "llm/adapter/adapter_model.safetensors"),
     "llm/adapter/adapter_model.safetensors", "not a readable safetensors file"),
    ("adapter missing", lambda d: (d / "llm/adapter/adapter_model.safetensors").unlink(),
     "llm/adapter/adapter_model.safetensors", "missing"),
    ("adapter config not JSON", lambda d: (d / "llm/adapter/adapter_config.json").write_text("{nope"),
     "llm/adapter/adapter_config.json", "not valid JSON"),
    ("format_version binary", lambda d: (d / "format_version").write_bytes(b"\xff\xfe\x00\x01"),
     "format_version", "not UTF-8"),
    ("llm format_version binary", lambda d: (d / "llm/format_version").write_bytes(b"\x89PNG\x00\xff"),
     "llm/format_version", "not UTF-8"),
    ("config.yaml binary", lambda d: (d / "config.yaml").write_bytes(b"\xff\xfe\x00\x01"), "config.yaml", "not UTF-8"),
    ("config.yaml a list", lambda d: (d / "config.yaml").write_text("- a\n- b\n"), "config.yaml", "mapping"),
    ("config.yaml bad YAML", lambda d: (d / "config.yaml").write_text("kind: pipeline\n  x: [\n"), "config.yaml",
     "not valid YAML"),
    ("tokenizer weights truncated", lambda d: _truncate(d / "audio_tokenizer/model.safetensors", 0.01),
     "audio_tokenizer/model.safetensors", "not a readable safetensors file"),
    ("vocabulary not JSON", lambda d: (d / "llm/audio_vocabulary.json").write_text("{"), "llm/audio_vocabulary.json",
     "not valid JSON"),
    ("text tokenizer missing", lambda d: shutil.rmtree(d / "llm/text_tokenizer"), "llm/text_tokenizer", "missing"),
    ("base model missing", lambda d: _yaml_edit(d / "llm/config.yaml", lambda c: c.update(base_model=str(d / "gone"))),
     "llm/config.yaml", "gone': no such directory"),
    ("component outside", lambda d: _yaml_edit(d / "config.yaml", lambda c: c.update(llm="/etc")), "config.yaml",
     "not a folder of the pipeline directory"),
]


@pytest.mark.parametrize("name, breaks, names, fragment", FILE_LEVEL, ids=[c[0] for c in FILE_LEVEL])
def test_broken_exports_fail_in_one_line_naming_the_file(exported, tmp_path, name, breaks, names, fragment):
    import lmmsn

    broken = tmp_path / "pipe"
    shutil.copytree(exported, broken)
    breaks(broken)
    code, out, err = run_cli(["info", str(broken)])
    assert_one_line_error(code, err, str(broken / names), fragment)
    with pytest.raises(ExportError, match="not UTF-8|readable|missing|JSON|YAML|mapping|no such|folder"):
        lmmsn.load(str(broken), device="cpu")  # the loader checks the same files before building anything


# Breakages that only building the model shows: (name, breaks, exception, the file named, a fragment)
LOAD_LEVEL = [
    ("unknown lora key", lambda d: _yaml_edit(d / "llm/config.yaml", lambda c: c["lora"].update(rank_typo=8)),
     ConfigError, "llm/config.yaml", "'lora.rank_typo' is not a field"),
    ("unknown llm config key", lambda d: _yaml_edit(d / "llm/config.yaml", lambda c: c.update(colour="red")),
     ConfigError, "llm/config.yaml", "'colour' is not a field"),
    ("vocab_size a string", lambda d: _yaml_edit(d / "llm/config.yaml", lambda c: c.update(vocab_size="big")),
     ExportError, "llm/config.yaml", "'vocab_size' must be int"),
    ("codebook disagrees with vocabulary", lambda d: _yaml_edit(d / "llm/config.yaml", lambda c: c.update(codebook_size=16)),
     ExportError, "llm/config.yaml", "disagree"),
    ("tokenizer weight of the wrong shape",
     lambda d: _retensor(d / "audio_tokenizer/model.safetensors", lambda s: s.update({next(iter(s)): torch.zeros(3, 3)})),
     ExportError, "audio_tokenizer/model.safetensors", "size mismatch"),
    ("adapter weight of the wrong shape",
     lambda d: _retensor(d / "llm/adapter/adapter_model.safetensors",
                         lambda s: s.update({next(k for k in s if "lora_A" in k): torch.zeros(3, 3)})),
     ExportError, "llm/adapter/adapter_model.safetensors", "size mismatch"),
    ("adapter tensor of no module",
     lambda d: _retensor(d / "llm/adapter/adapter_model.safetensors", lambda s: s.update({"base_model.bogus": torch.zeros(2)})),
     ExportError, "llm/adapter/adapter_model.safetensors", "fit no module"),
]


@pytest.mark.parametrize("name, breaks, error, names, fragment", LOAD_LEVEL, ids=[c[0] for c in LOAD_LEVEL])
def test_exports_that_do_not_fit_their_config_fail_naming_the_file(exported, tmp_path, name, breaks, error, names,
                                                                   fragment):
    import lmmsn

    broken = tmp_path / "pipe"
    shutil.copytree(exported, broken)
    breaks(broken)
    with pytest.raises(error) as info:
        lmmsn.load(str(broken), device="cpu")
    assert str(broken / names) in str(info.value) and fragment in str(info.value), str(info.value)


def test_a_broken_export_through_the_command_is_one_line(exported, tmp_path, make_wav):
    broken = tmp_path / "pipe"
    shutil.copytree(exported, broken)
    _retensor(broken / "llm/adapter/adapter_model.safetensors",
              lambda s: s.update({next(k for k in s if "lora_A" in k): torch.zeros(3, 3)}))
    code, _, err = run_cli(["caption", str(make_wav("clip.wav")), "-c", str(broken), "--device", "cpu"])
    assert_one_line_error(code, err, str(broken / "llm/adapter/adapter_model.safetensors"), "size mismatch")


# ---- command-line arguments -------------------------------------------------------------------


def _bad_arguments(tmp_path: Path, clip: Path, pipe: Path) -> list[tuple[list[str], str]]:
    out, folder, a_file = str(tmp_path / "o.wav"), str(tmp_path), str(clip)
    gen = ["generate", "dog", "-c", str(pipe), "--device", "cpu", "-o", out]
    return [
        (gen + ["--seconds", "-1"], "--seconds"),
        (gen + ["--seconds", "0"], "--seconds"),
        (gen + ["--seconds", "nan"], "--seconds"),
        (gen + ["--seconds", "inf"], "--seconds"),
        (gen + ["--seconds", "ten"], "--seconds"),
        (gen + ["--min-seconds", "-1"], "--min-seconds"),
        (gen + ["--min-seconds", "nan"], "--min-seconds"),
        (gen + ["--seconds", "0.05", "--min-seconds", "1"], "--min-seconds"),
        (gen + ["--temperature", "-1"], "--temperature"),
        (gen + ["--temperature", "nan"], "--temperature"),
        (gen + ["--top-p", "0"], "--top-p"),
        (gen + ["--top-p", "2"], "--top-p"),
        (gen + ["--top-p", "nan"], "--top-p"),
        (gen + ["--top-k", "-1"], "--top-k"),
        (gen + ["--steps", "-1"], "--steps"),
        (gen + ["--steps", "0"], "--steps"),  # 0 ODE steps: the decode is the starting noise itself
        (gen + ["--ode-temperature", "-1"], "--ode-temperature"),
        (gen + ["--ode-temperature", "nan"], "--ode-temperature"),
        (gen + ["--seed", "-1"], "--seed"),
        (gen + ["--seed", str(2**70)], "--seed"),
        (["generate", "", "-c", str(pipe), "-o", out], "prompt 1 is empty"),
        (["generate", "dog", "-c", str(pipe), "-o", folder], "is a directory"),
        (gen + ["--codes", folder], "--codes"),
        (["generate", "dog", "-c", str(pipe), "-o", str(tmp_path / "x.mp3")], "cannot write '.mp3'"),
        (["generate", "dog", "-c", str(pipe), "-o", str(clip / "x.wav")], "is a file, not a folder"),
        (["generate", "dog", "-c", str(pipe), "-o", out, "--device", "foo"], "--device 'foo'"),
        (["generate", "dog", "-c", str(pipe), "-o", out, "--device", "cuda:7"], "--device 'cuda:7'"),
        (["generate", "dog", "-c", str(tmp_path / "no" / "such"), "-o", out], "no such directory"),
        (["generate", "dog", "-c", a_file, "-o", out], "not a directory"),
        (["caption", a_file, "-c", str(pipe), "--max-new-tokens", "0"], "--max-new-tokens"),  # was: silently 256
        (["caption", a_file, "-c", str(pipe), "--max-new-tokens", "-1"], "--max-new-tokens"),
        (["caption", a_file, "-c", str(pipe), "--temperature", "nan"], "--temperature"),
        (["tokenize", a_file, "-c", str(pipe), "-o", folder], "is a directory"),
        (["tokenize", a_file, "-c", str(pipe), "--device", "cuda"], "--device 'cuda'"),
        (["reconstruct", a_file, "-c", str(pipe), "-o", str(tmp_path / "r.wav"), "--steps", "0"], "--steps"),
        (["reconstruct", a_file, "-c", str(pipe), "-o", folder], "is a directory"),
        (["reconstruct", a_file, "-c", str(pipe), "-o", str(tmp_path / "r.mp3")], "cannot write '.mp3'"),
        (["info", str(tmp_path / "no" / "such")], "no such directory"),
        (["export", "--audio-tokenizer", str(pipe / "audio_tokenizer"), "--llm", str(pipe / "llm"), "-o", a_file],
         "is a file"),
        (["export", "--audio-tokenizer", str(pipe / "llm"), "--llm", str(pipe / "llm"), "-o", str(tmp_path / "e")],
         "expected 'audio_tokenizer'"),
        (["frobnicate"], "invalid choice"),
        (["generate", "dog"], "-o/--output"),
    ]


def test_every_bad_argument_is_one_line_and_exit_2_before_any_model_loads(exported, tmp_path, make_wav, monkeypatch):
    from lmmsn.llm.model import AudioLM
    from lmmsn.tokenizer.model import AudioTokenizer

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was built for a bad argument")

    monkeypatch.setattr(AudioTokenizer, "from_pretrained", no_loading)
    monkeypatch.setattr(AudioLM, "from_pretrained", no_loading)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # the cuda cases on a GPU machine too
    clip = make_wav("clip.wav")
    for argv, fragment in _bad_arguments(tmp_path, clip, exported):
        code, out, err = run_cli(argv)
        assert_one_line_error(code, err, fragment)
        assert out == "", argv


def test_library_refuses_zero_steps_and_zero_new_tokens(exported):
    import lmmsn

    pipe = lmmsn.load(str(exported), device="cpu")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        pipe.decode([torch.tensor([1, 2])], steps=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        pipe.caption(torch.zeros(2, 1600), max_new_tokens=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        pipe.chat([{"role": "user", "content": "hi"}], max_new_tokens=0)


# ---- property: random argument lists ----------------------------------------------------------------


def test_random_argument_lists_exit_0_or_2_never_a_traceback(exported, tmp_path, make_wav):
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    clip, empty = str(make_wav("clip.wav")), tmp_path / "empty"
    empty.mkdir()
    checkpoints = [str(tmp_path / "missing"), clip, str(empty), "./nope", "~/no-such-lmmsn"]
    values = ["0", "-1", "1", "0.5", "2", "nan", "inf", "-inf", "1e309", "", "x", "--", "-", str(2**64), clip,
              str(tmp_path), str(tmp_path / "o.wav"), str(tmp_path / "o.mp3")]
    flags = ["--seconds", "--min-seconds", "--temperature", "--top-p", "--top-k", "--steps", "--ode-temperature",
             "--seed", "--max-new-tokens", "--device", "--dtype", "-o", "--codes", "--prompt", "--json", "-v",
             "--prompt-style", "--llm", "--audio-tokenizer", "--help", "--no-such-flag"]
    commands = ["generate", "caption", "tokenize", "reconstruct", "info", "export", "bogus"]
    token = st.one_of(st.sampled_from(flags), st.sampled_from(values))

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)
    @given(st.sampled_from(commands), st.lists(token, max_size=8), st.sampled_from(checkpoints))
    def property_(command, rest, checkpoint):
        argv = [command, *rest, "-c" if command != "info" else "--json", checkpoint]
        if command == "info":
            argv = ["info", checkpoint, *rest]
        code, _, err = run_cli(argv)
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in err
        if code == 2 and "Searched, in order" not in err:
            assert len([line for line in err.splitlines() if line.strip()]) == 1, (argv, err)

    property_()
    # And a valid export: `info` reads it (exit 0) whatever flags follow.
    assert run_cli(["info", str(exported), "--json"])[0] == 0
