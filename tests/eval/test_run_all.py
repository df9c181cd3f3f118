"""Tests for eval.run_all (one YAML -> one report folder) and every tool's --help."""

import importlib
import json

import pytest
import yaml

from eval.run_all import main
from lmmsn.audio import save_audio
from tests.conftest import sine


@pytest.mark.parametrize("tool", ["reconstruction", "fad", "captioning", "genre", "consistency", "mos", "run_all"])
def test_help_explains_every_option(tool, capsys):
    module = importlib.import_module(f"eval.{tool}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m eval.{tool}" in out
    assert "--help" in out and out.count("--") >= 2


def test_suite_writes_report(tmp_path):
    rows = []
    for cat, freq in (("low", 300.0), ("high", 4000.0)):
        for i in range(4):
            name = f"{cat}{i}.wav"
            save_audio(tmp_path / name, sine(0.5, 16000, 1, freq + 20 * i), 16000)
            rows.append({"path": name, "category": cat, "label": cat, "caption": f"a {cat} tone", "duration_s": 0.5})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = {
        "output_dir": str(tmp_path / "report"),
        "data": {"manifest": str(tmp_path / "m.jsonl"), "audio_root": str(tmp_path), "categories": ["low", "high"], "per_category": 2},
        "fad": {"cache": str(tmp_path / "cache")},
        "consistency": {"batch_size": 3, "repeats": 2},
        "genre": {"batch_size": 2},
        "mos": {},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = main(["--config", str(tmp_path / "cfg.yaml"), "data.per_category=4"])
    for name in ("fad", "consistency", "genre", "mos"):
        assert (out / f"{name}.json").is_file() and (out / f"{name}.md").is_file()
    assert (out / "fad.png").stat().st_size > 1000
    fad = json.loads((out / "fad.json").read_text())
    assert fad["embedding"].startswith("logmel") and fad["sets"]["low"]["files"] == 4
    assert fad["matrix"]["low"]["high"] > fad["matrix"]["low"]["low"]
    cons = json.loads((out / "consistency.json").read_text())
    assert cons["batch"]["caption"]["fraction_differ"] == 0.0 and cons["environment"]["batch_size"] == 3
    assert json.loads((out / "mos.json").read_text())["status"] == "unavailable"
    genre = json.loads((out / "genre.json").read_text())
    assert genre["n"] == 8  # nothing dropped
    readme = (out / "README.md").read_text()
    assert "Not run: reconstruction, captioning." in readme and "data.per_category=4" in readme


def test_example_config_loads():
    from pathlib import Path

    from eval.run_all import SuiteConfig
    from lmmsn.config import ConfigError, load_config

    path = Path(__file__).resolve().parents[2] / "eval" / "configs" / "example.yaml"
    cfg = load_config(SuiteConfig, path)
    assert cfg.reconstruction is not None and cfg.reconstruction.tokenizers and cfg.fad.embedding == "logmel"
    with pytest.raises(ConfigError, match="per_categry"):
        load_config(SuiteConfig, path, ["data.per_categry=3"])
