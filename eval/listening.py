"""Does the model listen? Two measures that need no judge model: what the clip does to the LM's scores.

Greedy captions can collapse to one frequent answer even when the model holds some
information about the clip, and they can look right when it holds none (a frequent
caption of the most frequent category). These two measures read the model's
log-probabilities instead, on the same held-out clips:

* **Audio reliance** (`audio_reliance`): the mean negative log-likelihood per token of
  each clip's reference caption given its own clip, and given a clip of ANOTHER
  category (a seeded derangement across categories). The gain (other - own, nats per
  caption token, with a bootstrap interval over clips) is 0 for a model that ignores
  the audio, whatever its captions look like.
* **Forced-choice category** (`forced_choice`): the category question of the
  fine-tuning dialogues (`llm.instructions`, "What category of sound is this?") is
  asked about each clip, and the answer the model scores highest among every
  category's answer ("an animal sound.", ...) is its choice: accuracy against chance
  and against always choosing the model's most frequent choice, with the confusion
  counts; and calibrated: the same after removing each answer's mean log-probability
  over the evaluated clips (contextual calibration), which cancels a fixed preference
  for one answer and leaves how the clip moves the choice. Chat-style pipelines only
  (a pretrained-only model was never asked questions).
* **Answer-state probe** (`answer_state_probe`): does the clip's category reach the
  hidden state from which the model must answer, even when its answer ignores it?
  A logistic regression on each layer's hidden state at the input position of the
  category answer's first token, fitted on training clips and scored on the held-out
  ones (layer 0, the prompt's last embedding, is the same for every clip: chance, a
  built-in check). High probe accuracy with a forced choice at chance means the model
  pools its audio but never learned to answer from it. Chat-style pipelines only.

Scores come from the training renderer (`llm.prompts.render_chat` /
`render_pretraining` + `tokenize_rendered`), so the scored tokens are exactly those
fine-tuning trained as targets (the reply, its leading space and the end of turn).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

CATEGORY_QUESTION = "What category of sound is this?"
"A category question of the fine-tuning dialogues (one of `llm.instructions.CATEGORY_QUESTIONS`)."


def _examples(pipeline: Any, codes: torch.Tensor, replies: Sequence[str], question: str) -> list[Any]:
    """The training render of `codes` + question + each reply (chat), or audio-first pair (pretrain)."""
    from lmmsn.llm.prompts import (
        Rendered,
        caption_messages,
        end_of_turn,
        render_chat,
        render_pretraining,
        tokenize_rendered,
    )

    tok, voc = pipeline.lm.text_tokenizer, pipeline.vocabulary
    eos = end_of_turn(tok)
    out = []
    for reply in replies:
        if pipeline.config.prompt_style == "chat":
            rendered = render_chat(caption_messages(reply, question), voc, [codes], add_generation_prompt=False, eos=eos)
        else:  # the audio-first pair; only the caption (its space, text and end) is scored
            whole = render_pretraining(reply, codes, voc, audio_first=True, eos=eos)
            rendered = Rendered(whole.text, [(len(voc.format_audio(codes)), len(whole.text))])
        out.append(tokenize_rendered(rendered, tok))
    return out


@torch.no_grad()
def reply_nll(pipeline: Any, codes: torch.Tensor, replies: Sequence[str], question: str) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each reply after `codes` + `question`; one batch."""
    from lmmsn.llm.data import collate

    examples = _examples(pipeline, codes, replies, question)
    pad = pipeline.lm.text_tokenizer.pad_token_id
    batch = collate(examples, pad_id=0 if pad is None else pad)  # right padding; pads are never labels
    device = pipeline.device
    logits = pipeline.lm.model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits.float()  # [B, L, V]
    labels = batch["labels"].to(device)[:, 1:]  # [B, L-1]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
    mask = labels >= 0
    return [(float((nll[i] * mask[i]).sum()), int(mask[i].sum())) for i in range(len(examples))]


def derangement(categories: Sequence[str], seed: int) -> list[int]:
    """For each clip the index of a clip of another category (seeded); needs >= 2 categories."""
    if len(set(categories)) < 2:
        raise ValueError("audio reliance needs clips of at least 2 categories")
    rng = random.Random(seed)
    out = []
    for cat in categories:
        others = [j for j, c in enumerate(categories) if c != cat]
        out.append(rng.choice(others))
    return out


def bootstrap_ci(values: Sequence[float], weights: Sequence[float], seed: int, n: int = 1000) -> list[float]:
    """95% percentile interval of the weighted mean over resampled clips."""
    v, w = np.asarray(values, float), np.asarray(weights, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n, len(v)))
    means = (v[idx] * w[idx]).sum(1) / np.maximum(w[idx].sum(1), 1e-12)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def audio_reliance(pipeline: Any, codes: Sequence[torch.Tensor], captions: Sequence[str], categories: Sequence[str],
                   question: str, seed: int = 0) -> dict[str, Any]:
    """Reference-caption NLL per token given its own clip vs a clip of another category (module docstring)."""
    from tqdm import tqdm

    other = derangement(categories, seed)
    own_nll, other_nll, tokens = [], [], []
    for i in tqdm(range(len(codes)), desc="audio reliance", unit="clip", mininterval=2):
        (a, n), = reply_nll(pipeline, codes[i], [captions[i]], question)
        (b, _), = reply_nll(pipeline, codes[other[i]], [captions[i]], question)
        own_nll.append(a)
        other_nll.append(b)
        tokens.append(n)
    total = max(1, sum(tokens))
    per_clip_gain = [(b - a) / max(1, n) for a, b, n in zip(own_nll, other_nll, tokens, strict=True)]
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        by_cat.setdefault(c, []).append(i)
    return {
        "question": question if pipeline.config.prompt_style == "chat" else None,
        "n": len(codes), "tokens": total,
        "own_nll_per_token": sum(own_nll) / total, "other_nll_per_token": sum(other_nll) / total,
        "gain_nats_per_token": (sum(other_nll) - sum(own_nll)) / total,
        "gain_ci95": bootstrap_ci(per_clip_gain, tokens, seed),
        "clips_better_with_own": sum(a < b for a, b in zip(own_nll, other_nll, strict=True)) / max(1, len(codes)),
        "per_category_gain": {c: (sum(other_nll[i] for i in ix) - sum(own_nll[i] for i in ix)) / max(1, sum(tokens[i] for i in ix))
                              for c, ix in by_cat.items()},
    }


def forced_choice(pipeline: Any, codes: Sequence[torch.Tensor], categories: Sequence[str],
                  question: str = CATEGORY_QUESTION) -> dict[str, Any]:
    """The category answer the model scores highest for each clip (module docstring)."""
    from tqdm import tqdm

    from lmmsn.llm.instructions import category_name

    options = sorted(set(categories))
    answers = [category_name(c) + "." for c in options]  # as the fine-tuning dialogues answer
    scores = []
    for i in tqdm(range(len(codes)), desc="forced choice", unit="clip", mininterval=2):
        scores.append([-s for s, _ in reply_nll(pipeline, codes[i], answers, question)])
    table = np.array(scores)  # [clips, options] log-probabilities of each whole answer
    choices = [options[int(j)] for j in table.argmax(1)]
    # calibrated: each answer's mean log-probability over the clips removed (contextual calibration,
    # Zhao et al. 2021), so a fixed preference for one answer cancels and what is left is how the
    # clip moves the choice; transductive (uses the evaluated clips' mean), fair on a balanced set
    calibrated = [options[int(j)] for j in (table - table.mean(0)).argmax(1)]
    correct = [c == t for c, t in zip(choices, categories, strict=True)]
    chosen = Counter(choices)
    most = chosen.most_common(1)[0][0]
    return {
        "question": question, "answers": dict(zip(options, answers, strict=True)), "n": len(codes),
        "accuracy": sum(correct) / max(1, len(codes)),
        "calibrated_accuracy": sum(c == t for c, t in zip(calibrated, categories, strict=True)) / max(1, len(codes)),
        "log_probs": table.round(4).tolist(),
        "chance_uniform": 1 / len(options),
        "always_its_most_frequent_choice": sum(t == most for t in categories) / max(1, len(codes)),
        "most_frequent_choice": most, "choices": choices,
        "per_category_accuracy": {c: sum(ok for ok, t in zip(correct, categories, strict=True) if t == c)
                                  / max(1, sum(t == c for t in categories)) for c in options},
        "confusion": {t: dict(Counter(ch for ch, tt in zip(choices, categories, strict=True) if tt == t)) for t in options},
    }


@torch.no_grad()
def answer_states(pipeline: Any, codes: Sequence[torch.Tensor], question: str = CATEGORY_QUESTION) -> np.ndarray:
    """[clips, layers + 1, D] hidden states at the input position of the answer's first token."""
    from tqdm import tqdm

    out = []
    for c in tqdm(codes, desc="answer states", unit="clip", mininterval=2):
        ex = _examples(pipeline, c, ["x."], question)[0]
        first = int((ex.labels >= 0).nonzero()[0])  # the first reply token; it is predicted at first - 1
        hidden = pipeline.lm.model(input_ids=ex.input_ids[None].to(pipeline.device), output_hidden_states=True).hidden_states
        out.append(np.stack([h[0, first - 1].float().cpu().numpy() for h in hidden]))
    return np.stack(out)


def answer_state_probe(pipeline: Any, train_codes: Sequence[torch.Tensor], train_categories: Sequence[str],
                       codes: Sequence[torch.Tensor], categories: Sequence[str], question: str = CATEGORY_QUESTION,
                       strength: float = 0.1) -> dict[str, Any]:
    """Per layer: a linear probe of the category on the answer-position hidden state (module docstring).

    `strength`: the inverse L2 penalty C of scikit-learn's LogisticRegression, on standardised features.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(set(train_categories)) < 2:
        raise ValueError("the answer-state probe needs training clips of at least 2 categories")
    fit_x, test_x = answer_states(pipeline, train_codes, question), answer_states(pipeline, codes, question)
    layers = []
    for layer in range(fit_x.shape[1]):
        scaler = StandardScaler().fit(fit_x[:, layer])
        clf = LogisticRegression(C=strength, max_iter=2000).fit(scaler.transform(fit_x[:, layer]), list(train_categories))
        layers.append({"layer": layer, "train_accuracy": float(clf.score(scaler.transform(fit_x[:, layer]), list(train_categories))),
                       "heldout_accuracy": float(clf.score(scaler.transform(test_x[:, layer]), list(categories)))})
    most = Counter(categories).most_common(1)[0][1]
    return {"question": question, "n_train": len(train_codes), "n": len(codes), "strength": strength,
            "chance_uniform": 1 / len(set(categories)), "majority": most / max(1, len(categories)),
            "layers": layers, "last_layer_heldout": layers[-1]["heldout_accuracy"],
            "best_layer_heldout": max(x["heldout_accuracy"] for x in layers)}


def listening_md(listening: dict[str, Any]) -> str:
    """The report's section on both measures."""
    lines = ["## Does the model listen?", ""]
    r = listening.get("reliance")
    if r:
        lo, hi = r["gain_ci95"]
        lines += [f"Audio reliance: reference-caption NLL {r['own_nll_per_token']:.3f} nats/token given its own clip, "
                  f"{r['other_nll_per_token']:.3f} given a clip of another category: gain **{r['gain_nats_per_token']:.3f}** "
                  f"(95% CI {lo:.3f} to {hi:.3f}; {r['n']} clips, {r['tokens']} tokens; own clip better for "
                  f"{r['clips_better_with_own']:.0%} of clips). 0 = the captions do not depend on the audio.", ""]
    f = listening.get("forced_choice")
    if f:
        lines += [f"Forced-choice category (\"{f['question']}\", the answer scored highest among "
                  f"{len(f['answers'])} categories): accuracy **{f['accuracy']:.3f}**, chance {f['chance_uniform']:.3f}, "
                  f"always '{f['most_frequent_choice']}' (its most frequent choice) {f['always_its_most_frequent_choice']:.3f}; "
                  f"calibrated (each answer's mean log-probability over these clips removed, so only the clip's effect "
                  f"on the choice is left) **{f['calibrated_accuracy']:.3f}**.", ""]
        cats = list(f["answers"])
        lines += ["| true \\ chosen | " + " | ".join(cats) + " | accuracy |", "|---" * (len(cats) + 2) + "|"]
        for t in cats:
            row = [str(f["confusion"].get(t, {}).get(c, 0)) for c in cats]
            lines.append(f"| {t} | " + " | ".join(row) + f" | {f['per_category_accuracy'][t]:.2f} |")
        lines.append("")
    p = listening.get("probe")
    if p:
        lines += [f"Answer-state probe (a linear probe of the category on each layer's hidden state where the model "
                  f"must answer \"{p['question']}\"; fitted on {p['n_train']} training clips, scored on these {p['n']}; "
                  f"chance {p['chance_uniform']:.3f}): last layer **{p['last_layer_heldout']:.3f}**, best layer "
                  f"{p['best_layer_heldout']:.3f}. Far above the forced choice means the audio reaches the answer "
                  f"position but the answer does not use it.", "",
                  "| layer | " + " | ".join(str(x["layer"]) for x in p["layers"]) + " |", "|---" * (len(p["layers"]) + 1) + "|",
                  "| held-out | " + " | ".join(f"{x['heldout_accuracy']:.2f}" for x in p["layers"]) + " |",
                  "| training | " + " | ".join(f"{x['train_accuracy']:.2f}" for x in p["layers"]) + " |", ""]
    return "\n".join(lines)
