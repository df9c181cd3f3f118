"""Held-out judgement of an audio-language pipeline: the captions it writes and the audio it generates.

    python -m eval.audio_lm --pipeline checkpoints/lm-msn --heldout data/corpus-split/heldout.jsonl \\
        --train data/corpus-split/train.jsonl --audio-root data/corpus --out reports/audio_lm

Evaluation set: a category-balanced draw from the held-out manifest (rows the
model never trained on: whole held-out sources plus random clips), `--per-category`
clips (default 30) of every category that has at least that many held-out rows
(`choose_categories`; the excluded categories and their counts are recorded).

Captioning. Each clip (its first 10 s, as the pipeline reads it) is captioned
greedily with each of `--prompts` (evaluation-practice.md section 1: several
templates, mean and spread reported, not one lucky prompt). A caption is judged
with `eval.label_match` (documented there): category accuracy (the category of
its first label term) and label accuracy (a term of the clip's label appears);
empty and unmatched captions are counted, never guessed. Baselines, judged by
the same rule on the same clips: the majority class (the most frequent training
label written as the caption; it also names the most frequent training
category) and the caption frequency (the most frequent training caption for
every clip). BLEU-1/4, ROUGE-L, CIDEr-D and METEOR (`eval.captioning`, PTB
tokenizer when Java runs) against the clip's reference caption sit beside them.
A batch check captions the first clips at batch size 1 and at the run's batch
size and reports the fraction of captions that differ.

Listening (`eval.listening`, no judge model): the reference caption's NLL per
token given its own clip vs a clip of another category (0 gain: the captions do
not depend on the audio), and, for chat pipelines, the category answer the model
scores highest for the fine-tuning dialogues' category question, vs chance, and
a linear probe of the category on the hidden state where it must answer (fitted
on training clips): whether the audio reaches the answer at all.

Generation. For each clip's reference caption the pipeline generates audio
(`Pipeline.generate`, its own prompt); a `CategoryJudge` (YAMNet embedding +
linear probe, `eval.judges`) fitted on REAL TRAINING clips of the evaluated
categories (at most `--judge-per-category` per category, a seeded draw, so the
probe is not dominated by the most frequent category; never on held-out clips,
never on generated audio) names its category. Beside it: the same judge on the
real held-out clips (first 10 s) and on their tokenizer reconstructions (encode ->
decode), the ceilings a generation can reach, and chance (uniform, majority).
A few generated clips are written as WAV (`--save-wavs` per category).

Writes `audio_lm.json` (every caption, judgement and setting), `audio_lm.md`,
`audio_lm.png` and `audio/*.wav` under `--out`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eval.common import (
    Item,
    cli_logging,
    environment,
    environment_md,
    markdown_table,
    read_manifest,
    save_figure,
    write_result,
)
from eval.label_match import RULE_VERSION, SYNONYMS, LabelTable

log = logging.getLogger(__name__)

DEFAULT_PROMPTS = ("Describe the audio.", "What is this sound?", "Tell me what you hear in this clip.")
"Caption prompts: the pipeline's default, another training phrasing, and one never trained on."
METRICS = ("bleu_1", "bleu_4", "rouge_l", "cider_d", "meteor")
INPUT_SECONDS = 10.0
"Clips are judged and captioned on their first 10 s (the pipeline's input_seconds)."


# --------------------------------------------------------------------------- data


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """JSON-lines manifest rows."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def choose_categories(rows: Sequence[Mapping[str, Any]], per_category: int) -> tuple[list[str], dict[str, int]]:
    """(categories with at least `per_category` rows, sorted; {excluded category: its row count})."""
    counts = Counter(str(r["category"]) for r in rows)
    chosen = sorted(c for c, n in counts.items() if n >= per_category)
    return chosen, {c: n for c, n in sorted(counts.items()) if n < per_category}


def frequency_baselines(train_rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The training side's most frequent label, category and caption (ties: alphabetical)."""

    def top(key: str) -> str:
        counts = Counter(str(r[key]) for r in train_rows if r.get(key))
        return min(counts, key=lambda v: (-counts[v], v))

    return {"majority_label": top("label"), "majority_category": top("category"), "most_frequent_caption": top("caption")}


# --------------------------------------------------------------------------- captions


def judge_captions(table: LabelTable, captions: Sequence[str], items: Sequence[Item]) -> dict[str, Any]:
    """Category / label accuracy of one caption per item under `eval.label_match`, overall and per category."""
    if len(captions) != len(items):
        raise ValueError(f"{len(captions)} captions for {len(items)} clips")
    judged = [table.judge(c, it.label, it.category) for c, it in zip(captions, items, strict=True)]
    per: dict[str, dict[str, float]] = {}
    for cat in dict.fromkeys(it.category for it in items):
        rows = [j for j, it in zip(judged, items, strict=True) if it.category == cat]
        per[cat] = {"n": len(rows), "category_accuracy": sum(j["category_correct"] for j in rows) / len(rows),
                    "label_accuracy": sum(j["label_correct"] for j in rows) / len(rows)}
    n = len(items)
    return {"n": n, "category_accuracy": sum(j["category_correct"] for j in judged) / n,
            "label_accuracy": sum(j["label_correct"] for j in judged) / n,
            "empty": sum(j["empty"] for j in judged), "unmatched": sum(not j["matched"] for j in judged),
            "per_category": per, "items": judged}


def caption_metrics(captions: Sequence[str], items: Sequence[Item], metrics: Sequence[str],
                    normalizer: str = "auto") -> dict[str, Any]:
    """BLEU / ROUGE-L / CIDEr-D / METEOR against each clip's reference caption (`eval.captioning`)."""
    from eval.captioning import score_captions

    scored = score_captions(list(captions), [[it.caption] for it in items], metrics=list(metrics), normalizer=normalizer)
    return {"normalizer": scored["normalizer"], "normalizer_reason": scored["normalizer_reason"],
            "scores": {m: (v["score"] if v["status"] == "ok" else None) for m, v in scored["metrics"].items()},
            "unavailable": {m: v["reason"] for m, v in scored["metrics"].items() if v["status"] != "ok"}}


def caption_all(pipeline: Any, audios: Sequence[Any], prompt: str, batch_size: int, max_new_tokens: int) -> list[str]:
    """One greedy caption per clip ((wav, sr) pairs at the pipeline's rate), in batches."""
    from tqdm import tqdm

    out: list[str] = []
    for start in tqdm(range(0, len(audios), batch_size), desc=f"captions {prompt[:24]!r}", leave=False):
        batch = [w for w, _ in audios[start : start + batch_size]]
        out.extend(pipeline.caption(batch, prompt, max_new_tokens=max_new_tokens, temperature=0.0))
    return out


# --------------------------------------------------------------------------- generation


def draw_training(train_rows: Sequence[Mapping[str, Any]], categories: Sequence[str], per_category: int,
                  seed: int) -> list[Mapping[str, Any]]:
    """Up to `per_category` training rows of each category, a seeded draw (same rows for the same seed)."""
    picked: list[Mapping[str, Any]] = []
    for cat in categories:
        rows = sorted((r for r in train_rows if r.get("category") == cat), key=lambda r: r["path"])
        picked.extend(random.Random(f"{seed}:{cat}").sample(rows, min(per_category, len(rows))))
    return picked


def encode_or_skip(pipeline: Any, items: Sequence[Item], audios: Sequence[Any] | None = None,
                   ) -> tuple[list[Any], list[str], list[dict[str, str]]]:
    """Codes and categories of the items the pipeline can encode; the others (too short for one
    latent frame, unreadable) are skipped and listed with the reason, instead of ending the run.

    `audios`: the items' clips as `load_clips` gives them (loaded here when None).
    """
    codes, cats, skipped = [], [], []
    for it, code, reason in _encode_each(pipeline, items, audios):
        if code is None:
            skipped.append({"path": str(it.path), "reason": reason})
        else:
            codes.append(code)
            cats.append(it.category)
    return codes, cats, skipped


def _encode_each(pipeline: Any, items: Sequence[Item], audios: Sequence[Any] | None) -> list[tuple[Item, Any, str]]:
    """(item, codes or None, why not) per item, one clip at a time."""
    from eval.common import load_clips
    from lmmsn.audio import AudioError

    if audios is None:
        audios = load_clips(items, pipeline.sample_rate, pipeline.channels, INPUT_SECONDS)
    out = []
    for it, (wav, _) in zip(items, audios, strict=True):
        try:
            out.append((it, pipeline.encode([wav], pipeline.sample_rate)[0], ""))
        except AudioError as exc:
            log.warning("%s: skipped (%s)", it.path, exc)
            out.append((it, None, str(exc)))
    return out


SEEN, UNSEEN = "clips of training sources", "clips of held-out sources"


def source_kinds(items: Sequence[Item], heldout_rows: Sequence[Mapping[str, Any]],
                 train_rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Per item: SEEN if its manifest `source` also gives training rows, UNSEEN if not, None without a source.

    A split that holds out whole sources plus random clips (data_prep.split_manifest) tests two
    things at once: new clips of familiar recordings, and recordings of a kind never heard.
    """
    trained = {r.get("source") for r in train_rows if r.get("source")}
    source = {str(r.get("path")): r.get("source") for r in heldout_rows}
    out: list[str | None] = []
    for it in items:
        src = source.get(str(it.key))
        out.append(None if not src else SEEN if src in trained else UNSEEN)
    return out


def by_source(kinds: Sequence[str | None], items: Sequence[Item], captions: Mapping[str, Any],
              listening: Mapping[str, Any] | None, generation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Caption category accuracy (mean over prompts), forced choice and judged generation per source kind."""
    out: dict[str, Any] = {}
    for kind in (SEEN, UNSEEN):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if not idx:
            continue
        cats = Counter(items[i].category for i in idx)
        row: dict[str, Any] = {"n": len(idx), "categories": dict(cats),
                               "majority_share": max(cats.values()) / len(idx)}
        row["caption_category_accuracy"] = statistics.fmean(
            sum(p["items"][i]["category_correct"] for i in idx) / len(idx) for p in captions["prompts"].values())
        fc = (listening or {}).get("forced_choice")
        if fc:
            row["forced_choice_accuracy"] = sum(fc["choices"][i] == items[i].category for i in idx) / len(idx)
        if generation:
            predicted = generation["generated"]["predicted"]
            row["generated_judged_accuracy"] = sum(predicted[i] == items[i].category for i in idx) / len(idx)
        out[kind] = row
    return out


def fit_judge(train_rows: Sequence[Mapping[str, Any]], audio_root: Path, categories: Sequence[str],
              per_category: int, seed: int, cache: Path | None, embedder: Any | None = None) -> tuple[Any, dict[str, Any]]:
    """A CategoryJudge fitted on real training clips of `categories` (cached in `cache` by its settings).

    `embedder`: the clip embedder (None: YAMNet); a cached probe is reused only for the same embedder.
    """
    from eval.common import load_clips
    from eval.judges import CategoryJudge

    picked = draw_training(train_rows, categories, per_category, seed)
    settings = {"categories": list(categories), "per_category": per_category, "seed": seed,
                "clips": len(picked), "seconds": INPUT_SECONDS, "fitted_on": "real training clips (first 10 s)",
                "keys_sha1": hashlib.sha1("\n".join(r["path"] for r in picked).encode()).hexdigest()}
    if cache is not None and (cache / "probe.json").is_file() and (cache / "settings.json").is_file():
        if json.loads((cache / "settings.json").read_text()) == settings:
            log.info("loading the category judge from %s", cache)
            return CategoryJudge.load(cache, embedder=embedder), settings
    items = [Item(r["path"], audio_root / r["path"], r["category"], str(r.get("label")), str(r.get("caption"))) for r in picked]
    judge = CategoryJudge(embedder)
    judge.fit(load_clips(items, 16000, 1, INPUT_SECONDS), [it.category for it in items])
    if cache is not None:
        judge.save(cache)
        (cache / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return judge, settings


def judged(judge: Any, clips: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """The judge's accuracy on (wav, sr) clips, with per-category accuracy and predictions."""
    predicted = judge.predict(list(clips))
    result = judge.evaluate_predictions(predicted, labels)
    return {"n": result["n"], "accuracy": result["accuracy"], "per_category": result["per_class_accuracy"],
            "confusion": result["confusion"],
            "chance_uniform": result["chance_uniform"], "chance_majority": result["chance_majority"],
            "predicted": predicted}


def generate_all(pipeline: Any, prompts: Sequence[str], batch_size: int, seed: int, settings: Mapping[str, Any]) -> list[Any]:
    """`Pipeline.generate` over `prompts` in batches (batch b seeded with seed + b)."""
    from tqdm import tqdm

    out = []
    for b, start in enumerate(tqdm(range(0, len(prompts), batch_size), desc="generating", leave=False)):
        out.extend(pipeline.generate(list(prompts[start : start + batch_size]), seed=seed + b, **settings))
    return out


# --------------------------------------------------------------------------- run


@dataclass
class EvalConfig:
    """How `run` evaluates (every field is a CLI option of `main`)."""

    per_category: int = 30
    "Clips per category; every held-out category with at least this many clips is evaluated."
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    "Caption prompts (mean and spread are reported)."
    batch_size: int = 16
    "Clips per captioning / generation batch."
    max_new_tokens: int = 40
    "Longest caption in tokens."
    seed: int = 0
    "Seed of the clip draw, the judge's training draw and generation."
    generate: bool = True
    "Also judge generated audio."
    judge_per_category: int = 300
    "Real training clips per category the judge is fitted on (at most)."
    judge_cache: str | None = None
    "Folder to keep the fitted judge in (reused when its settings match)."
    seconds: float = 10.0
    "Longest generated clip."
    temperature: float | None = None
    "Audio-token temperature (None: the pipeline's)."
    top_k: int | None = None
    "Audio-token top-k (None: the pipeline's)."
    save_wavs: int = 2
    "Generated WAVs written per category."
    batch_check: int = 16
    "Clips captioned at batch size 1 and at batch_size to count differing captions."
    metrics: tuple[str, ...] = METRICS
    "Captioning metrics (eval.captioning names)."
    normalizer: str = "auto"
    "Captioning metrics' normalizer (eval.captioning: auto, ptb, simple)."
    listening: bool = True
    "Also score the clips' effect on the LM (eval.listening: audio reliance, forced-choice category)."
    probe_per_category: int = 40
    "Training clips per category the answer-state probe (eval.listening) is fitted on; 0: no probe."

    def __post_init__(self) -> None:
        if self.per_category < 1 or self.batch_size < 1 or self.max_new_tokens < 1 or not self.prompts:
            raise ValueError("per_category, batch_size and max_new_tokens must be >= 1 and prompts non-empty")
        if self.probe_per_category < 0:
            raise ValueError(f"probe_per_category must be >= 0, got {self.probe_per_category}")


def run(pipeline_dir: str, heldout: str, train: str, audio_root: str, out: str, settings: EvalConfig | None = None,
        *, embedder: Any | None = None) -> dict[str, Any]:
    """Everything in the module docstring; returns the result written to `out`.

    Args:
        embedder: the judge's clip embedder (default: YAMNet); anything with `clip_embedding(wav, sr)` and `info()`.
    """
    import lmmsn
    from eval.common import load_clips

    root, out_dir = Path(audio_root), Path(out)
    heldout_rows, train_rows = read_rows(heldout), read_rows(train)
    st = settings or EvalConfig()
    per_category, prompts, batch_size, seed = st.per_category, st.prompts, st.batch_size, st.seed
    categories, excluded = choose_categories(heldout_rows, per_category)
    if not categories:
        raise ValueError(f"{heldout}: no category has {per_category} held-out clips")
    items = read_manifest(heldout, root, categories=categories, per_category=per_category, seed=seed)
    table = LabelTable.from_rows([*train_rows, *heldout_rows])
    base = frequency_baselines(train_rows)
    pipeline = lmmsn.load(pipeline_dir, device="cpu")
    audios = load_clips(items, pipeline.sample_rate, pipeline.channels, INPUT_SECONDS)
    # a held-out clip the pipeline cannot encode (under one latent frame) is left out of every
    # section, so captions, codes and judgements stay aligned; it is listed in evaluation_set
    encoded = _encode_each(pipeline, items, audios)
    skipped_heldout = [{"path": str(it.path), "reason": why} for it, code, why in encoded if code is None]
    keep = [i for i, (_, code, _) in enumerate(encoded) if code is not None]
    if not keep:
        raise ValueError(f"none of the {len(items)} drawn held-out clips can be encoded: {skipped_heldout[:3]}")
    items, audios = [items[i] for i in keep], [audios[i] for i in keep]
    heldout_codes = [encoded[i][1] for i in keep]

    captions: dict[str, Any] = {"prompts": {}}
    reference = judge_captions(table, [it.caption for it in items], items)
    for prompt in prompts:
        texts = caption_all(pipeline, audios, prompt, batch_size, st.max_new_tokens)
        captions["prompts"][prompt] = {"captions": texts, **judge_captions(table, texts, items),
                                       "metrics": caption_metrics(texts, items, st.metrics, st.normalizer)}
    for key in ("category_accuracy", "label_accuracy"):
        values = [p[key] for p in captions["prompts"].values()]
        captions[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
                         "stdev": statistics.pstdev(values)}
    majority = [base["majority_label"]] * len(items)
    frequent = [base["most_frequent_caption"]] * len(items)
    captions["baselines"] = {
        "majority class": {"caption": base["majority_label"], **judge_captions(table, majority, items),
                           "metrics": caption_metrics(majority, items, st.metrics, st.normalizer)},
        "caption frequency": {"caption": base["most_frequent_caption"], **judge_captions(table, frequent, items),
                              "metrics": caption_metrics(frequent, items, st.metrics, st.normalizer)},
    }
    captions["reference captions (rule coverage)"] = {k: v for k, v in reference.items() if k != "items"}
    best = max(captions["baselines"].values(), key=lambda b: b["label_accuracy"])
    captions["best_frequency_label_accuracy"] = best["label_accuracy"]
    captions["label_accuracy_over_best_baseline"] = (captions["label_accuracy"]["mean"] / best["label_accuracy"]
                                                     if best["label_accuracy"] else None)
    first = prompts[0]
    n_check = min(st.batch_check, len(audios))
    single = [pipeline.caption(w, first, max_new_tokens=st.max_new_tokens, temperature=0.0) for w, _ in audios[:n_check]]
    batched = captions["prompts"][first]["captions"][:n_check]
    captions["batch_check"] = {"prompt": first, "n": n_check, "batch_size": batch_size,
                               "differing_fraction": sum(a != b for a, b in zip(single, batched, strict=True)) / max(1, n_check)}

    codes = heldout_codes if st.listening or st.generate else []
    listening: dict[str, Any] | None = None
    if st.listening:
        from eval.listening import CATEGORY_QUESTION, audio_reliance, forced_choice

        labels = [it.category for it in items]
        listening = {"reliance": audio_reliance(pipeline, codes, [it.caption for it in items], labels, first, seed)}
        if pipeline.config.prompt_style == "chat":
            listening["forced_choice"] = forced_choice(pipeline, codes, labels, CATEGORY_QUESTION)
            if st.probe_per_category > 0:
                from eval.listening import answer_state_probe

                fit_items = [Item(r["path"], root / r["path"], r["category"], str(r.get("label")), str(r.get("caption")))
                             for r in draw_training(train_rows, categories, st.probe_per_category, seed)]
                fit_codes, fit_cats, skipped = encode_or_skip(pipeline, fit_items)
                if len(set(fit_cats)) >= 2:  # a probe needs two training categories
                    listening["probe"] = {**answer_state_probe(pipeline, fit_codes, fit_cats, codes, labels, CATEGORY_QUESTION),
                                          "skipped_training_clips": skipped}

    generation: dict[str, Any] | None = None
    if st.generate:
        judge, judge_settings = fit_judge(train_rows, root, categories, st.judge_per_category, seed,
                                          Path(st.judge_cache) if st.judge_cache else None, embedder)
        labels = [it.category for it in items]
        real16 = load_clips(items, 16000, 1, INPUT_SECONDS)
        recon = [(w, pipeline.sample_rate) for w in pipeline.decode(codes, seed=seed)]
        sampling = {"seconds": st.seconds, "temperature": st.temperature, "top_k": st.top_k}
        clips = generate_all(pipeline, [it.caption for it in items], batch_size, seed, sampling)
        gen = [(c.waveform, c.sample_rate) for c in clips]
        generation = {"judge": judge.describe(), "judge_settings": judge_settings, "sampling": sampling,
                      "real heldout clips": judged(judge, real16, labels),
                      "tokenizer reconstructions": judged(judge, recon, labels),
                      "generated": judged(judge, gen, labels),
                      "generated_seconds": [c.seconds for c in clips], "generated_codes": [int(c.codes.numel()) for c in clips]}
        generation["chance_uniform"] = generation["generated"]["chance_uniform"]
        wav_dir, saved = out_dir / "audio", []
        for cat in categories:
            for i in [i for i, it in enumerate(items) if it.category == cat][:st.save_wavs]:
                path = clips[i].save(wav_dir / f"{cat}_{i:03d}.wav")
                saved.append({"path": str(path.relative_to(out_dir)), "prompt": items[i].caption, "category": cat,
                              "judged": generation["generated"]["predicted"][i]})
        generation["saved_wavs"] = saved

    kinds = source_kinds(items, heldout_rows, train_rows)
    result = {
        "pipeline": str(pipeline_dir), "heldout_manifest": str(heldout), "train_manifest": str(train),
        "by_source": by_source(kinds, items, captions, listening, generation),
        "evaluation_set": {"categories": categories, "per_category": per_category, "excluded_categories": excluded,
                           "rule": f"every held-out category with >= {per_category} clips; {per_category} drawn per category (seed {seed})",
                           "keys": [it.key for it in items], "skipped_clips": skipped_heldout},
        "matching_rule": {"module": "eval.label_match", "version": RULE_VERSION, "synonym_labels": len(SYNONYMS)},
        "frequency_baselines": base, "captioning": captions, "listening": listening, "generation": generation,
        "settings": {**asdict(st), "decoding": "greedy", "input_seconds": INPUT_SECONDS},
        "environment": environment(seed=seed, device="cpu", dtype=str(next(pipeline.lm.model.parameters()).dtype),
                                   batch_size=batch_size),
    }
    plot(result, out_dir / "audio_lm.png")
    write_result(out_dir, "audio_lm", result, summary_md(result))
    return result


# --------------------------------------------------------------------------- report


def summary_md(result: Mapping[str, Any]) -> str:
    """The Markdown report."""
    c, es = result["captioning"], result["evaluation_set"]
    metrics = tuple(result.get("settings", {}).get("metrics") or METRICS)  # the columns are the metrics that were asked for
    rows = []
    for prompt, p in c["prompts"].items():
        m = p["metrics"]["scores"]
        rows.append([f"model, prompt {prompt!r}", p["category_accuracy"], p["label_accuracy"], p["empty"], p["unmatched"],
                     *[m.get(k) for k in metrics]])
    for name, b in c["baselines"].items():
        m = b["metrics"]["scores"]
        rows.append([f"{name} ({b['caption']!r})", b["category_accuracy"], b["label_accuracy"], b["empty"], b["unmatched"],
                     *[m.get(k) for k in metrics]])
    ref = c["reference captions (rule coverage)"]
    rows.append(["reference captions (rule coverage)", ref["category_accuracy"], ref["label_accuracy"], ref["empty"],
                 ref["unmatched"], *[None] * len(metrics)])
    cats = es["categories"]
    per_rows = [[cat, *[p["per_category"][cat]["category_accuracy"] for p in c["prompts"].values()],
                 *[p["per_category"][cat]["label_accuracy"] for p in c["prompts"].values()]] for cat in cats]
    n_prompts = len(c["prompts"])
    parts = [
        "# Audio LM on held-out clips",
        f"Pipeline `{result['pipeline']}`. Evaluation set: {es['rule']}: {', '.join(cats)} "
        f"({len(es['keys'])} clips; excluded: {es['excluded_categories'] or 'none'}). Captions greedy, "
        f"at most {result['settings']['max_new_tokens']} tokens, first {result['settings']['input_seconds']:g} s of each clip."
        + (f" Left out, too short or unreadable to encode: {len(es['skipped_clips'])} drawn clip(s) "
           f"({', '.join(Path(x['path']).name for x in es['skipped_clips'][:5])})." if es.get("skipped_clips") else ""),
        "## Captioning",
        f"Matching rule `eval.label_match` v{result['matching_rule']['version']} (label or synonym in the caption; "
        "category of the first label term; unmatched counted, never guessed). Category accuracy over prompts: mean "
        f"{c['category_accuracy']['mean']:.3f} (min {c['category_accuracy']['min']:.3f}, max {c['category_accuracy']['max']:.3f}); "
        f"label accuracy mean {c['label_accuracy']['mean']:.3f} = "
        f"{(c['label_accuracy_over_best_baseline'] or float('nan')):.2f}x the best frequency baseline "
        f"({c['best_frequency_label_accuracy']:.3f}). Chance (uniform over categories): {1 / len(cats):.3f}.",
        markdown_table(["system", "category acc", "label acc", "empty", "unmatched", *metrics], rows, digits=3),
        "Per category (category accuracy per prompt, then label accuracy per prompt):",
        markdown_table(["category", *[f"cat p{i + 1}" for i in range(n_prompts)], *[f"label p{i + 1}" for i in range(n_prompts)]],
                       per_rows, digits=3),
        f"Batch check: {c['batch_check']['differing_fraction']:.3f} of {c['batch_check']['n']} captions differ between "
        f"batch size 1 and {c['batch_check']['batch_size']}.",
    ]
    if result.get("by_source"):
        heads = ["held-out clips", "n", "majority share", "caption category acc", "forced choice", "generated, judged"]
        srows = [[kind, b["n"], b["majority_share"], b["caption_category_accuracy"], b.get("forced_choice_accuracy"),
                  b.get("generated_judged_accuracy")] for kind, b in result["by_source"].items()]
        parts += ["By source (from the manifests' `source`: a held-out clip whose source also gave training rows is "
                  "a new clip of familiar recordings; the others are recordings of a source never trained on):",
                  markdown_table(heads, srows, digits=3)]
    if result.get("listening"):
        from eval.listening import listening_md

        parts.append(listening_md(result["listening"]))
    g = result.get("generation")
    if g:
        grow = [[name, g[name]["accuracy"], *[g[name]["per_category"].get(cat) for cat in cats]]
                for name in ("generated", "real heldout clips", "tokenizer reconstructions")]
        grow.append(["chance (uniform)", g["chance_uniform"], *[None] * len(cats)])
        parts += [
            "## Generation",
            f"Judge: linear probe on YAMNet embeddings fitted on {g['judge_settings']['clips']} real training clips "
            f"(at most {g['judge_settings']['per_category']} per category); never on held-out or generated audio. "
            f"Sampling: {g['sampling']} (None: the pipeline's default). Generated seconds: mean "
            f"{statistics.fmean(g['generated_seconds']):.2f}.",
            markdown_table(["audio judged", "accuracy", *cats], grow, digits=3),
            "Saved: " + ", ".join(f"`{w['path']}` ({w['prompt']!r} -> judged {w['judged']})" for w in g["saved_wavs"]),
        ]
    parts.append(environment_md(result["environment"]))
    return "\n\n".join(parts)


def plot(result: Mapping[str, Any], path: Path) -> Path:
    """Bars: caption category / label accuracy (model mean, baselines) and judged generation accuracy vs ceilings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, g = result["captioning"], result.get("generation")
    fig, axes = plt.subplots(1, 2 if g else 1, figsize=(10.0 if g else 5.5, 3.6), squeeze=False)
    names = ["model (mean over prompts)", *c["baselines"]]
    cat = [c["category_accuracy"]["mean"], *[b["category_accuracy"] for b in c["baselines"].values()]]
    lab = [c["label_accuracy"]["mean"], *[b["label_accuracy"] for b in c["baselines"].values()]]
    x = range(len(names))
    ax = axes[0][0]
    ax.bar([i - 0.2 for i in x], cat, width=0.4, label="category accuracy")
    ax.bar([i + 0.2 for i in x], lab, width=0.4, label="label accuracy")
    ax.set_xticks(list(x), names, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("captions of held-out clips")
    ax.legend(fontsize=7)
    if g:
        names = ["generated", "real heldout clips", "tokenizer reconstructions"]
        ax = axes[0][1]
        ax.bar(range(3), [g[n]["accuracy"] for n in names])
        ax.axhline(g["chance_uniform"], color="gray", linestyle="--", label="chance")
        ax.set_xticks(range(3), ["generated", "real (ceiling)", "reconstructed"], fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title("judged category of audio")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m eval.audio_lm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="checkpoints/lm-msn", help="pipeline directory (lmmsn export)")
    parser.add_argument("--heldout", required=True, help="held-out manifest (JSON lines: path, category, label, caption)")
    parser.add_argument("--train", required=True, help="training manifest (baselines, synonym table, judge fitting)")
    parser.add_argument("--audio-root", required=True, help="folder the manifests' paths are relative to")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--per-category", type=int, default=30)
    parser.add_argument("--prompt", action="append", default=None, help="caption prompt (repeatable; default: 3 prompts)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-generate", action="store_true", help="captioning only")
    parser.add_argument("--no-listening", action="store_true", help="skip eval.listening (audio reliance, forced choice)")
    parser.add_argument("--probe-per-category", type=int, default=40,
                        help="training clips per category for the answer-state probe (0: none)")
    parser.add_argument("--judge-per-category", type=int, default=300)
    parser.add_argument("--judge-cache", default=None, help="folder to keep the fitted category judge in")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest generated clip")
    parser.add_argument("--temperature", type=float, default=None, help="audio-token temperature (default: the pipeline's)")
    parser.add_argument("--top-k", type=int, default=None, help="audio-token top-k (default: the pipeline's)")
    parser.add_argument("--save-wavs", type=int, default=2, help="generated WAVs written per category")
    parser.add_argument("--metrics", default=",".join(METRICS), help="captioning metrics (eval.captioning names)")
    parser.add_argument("--normalizer", default="auto", choices=("auto", "ptb", "simple"),
                        help="captioning metrics' text normalizer (eval.captioning)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    settings = EvalConfig(
        per_category=args.per_category, prompts=tuple(args.prompt or DEFAULT_PROMPTS), batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, seed=args.seed, generate=not args.no_generate,
        judge_per_category=args.judge_per_category, judge_cache=args.judge_cache, seconds=args.seconds,
        temperature=args.temperature, top_k=args.top_k, save_wavs=args.save_wavs,
        metrics=tuple(m for m in args.metrics.split(",") if m), normalizer=args.normalizer, listening=not args.no_listening,
        probe_per_category=args.probe_per_category)
    return run(args.pipeline, args.heldout, args.train, args.audio_root, args.out, settings)


if __name__ == "__main__":
    main()
