"""Tests for eval.html_report: the page's structure, and the page in headless Chromium (no console
errors, no request leaves the folder, every <audio> source exists and decodes, a screenshot)."""

import json
import re
from urllib.parse import unquote

import pytest

from eval.common import new_figure, save_figure
from eval.html_report import main, write_html
from eval.reconstruction import BASELINE
from lmmsn.audio import save_audio
from tests.conftest import sine
from tests.eval.browser import BrowserSession, page_errors, require_browser, serve_folder

SECONDS = {"speech_00": 0.5, "speech_01": 0.7, "tone_00": 0.3}


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for this file's page checks."""
    require_browser()
    with BrowserSession() as session:
        yield session


@pytest.fixture
def report(tmp_path):
    """A report folder as eval.run_all leaves it: results, a plot, decoded and generated WAVs."""
    root = tmp_path / "report"
    rows = {"VQ+FM (tiny)": "VQ_FM_tiny", BASELINE: "mean_latent_0_bit_s_baseline"}
    for k, (stem, seconds) in enumerate(SECONDS.items()):
        save_audio(root / "audio" / "original" / f"{stem}.wav", sine(seconds, 16000, 1, 300.0 + 100 * k), 16000)
        save_audio(root / "audio" / rows["VQ+FM (tiny)"] / f"{stem}.wav", sine(seconds, 16000, 1, 310.0 + 100 * k), 16000)
        if stem != "tone_00":  # one missing cell
            save_audio(root / "audio" / rows[BASELINE] / f"{stem}.wav", sine(seconds, 16000, 2, 200.0), 16000)
    for system, freq in (("sysA", 500.0), ("sysB", 900.0)):
        save_audio(root / "audio" / "generated" / system / "dog_bark.wav", sine(0.4, 22050, 1, freq), 22050)
    (root / "audio" / "generated" / "prompts.json").write_text(json.dumps({"dog_bark": "a dog barks twice"}))
    save_audio(root / "audio" / "animal_003.wav", sine(0.4, 16000, 1, 700.0), 16000)  # eval.audio_lm's layout
    (root / "audio_lm.json").write_text(json.dumps({"generation": {"saved_wavs": [
        {"path": "audio/animal_003.wav", "prompt": "a cat meows", "category": "animal", "judged": "music"},
        {"path": "audio/gone.wav", "prompt": "not written", "category": "x", "judged": "y"}]}}))
    (root / "README.md").write_text("# Report from README\n\nSome notes.\n\nCommand: `x`\n\n## Reconstruction\n\nzzsectiontext\n")
    (root / "reconstruction.json").write_text(json.dumps({"tokenizers": {"VQ+FM (tiny)": {}, BASELINE: {}},
                                                          "keys": {"speech": ["corpus/a b.ogg", "corpus/c.ogg"], "tone": ["corpus/t.wav"]}}))
    (root / "reconstruction.md").write_text("# Reconstruction error (Table I)\n\nLatent **MSE** <script>alert(1)</script>\n\n| system | speech |\n|---|---|\n| VQ+FM (tiny) | 0.5 |\n")
    (root / "fad.md").write_text("# FAD between categories\n\n| | speech |\n|---|---|\n| ref speech | 1.0 |\n")
    fig, ax = new_figure()
    ax.bar(["a", "b"], [1.0, 2.0])
    save_figure(fig, root / "reconstruction.png")
    return root


def test_page_has_tables_plots_and_one_player_per_clip_and_row(report):
    path = write_html(report, title="T <1>", head_md=["Clips per category: speech: 2"], captions={"corpus/a b.ogg": "a voice & a door"})
    page = path.read_text()
    srcs = re.findall(r'<audio[^>]* src="([^"]+)"', page)
    assert len(srcs) == 3 * 3 - 1 + 2 + 1  # clips x (original, two rows) minus the missing one, two generated, one audio_lm clip
    assert all((report / unquote(s)).is_file() for s in srcs)
    header = re.search(r"<thead><tr><th>clip</th><th>original</th>(.*?)</tr></thead>", page).group(1)
    assert header == f"<th>VQ+FM (tiny)</th><th>{BASELINE}</th>"  # row names in table order, not folder names
    assert "<td>-</td>" in page and "a voice &amp; a door" in page and "<code>corpus/a b.ogg</code>" in page
    assert "a dog barks twice" in page and "<h1>T &lt;1&gt;</h1>" in page
    assert "<td>animal</td><td>music</td>" in page and "not written" not in page  # audio_lm's saved clips that exist
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # tool text is escaped
    assert '<img class="plot" src="reconstruction.png"' in page and page.count("<table") == 5 and '<a href="reconstruction.json">' in page
    assert page.index('id="reconstruction"') < page.index('id="fad"') and "http" not in page.split("<body>")[1]
    # rebuilt from the folder alone (sections found by name)
    # speech_00 (3 players) + tone_00 (2: its baseline file is missing) + 2 generated + 1 audio_lm
    rebuilt = main([str(report), "--clips-per-category", "1"]).read_text()
    assert rebuilt.count("<audio") == 3 + 2 + 2 + 1
    assert "<h1>Report from README</h1>" in rebuilt and "<p>Some notes.</p>" in rebuilt and "zzsectiontext" not in rebuilt  # the head stops at README's first section


def test_page_in_headless_chromium_loads_clean_and_every_clip_decodes(report, tmp_path, browser):
    write_html(report, title="LM-MSN evaluation (test)", captions={"corpus/c.ogg": "a tone"})
    shot = tmp_path / "report.png"
    with serve_folder(report) as base:
        result = browser.check("report", f"{base}/index.html", str(shot))
    assert not page_errors(result), page_errors(result)
    assert result["title"] == "LM-MSN evaluation (test)" and result["tables"] == 5
    assert len(result["audio"]) == 11 and all(a["state"] == "loaded" and a["error"] is None for a in result["audio"])
    for a in result["audio"]:
        stem = unquote(a["src"]).rsplit("/", 1)[1][:-4]
        expected = SECONDS.get(stem, 0.4)
        assert a["duration"] == pytest.approx(expected, abs=0.01) and a["decoded"]["duration"] == pytest.approx(expected, abs=0.01), a
    assert [i["src"] for i in result["images"]] == ["reconstruction.png"] and result["images"][0]["width"] > 100
    assert shot.stat().st_size > 20_000


def test_the_browser_check_catches_a_broken_and_a_missing_clip(tmp_path, browser):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "index.html").write_text('<!doctype html><title>x</title><audio controls src="bad.wav"></audio><audio controls src="missing.wav"></audio>')
    with serve_folder(tmp_path) as base:
        result = browser.check("report", f"{base}/index.html")
    bad, missing = result["audio"]
    assert bad["state"].startswith("error") and bad["error"] and bad["decoded"] is None
    assert missing["state"].startswith("error") and any("404" in e and "missing.wav" in e for e in result["http_errors"])
    assert page_errors(result)
