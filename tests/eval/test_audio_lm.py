"""eval.audio_lm: held-out captioning and generation judgement of a (tiny) pipeline, baselines and report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eval import audio_lm
from eval.common import Item
from eval.label_match import LabelTable
from lmmsn.audio import save_audio
from tests.conftest import sine

TRAIN = [
    {"path": f"train/{i}.wav", "category": c, "label": lab, "caption": cap}
    for i, (c, lab, cap) in enumerate([("speech", "speech", 'a voice says "uno"')] * 5
                                      + [("animal", "wolf", "a wolf howls")] * 3
                                      + [("music_instrument", "snare drum", "a snare drum hit")] * 4
                                      + [("human_sounds", "pain grunt", "a cartoonish voice grunts in pain")] * 2)
]


def test_categories_with_enough_clips_and_frequency_baselines():
    rows = [{"category": c} for c in ["a"] * 5 + ["b"] * 3 + ["c"] * 2]
    assert audio_lm.choose_categories(rows, 3) == (["a", "b"], {"c": 2})
    base = audio_lm.frequency_baselines(TRAIN)
    assert base == {"majority_label": "speech", "majority_category": "speech", "most_frequent_caption": 'a voice says "uno"'}


def test_judge_captions_counts_correct_empty_and_unmatched():
    table = LabelTable.from_rows(TRAIN)
    items = [Item("k1", "p", "animal", "wolf", "a wolf howls"), Item("k2", "p", "animal", "wolf", "a wolf howls"),
             Item("k3", "p", "music_instrument", "snare drum", "a snare drum hit"), Item("k4", "p", "speech", "speech", "x")]
    out = audio_lm.judge_captions(table, ["a wolf growls", "", "a drum hit", "a voice says hi"], items)
    # 'a drum hit' names no term of these labels ('drum' alone is none): unmatched, wrong, not guessed
    assert (out["n"], out["empty"], out["unmatched"]) == (4, 1, 2)
    assert out["category_accuracy"] == 0.5 and out["label_accuracy"] == 0.5
    assert out["per_category"]["animal"] == {"n": 2, "category_accuracy": 0.5, "label_accuracy": 0.5}
    assert out["per_category"]["music_instrument"]["category_accuracy"] == 0.0
    assert out["per_category"]["speech"]["label_accuracy"] == 1.0
    with pytest.raises(ValueError):
        audio_lm.judge_captions(table, ["x"], items)


class BandEmbedder:
    """A weights-free clip embedder for tests: log energy in 16 frequency bands (stands in for YAMNet)."""

    def clip_embedding(self, wav, sample_rate):
        x = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
        spectrum = torch.fft.rfft(x).abs().numpy()
        return np.log(np.array([b.mean() for b in np.array_split(spectrum, 16)]) + 1e-6)

    def info(self):
        return {"model": "band energies (test)", "weights_sha256": "none"}


def test_run_on_a_tiny_pipeline_writes_the_report(tmp_path):
    from tests.test_pipeline import build_tiny_pipeline

    pipe = build_tiny_pipeline(tmp_path / "model")
    freqs = {"speech": 300.0, "animal": 900.0, "music_instrument": 2500.0, "human_sounds": 5000.0}
    for row in TRAIN:
        save_audio(tmp_path / row["path"], sine(0.3, 16000, freq=freqs[row["category"]]), 16000)
    heldout = []
    for i, (c, lab, cap) in enumerate([("animal", "wolf", "a wolf howls")] * 3 + [("speech", "speech", 'a voice says "dos"')] * 3
                                      + [("music_instrument", "snare drum", "a snare drum hit")]):
        heldout.append({"path": f"heldout/{i}.wav", "category": c, "label": lab, "caption": cap})
        save_audio(tmp_path / heldout[-1]["path"], sine(0.3, 16000, freq=freqs[c] * 1.1), 16000)
    for name, rows in (("train", TRAIN), ("heldout", heldout)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = audio_lm.EvalConfig(per_category=2, prompts=("Describe the audio.", "What is this sound?"), batch_size=2,
                                     max_new_tokens=4, seconds=0.1, judge_per_category=3, save_wavs=1, batch_check=2,
                                     metrics=("bleu_1", "rouge_l"), normalizer="simple",
                                     judge_cache=str(tmp_path / "judge"))
    result = audio_lm.run(str(pipe), str(tmp_path / "heldout.jsonl"), str(tmp_path / "train.jsonl"), str(tmp_path),
                          str(tmp_path / "out"), settings, embedder=BandEmbedder())
    es = result["evaluation_set"]
    assert es["categories"] == ["animal", "speech"] and es["excluded_categories"] == {"music_instrument": 1}
    assert len(es["keys"]) == 4
    c = result["captioning"]
    assert set(c["prompts"]) == set(settings.prompts)
    for p in c["prompts"].values():
        assert len(p["captions"]) == 4 and set(p["metrics"]["scores"]) == {"bleu_1", "rouge_l"}
    # the majority class ('speech') is right on the 2 speech clips of 4; the rule covers the references
    assert c["baselines"]["majority class"]["category_accuracy"] == 0.5
    assert c["baselines"]["majority class"]["label_accuracy"] == 0.5
    assert c["best_frequency_label_accuracy"] == 0.5
    assert c["reference captions (rule coverage)"]["label_accuracy"] == 1.0
    assert 0.0 <= c["batch_check"]["differing_fraction"] <= 1.0
    g = result["generation"]
    assert g["judge_settings"]["clips"] == 6 and g["judge"]["embedder"]["model"] == "band energies (test)"
    # the judge names the real held-out clips (tones in each category's band) right; chance is 1/2
    assert g["real heldout clips"]["accuracy"] == 1.0 and g["chance_uniform"] == 0.5
    assert len(g["generated"]["predicted"]) == 4 and all(0 < s <= 0.1 + 1e-6 for s in g["generated_seconds"])
    assert len(g["saved_wavs"]) == 2 and all((tmp_path / "out" / w["path"]).is_file() for w in g["saved_wavs"])
    for name in ("audio_lm.json", "audio_lm.md", "audio_lm.png"):
        assert (tmp_path / "out" / name).is_file()
    md = (tmp_path / "out" / "audio_lm.md").read_text()
    assert "majority class" in md and "real heldout clips" in md and "Batch check" in md
    lis = result["listening"]  # the tiny pipeline is chat style: both measures, on the 4 clips
    assert lis["reliance"]["n"] == 4 and lis["reliance"]["tokens"] > 4 and lis["forced_choice"]["n"] == 4
    assert set(lis["forced_choice"]["answers"]) == {"animal", "speech"} and "Does the model listen?" in md
    probe = lis["probe"]  # fitted on every training clip of the evaluated categories (5 speech + 3 animal), scored on the 4
    assert probe["n_train"] == 8 and probe["n"] == 4 and len(probe["layers"]) == 3 and "Answer-state probe" in md
    assert probe["layers"][0]["heldout_accuracy"] == 0.5  # layer 0: the same embedding for every clip
    header = next(line for line in md.splitlines() if line.startswith("| system | category acc"))
    assert header.endswith("| bleu_1 | rouge_l |")  # the metrics asked for are the columns (not a fixed list)
    saved = json.loads((tmp_path / "out" / "audio_lm.json").read_text())
    assert saved["settings"]["prompts"] == list(settings.prompts) and saved["tool"] == "audio_lm"
    assert (tmp_path / "judge" / "probe.json").is_file()  # cached: a second fit reuses it
    judge, _ = audio_lm.fit_judge(TRAIN, tmp_path, ["animal", "speech"], 3, 0, tmp_path / "judge", BandEmbedder())
    assert judge.classes == ["animal", "speech"]


def test_clips_too_short_to_encode_are_listed_not_fatal(tmp_path):
    import lmmsn
    from tests.test_pipeline import build_tiny_pipeline

    pipe = lmmsn.load(str(build_tiny_pipeline(tmp_path / "model")), device="cpu")
    save_audio(tmp_path / "ok.wav", sine(0.3, 16000, freq=440.0), 16000)
    save_audio(tmp_path / "tiny.wav", sine(0.001, 16000, freq=440.0), 16000)  # 16 samples: under one latent frame
    items = [audio_lm.Item("ok.wav", tmp_path / "ok.wav", "animal", "wolf", "a wolf"),
             audio_lm.Item("tiny.wav", tmp_path / "tiny.wav", "speech", "speech", "a voice")]
    codes, cats, skipped = audio_lm.encode_or_skip(pipe, items)
    assert len(codes) == 1 and cats == ["animal"] and codes[0].numel() > 0
    assert [s["path"] for s in skipped] == [str(tmp_path / "tiny.wav")] and "shorter than one latent frame" in skipped[0]["reason"]


def test_a_heldout_clip_too_short_to_encode_is_left_out_of_every_section(tmp_path):
    from tests.test_pipeline import build_tiny_pipeline

    pipe = build_tiny_pipeline(tmp_path / "model")
    for row in TRAIN:
        save_audio(tmp_path / row["path"], sine(0.3, 16000, freq=500.0), 16000)
    heldout = []
    for i, c in enumerate(["animal"] * 3 + ["speech"] * 3):
        heldout.append({"path": f"heldout/{i}.wav", "category": c, "label": "wolf" if c == "animal" else "speech",
                        "caption": "a wolf howls" if c == "animal" else "a voice"})
        seconds = 0.001 if i == 5 else 0.3  # the last speech clip: 16 samples, under one latent frame
        save_audio(tmp_path / heldout[-1]["path"], sine(seconds, 16000, freq=700.0), 16000)
    for name, rows in (("train", TRAIN), ("heldout", heldout)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = audio_lm.EvalConfig(per_category=3, prompts=("Describe the audio.",), batch_size=2, max_new_tokens=3,
                                   generate=False, probe_per_category=0, batch_check=1, metrics=("bleu_1",),
                                   normalizer="simple")
    result = audio_lm.run(str(pipe), str(tmp_path / "heldout.jsonl"), str(tmp_path / "train.jsonl"), str(tmp_path),
                          str(tmp_path / "out"), settings, embedder=BandEmbedder())
    es = result["evaluation_set"]
    assert [s["path"] for s in es["skipped_clips"]] == [str(tmp_path / "heldout/5.wav")]
    assert len(es["keys"]) == 5 and "heldout/5.wav" not in es["keys"]
    assert len(result["captioning"]["prompts"]["Describe the audio."]["captions"]) == 5
    assert result["listening"]["forced_choice"]["n"] == 5 and result["listening"]["reliance"]["n"] == 5
    assert "Left out, too short or unreadable to encode: 1 drawn clip(s) (5.wav)" in (tmp_path / "out" / "audio_lm.md").read_text()


def test_results_are_split_by_whether_a_clips_source_was_trained_on():
    train = [{"path": "t0.wav", "source": "kit"}, {"path": "t1.wav", "source": "zoo"}, {"path": "t2.wav"}]
    heldout = [{"path": "h0.wav", "source": "kit"}, {"path": "h1.wav", "source": "game"},
               {"path": "h2.wav", "source": "zoo"}, {"path": "h3.wav"}]
    items = [audio_lm.Item(p, p, c, c, c) for p, c in
             (("h0.wav", "music_instrument"), ("h1.wav", "animal"), ("h2.wav", "animal"), ("h3.wav", "speech"))]
    kinds = audio_lm.source_kinds(items, heldout, train)
    assert kinds == [audio_lm.SEEN, audio_lm.UNSEEN, audio_lm.SEEN, None]
    captions = {"prompts": {"p1": {"items": [{"category_correct": c} for c in (True, True, False, True)]},
                            "p2": {"items": [{"category_correct": c} for c in (True, False, False, False)]}}}
    listening = {"forced_choice": {"choices": ["music_instrument", "speech", "animal", "speech"]}}
    generation = {"generated": {"predicted": ["speech", "animal", "speech", "speech"]}}
    out = audio_lm.by_source(kinds, items, captions, listening, generation)
    seen, unseen = out[audio_lm.SEEN], out[audio_lm.UNSEEN]
    assert (seen["n"], unseen["n"]) == (2, 1) and seen["majority_share"] == 0.5
    assert seen["caption_category_accuracy"] == 0.5 and unseen["caption_category_accuracy"] == 0.5  # (1/2 + 1/2) / 2; (1 + 0) / 2
    assert seen["forced_choice_accuracy"] == 1.0 and unseen["forced_choice_accuracy"] == 0.0
    assert seen["generated_judged_accuracy"] == 0.0 and unseen["generated_judged_accuracy"] == 1.0
