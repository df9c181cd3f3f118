"""Tests for eval.captioning: agreement with aac-metrics, normaliser, unavailable metrics."""

import pytest
from aac_metrics.functional import bleu, cider_d

from eval.captioning import metric_status, read_captions, score_captions, simple_normalise

CANDS = ["A dog barks loudly.", "Rain falls on a tin roof", "a car passes by"]
REFS = [["A dog is barking.", "dog barking nearby"], ["rain on a roof", "heavy rain falls"], ["a car drives past", "traffic noise"]]


def test_simple_normaliser():
    assert simple_normalise("  A Dog's bark -- LOUD!  ") == "a dog's bark -- loud"
    assert simple_normalise("Hip-hop, (live).") == "hip-hop live"


def test_cider_and_bleu_agree_with_aac_metrics_called_directly():
    res = score_captions(CANDS, REFS, metrics=["cider_d", "bleu_1", "bleu_4"], normaliser="simple")
    cands = [simple_normalise(c) for c in CANDS]
    refs = [[simple_normalise(r) for r in rr] for rr in REFS]
    c_corpus, c_sents = cider_d(cands, refs)
    b_corpus, _ = bleu(cands, refs, n=1)
    assert res["metrics"]["cider_d"]["score"] == pytest.approx(float(c_corpus["cider_d"]), abs=1e-9)
    assert res["metrics"]["cider_d"]["per_item"] == pytest.approx(c_sents["cider_d"].tolist())
    assert res["metrics"]["bleu_1"]["score"] == pytest.approx(float(b_corpus["bleu_1"]), abs=1e-9)
    assert res["normaliser"] == "simple" and "str.split" in res["word_tokenizer"]


def test_perfect_candidate_scores_higher():
    good = score_captions(["a dog is barking"], [["a dog is barking", "dog barking"]], metrics=["bleu_1"], normaliser="simple")
    bad = score_captions(["music plays"], [["a dog is barking", "dog barking"]], metrics=["bleu_1"], normaliser="simple")
    assert good["metrics"]["bleu_1"]["score"] == pytest.approx(1.0, abs=1e-6)
    assert bad["metrics"]["bleu_1"]["score"] < 0.1


def test_missing_resources_are_reported_unavailable(tmp_path):
    res = score_captions(CANDS, REFS, metrics=["meteor", "spice", "spider", "sbert_sim", "fense", "cider_d"], normaliser="simple", java_path=str(tmp_path / "no-java"), sbert_model=None)
    assert set(res["metrics"]) == {"meteor", "spice", "spider", "sbert_sim", "fense", "cider_d"}
    for name in ("meteor", "spice", "spider"):
        m = res["metrics"][name]
        assert m["status"] == "unavailable" and "no-java" in m["reason"] and "Java 8-13" in m["install"]
    for name in ("sbert_sim", "fense"):
        assert res["metrics"][name]["status"] == "unavailable" and "--sbert-model" in res["metrics"][name]["install"]
    assert res["metrics"]["cider_d"]["status"] == "ok"
    st = metric_status("sbert_sim", sbert_model=str(tmp_path / "missing"))
    assert not st["available"] and "does not exist" in st["reason"]


def test_auto_normaliser_falls_back_with_reason(tmp_path):
    res = score_captions(CANDS, REFS, metrics=["bleu_1"], normaliser="auto", java_path=str(tmp_path / "no-java"))
    assert res["normaliser"] == "simple" and "PTB tokenizer unavailable" in res["normaliser_reason"]
    with pytest.raises(RuntimeError, match="PTB tokenizer unavailable"):
        score_captions(CANDS, REFS, metrics=["bleu_1"], normaliser="ptb", java_path=str(tmp_path / "no-java"))


def test_read_captions_csv(tmp_path):
    (tmp_path / "refs.csv").write_text("file_name,caption_1,caption_2\nx.wav,a dog,a dog barks\ny.wav,rain,\n")
    assert read_captions(tmp_path / "refs.csv", multi=True) == {"x.wav": ["a dog", "a dog barks"], "y.wav": ["rain"]}
