"""eval.listening: reply scores equal a by-hand computation; reliance and forced choice see a model that
listens (an oracle wrapper) and one that cannot (audio ids replaced before the forward)."""

from __future__ import annotations

import pytest
import torch

from eval import listening
from lmmsn.llm.instructions import category_name

CATS = ["animal", "music", "speech"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    import lmmsn
    from tests.test_pipeline import build_tiny_pipeline

    return lmmsn.load(str(build_tiny_pipeline(tmp_path_factory.mktemp("listen"))), device="cpu")


class _Out:
    def __init__(self, logits):
        self.logits = logits


class Oracle(torch.nn.Module):
    """The real tiny model, plus +bias on every token of the answer and caption of the category whose
    marker code (code k for CATS[k]) opens the clip; `deaf` replaces every audio id by <a_0> instead."""

    def __init__(self, model, voc, tok, bias: float, deaf: bool = False):
        super().__init__()
        self.model, self.voc, self.bias, self.deaf = model, voc, bias, deaf
        words = {c: set(tok(" " + category_name(c) + ". " + _caption(c), add_special_tokens=False)["input_ids"]) for c in CATS}
        self.marks = {k: sorted(words[c]) for k, c in enumerate(CATS)}  # every token of its answer and caption

    def forward(self, input_ids, attention_mask=None, **kw):
        ids = input_ids.clone()
        audio = (ids >= self.voc.first_audio_id) & (ids < self.voc.first_audio_id + self.voc.codebook_size)
        if self.deaf:
            ids[audio] = self.voc.first_audio_id
        logits = self.model(input_ids=ids, attention_mask=attention_mask).logits.clone()  # [B, L, V]
        if not self.deaf:
            for b in range(ids.shape[0]):
                first = int(ids[b][audio[b]][0]) - self.voc.first_audio_id
                if first in self.marks:
                    logits[b, :, self.marks[first]] += self.bias
        return _Out(logits)


def _caption(c: str) -> str:
    return {"animal": "a wolf howls", "music": "a piano melody", "speech": "a voice says hello"}[c]


def _clips(n_per: int = 3, length: int = 12):
    g = torch.Generator().manual_seed(0)
    codes, cats = [], []
    for k, c in enumerate(CATS):
        for _ in range(n_per):
            x = torch.randint(3, 32, (length,), generator=g)
            x[0] = k  # the marker code the oracle reads; same length everywhere: positions never differ
            codes.append(x)
            cats.append(c)
    return codes, cats


def test_reply_nll_equals_a_by_hand_sum_over_the_reply_tokens(pipe):
    from lmmsn.llm.prompts import caption_messages, end_of_turn, render_chat, tokenize_rendered

    codes = torch.tensor([1, 5, 7, 9])
    replies = ["a wolf howls", "music.", "a much longer reply about a piano melody"]
    got = listening.reply_nll(pipe, codes, replies, "What is this?")  # one right-padded batch
    tok = pipe.lm.text_tokenizer
    for reply, (nll, n) in zip(replies, got, strict=True):
        ex = tokenize_rendered(render_chat(caption_messages(reply, "What is this?"), pipe.vocabulary, [codes],
                                          add_generation_prompt=False, eos=end_of_turn(tok)), tok)
        with torch.no_grad():
            logp = pipe.lm.model(input_ids=ex.input_ids[None]).logits[0].float().log_softmax(-1)
        keep = [i for i in range(1, len(ex.labels)) if ex.labels[i] >= 0]
        assert n == len(keep) > 0
        assert nll == pytest.approx(-sum(float(logp[i - 1, ex.input_ids[i]]) for i in keep), rel=1e-4, abs=1e-4)


def test_a_listening_model_gains_and_chooses_right_a_deaf_one_does_not(pipe):
    codes, cats = _clips()
    caps = [_caption(c) for c in cats]
    real = pipe.lm.model
    try:
        pipe.lm.model = Oracle(real, pipe.vocabulary, pipe.lm.text_tokenizer, bias=20.0)
        rel = listening.audio_reliance(pipe, codes, caps, cats, "Describe the audio.", seed=0)
        fc = listening.forced_choice(pipe, codes, cats)
        pipe.lm.model = Oracle(real, pipe.vocabulary, pipe.lm.text_tokenizer, bias=20.0, deaf=True)
        deaf = listening.audio_reliance(pipe, codes, caps, cats, "Describe the audio.", seed=0)
        deaf_fc = listening.forced_choice(pipe, codes, cats)
    finally:
        pipe.lm.model = real
    assert rel["gain_nats_per_token"] > 1.0 and rel["gain_ci95"][0] > 0 and rel["clips_better_with_own"] == 1.0
    assert fc["accuracy"] == 1.0 and fc["chance_uniform"] == pytest.approx(1 / 3)
    assert fc["confusion"]["music"] == {"music": 3}
    assert deaf["gain_nats_per_token"] == pytest.approx(0.0, abs=1e-5)  # identical inputs once the audio is gone
    assert len(set(deaf_fc["choices"])) == 1 and deaf_fc["accuracy"] == pytest.approx(1 / 3)
    assert fc["calibrated_accuracy"] == 1.0 and deaf_fc["calibrated_accuracy"] <= 1 / 3 + 1e-9
    assert len(fc["log_probs"]) == 9 and len(fc["log_probs"][0]) == 3
    md = listening.listening_md({"reliance": rel, "forced_choice": fc})
    assert "| music | 0 | 3 | 0 | 1.00 |" in md and "gain **" in md


def test_calibration_cancels_a_fixed_preference(pipe):
    """A model that prefers one answer by a constant but still ranks the true one higher than its
    mean: raw choice always the preferred answer, calibrated choice right."""
    codes, cats = _clips()
    real = pipe.lm.model
    tok = pipe.lm.text_tokenizer

    class Biased(Oracle):
        def forward(self, input_ids, attention_mask=None, **kw):
            out = super().forward(input_ids, attention_mask)
            speech = tok(" " + category_name("speech"), add_special_tokens=False)["input_ids"]
            out.logits[:, :, speech] += 25.0  # every clip: 'speech.' far ahead
            return out

    try:
        pipe.lm.model = Biased(real, pipe.vocabulary, tok, bias=20.0)
        fc = listening.forced_choice(pipe, codes, cats)
    finally:
        pipe.lm.model = real
    assert set(fc["choices"]) == {"speech"} and fc["accuracy"] == pytest.approx(1 / 3)
    assert fc["calibrated_accuracy"] == 1.0


def test_derangement_never_pairs_a_clip_with_its_own_category():
    cats = ["a", "a", "b", "c", "c", "c"]
    for seed in range(5):
        other = listening.derangement(cats, seed)
        assert all(cats[j] != c for j, c in zip(other, cats, strict=True))
    with pytest.raises(ValueError, match="2 categories"):
        listening.derangement(["a", "a"], 0)


def _range_clips(n_per: int, seed: int, length: int = 10):
    """Category k draws its codes from its own range: the pooled audio tells the category apart."""
    g = torch.Generator().manual_seed(seed)
    codes, cats = [], []
    for k, c in enumerate(CATS):
        for _ in range(n_per):
            codes.append(torch.randint(3 + 9 * k, 12 + 9 * k, (length,), generator=g))
            cats.append(c)
    return codes, cats


class _Deaf(torch.nn.Module):
    """The real model with every audio id replaced by <a_0> (hidden states included)."""

    def __init__(self, model, voc):
        super().__init__()
        self.model, self.voc = model, voc

    def forward(self, input_ids, **kw):
        ids = input_ids.clone()
        ids[(ids >= self.voc.first_audio_id) & (ids < self.voc.first_audio_id + self.voc.codebook_size)] = self.voc.first_audio_id
        return self.model(input_ids=ids, **kw)


def test_answer_state_probe_reads_the_category_when_the_audio_reaches_the_answer(pipe):
    pytest.importorskip("sklearn")
    train, train_cats = _range_clips(8, seed=1)
    test, test_cats = _range_clips(4, seed=2)
    probe = listening.answer_state_probe(pipe, train, train_cats, test, test_cats)
    layers = probe["layers"]
    assert len(layers) == pipe.lm.model.config.num_hidden_layers + 1 and probe["n_train"] == 24 and probe["n"] == 12
    assert layers[0]["heldout_accuracy"] == pytest.approx(1 / 3)  # the prompt's last embedding: same for every clip
    # a random LM still pools which code range the clip used (chance 1/3; 0.92 and 0.83 here)
    assert min(x["heldout_accuracy"] for x in layers[1:]) >= 0.75 and all(x["train_accuracy"] == 1.0 for x in layers[1:])
    real = pipe.lm.model
    try:
        pipe.lm.model = _Deaf(real, pipe.vocabulary)
        deaf = listening.answer_state_probe(pipe, train, train_cats, test, test_cats)
    finally:
        pipe.lm.model = real
    assert all(x["heldout_accuracy"] == pytest.approx(1 / 3) for x in deaf["layers"])  # nothing of the clip arrives
    md = listening.listening_md({"probe": probe})
    assert "Answer-state probe" in md and f"last layer **{probe['last_layer_heldout']:.3f}**" in md
    with pytest.raises(ValueError, match="2 categories"):
        listening.answer_state_probe(pipe, train[:2], ["animal", "animal"], test, test_cats)
