"""Run the evaluation suite from one YAML file and write one report folder.

The YAML lists the data (a JSON-lines manifest and the categories to draw
from), the systems (exported tokenizers, a text-producing system) and which
evaluations to run; every section is optional and a missing section is
listed as "not run" in the summary. Output: `<output_dir>/<tool>.json`,
`<tool>.md`, `<tool>.png` per evaluation, `README.md` joining the summaries
with the command and the config that made them, and `index.html`: the same
tables with the plots and audio players (`eval.html_report`; self-contained,
open it from disk).

    python -m eval.run_all --config eval/configs/example.yaml [key=value ...]

Sections (schema: the dataclasses below; unknown keys are an error):

* `data`: the clips (seeded draw of `per_category` clips per category).
* `reconstruction`: `eval.reconstruction.run` on the drawn clips (Table I; with `audio`, every
  row is decoded and judged on sound, and `examples` WAVs per category and row feed the players).
* `tagging`: YAMNet top-1 agreement / KL / FAD of the reconstructed audio with the originals
  (computed by the reconstruction run with its audio option and the YAMNet judge), beside the
  same-category chance level; optionally other systems' folders against a reference folder
  (`eval.tagging`, pairs by file stem).
* `fad`: between categories, or systems' folders vs a reference folder.
* `captioning`, `genre`, `consistency`: a text-producing system on the drawn clips.
* `mos`: predicted MOS (DNSMOS by default) of the *speech* categories only, originals and every
  reconstruction row (DNSMOS is a speech-quality model; its numbers on music or effects mean little).
* `wer`: Whisper tiny.en WER of English speech with a transcript, originals and every
  reconstruction row; its own seeded draw (the suite's draw is mostly not English).

Every section's result records its judge (`.info()`: model, package version, weights hash),
its normalizer where it has one, and clip counts and durations.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmmsn.config import ConfigError, load_config, to_dict

log = logging.getLogger(__name__)
SECTIONS = ("reconstruction", "tagging", "fad", "captioning", "genre", "consistency", "mos", "wer")


@dataclass
class DataConfig:
    """The clips every evaluation draws from."""

    manifest: str = ""
    "JSON-lines manifest with path, category, label, caption per row."
    audio_root: str = ""
    "Folder the manifest paths are relative to."
    categories: list[str] = field(default_factory=list)
    "Categories to draw (each is one data set in the tables)."
    per_category: int = 20
    "Clips drawn per category (seeded)."
    max_seconds: float = 10.0
    "Audio is cut to this length."
    min_seconds: float | None = None
    "Skip manifest rows shorter than this (by their duration_s)."
    skip_missing_files: bool = False
    "Leave out rows whose audio file is absent (counted in README.md); False: a missing file is an error."


@dataclass
class ReconstructionSection:
    """Table I on the drawn clips, through `eval.reconstruction.run`."""

    tokenizers: dict[str, str] = field(default_factory=dict)
    "name -> exported tokenizer folder; latents come from the first one's VAE."
    steps: int | None = None
    "ODE steps of flow-matching decoders (None: each tokenizer's config)."
    temperature: float | None = None
    "CFM temperature (None: config)."
    temperatures: list[float] | None = None
    "Evaluate each flow-matching tokenizer at each of these temperatures (one row each)."
    mean_decode: bool = True
    "Add a row per flow-matching tokenizer decoded to its conditional mean (eval.reconstruction --mean-decode)."
    error: str = "mse"
    "Primary error: mse | l1."
    kmeans_shards: str | None = None
    "Training latent shards: add the same-size per-frame k-means baseline row."
    audio: bool = True
    "Decode every row to audio and judge it (log-mel L1; YAMNet with a tagging section and the eval extra)."
    examples: int = 3
    "With audio: decoded WAVs written per category and row (the page's players)."


@dataclass
class TaggingSection:
    """YAMNet agreement with the originals: of the reconstructions, and of systems' folders."""

    reference_dir: str | None = None
    "Folder of reference clips for `systems` (pairs by file stem)."
    systems: dict[str, str] = field(default_factory=dict)
    "name -> folder of outputs judged against reference_dir (eval.tagging)."
    threads: int = 1
    "onnxruntime threads of the YAMNet judge for `systems`."


@dataclass
class FADSection:
    """FAD between categories (default) or of systems' folders against a reference folder."""

    embedding: str = "logmel"
    "Embedding name (eval.fad): logmel (weights-free), yamnet / aisfx (eval extra), CLAP, ..."
    checkpoint: str | None = None
    "Local checkpoint of the embedding model."
    cache: str = ".cache/fad-embeddings"
    "Embedding cache folder."
    reference_dir: str | None = None
    "If set: FAD of each folder in `systems` against this folder instead of between categories."
    systems: dict[str, str] = field(default_factory=dict)
    "name -> folder of a system's outputs (with reference_dir)."


@dataclass
class TextSection:
    """A text-producing system evaluated on the drawn clips."""

    system: str = "deterministic"
    "'deterministic' (weights-free stand-in, not a model) or 'lmmsn:DIR'."
    batch_size: int = 4
    "Batch size (the N of the consistency batch check)."
    repeats: int = 3
    "Same-seed runs (consistency)."
    prompt: str | None = None
    "Prompt for genre (None: eval.genre default)."
    sample_rate: int | None = None
    "Resample clips for the system (None: keep)."
    max_new_tokens: int | None = None
    "Longest answer of an lmmsn system (None: the pipeline's max_text_tokens)."


@dataclass
class MOSSection:
    """Predicted MOS of the speech categories' clips and their reconstructions (eval.mos).

    DNSMOS (the default, eval extra) or a TorchScript predictor; reported unavailable with the
    reason when neither loads. Only `categories` are scored: MOS predictors are trained on speech.
    """

    predictor: str | None = None
    "None or 'dnsmos': DNSMOS P.835 + P.808 (eval extra); else a TorchScript file ([B, N] mono -> [B])."
    score: str = "p808"
    "DNSMOS column reported as the mean: p808 | ovrl | sig | bak (all four are recorded)."
    sample_rate: int = 16000
    "Sample rate of a TorchScript predictor (DNSMOS runs at 16 kHz)."
    categories: list[str] = field(default_factory=lambda: ["speech"])
    "Categories that hold speech; only they are scored."
    reconstructions: bool = True
    "Also score every reconstruction row's decoded audio (needs the reconstruction section)."

    def __post_init__(self):
        if not self.categories:
            raise ConfigError("mos.categories: name the speech categories (MOS predictors are speech models)")


@dataclass
class WERSection:
    """Whisper tiny.en WER of English speech and its reconstructions (eval.wer)."""

    categories: list[str] = field(default_factory=lambda: ["speech"])
    "Categories that hold speech."
    lang: str = "en"
    "Keep rows whose `lang` is this (Whisper tiny.en is English-only)."
    exclude_sources: list[str] = field(default_factory=list)
    "Leave out rows of these `source`s (e.g. hedgewars-data, whose transcripts are the files' labels)."
    clips: int = 20
    "Seeded draw of this many transcribed clips per category (rows no longer than data.max_seconds)."
    manifest: str | None = None
    "Draw the WER clips from this manifest instead of data.manifest (e.g. a part of a corpus that the models never saw but that has transcripts; audio under data.audio_root)."
    normalizer: str = "whisper-english"
    "Text normalizer (eval.wer): whisper-english | basic | none."
    reconstructions: bool = True
    "Also transcribe every reconstruction row's decoded audio (needs the reconstruction section)."
    threads: int = 1
    "CTranslate2 CPU threads."

    def __post_init__(self):
        if not self.categories:
            raise ConfigError("wer.categories: name the speech categories")


@dataclass
class SuiteConfig:
    """One report: data, seed, output folder and the evaluations to run."""

    output_dir: str = "reports/eval"
    "Report folder."
    seed: int = 0
    "Seed of the clip draw, decoders and systems."
    data: DataConfig = field(default_factory=DataConfig)
    "Clips."
    reconstruction: ReconstructionSection | None = None
    "Tokenizer reconstruction error (Table I) and, with audio, the decoded clips judged on sound."
    tagging: TaggingSection | None = None
    "YAMNet agreement / KL / FAD of reconstructions (needs reconstruction.audio) and of folders."
    fad: FADSection | None = None
    "Fréchet Audio Distance (Figure 3)."
    captioning: TextSection | None = None
    "System captions vs manifest captions (eval.captioning)."
    genre: TextSection | None = None
    "Label-in-answer recognition (Table III rule) with manifest labels."
    consistency: TextSection | None = None
    "Batch size / seed / prompt-template report."
    mos: MOSSection | None = None
    "Predicted MOS of the speech categories (DNSMOS)."
    wer: WERSection | None = None
    "Word error rate of English speech (Whisper tiny.en)."
    html: bool = True
    "Write index.html (tables, plots, audio players)."
    title: str = "LM-MSN evaluation report"
    "Heading of README.md and index.html."
    notes: str = ""
    "Free text placed under the heading (what the systems are, what is missing)."

    def __post_init__(self):
        t = self.tagging
        if t is not None and not t.systems and (self.reconstruction is None or not self.reconstruction.audio):
            raise ConfigError("tagging: judges reconstructed audio (needs a reconstruction section with audio: true) or `systems` folders")
        if t is not None and t.systems and not t.reference_dir:
            raise ConfigError("tagging.systems needs tagging.reference_dir (outputs are paired with references by file stem)")


# --------------------------------------------------------------------------- helpers


def clip_record(items: Sequence[Any], max_seconds: float) -> dict[str, Any]:
    """Clip count and seconds judged (manifest duration_s cut to max_seconds) of some items."""
    secs = [min(it.duration_s, max_seconds) for it in items if it.duration_s is not None]
    return {"n": len(items), "with_duration": len(secs), "total_seconds": float(sum(secs)),
            "mean_seconds": float(sum(secs) / len(secs)) if secs else None, "max_seconds": max_seconds,
            "source": "manifest duration_s, cut to max_seconds"}


def _rec_kwargs(cfg: SuiteConfig) -> dict[str, Any]:
    """eval.reconstruction.run arguments shared by every section that decodes clips."""
    r, d = cfg.reconstruction, cfg.data
    return dict(audio_root=d.audio_root, max_seconds=d.max_seconds, min_seconds=d.min_seconds, kmeans_shards=r.kmeans_shards,
                temperatures=r.temperatures, steps=r.steps, temperature=r.temperature, error=r.error, seed=cfg.seed,
                skip_missing=d.skip_missing_files, mean_decode=r.mean_decode)


def decoded_folders(out: Path, result: dict, categories: Sequence[str]) -> dict[str, dict[str, Path]]:
    """{"original" or row name: {"<category>_NN": wav}} from a reconstruction run's `audio/` folder."""
    from eval.html_report import row_folders

    folders = {"original": out / "audio" / "original", **row_folders(result, out / "audio")}
    return {name: {p.stem: p for p in sorted(f.glob("*.wav")) if p.stem.rsplit("_", 1)[0] in categories} for name, f in folders.items() if f.is_dir()}


def _check_categories(section: str, wanted: Sequence[str], drawn: Sequence[str]) -> list[str]:
    unknown = [c for c in wanted if c not in drawn]
    if unknown:
        raise ValueError(f"{section}.categories {unknown} are not among the drawn categories {list(drawn)}")
    return list(wanted)


def _unavailable_md(title: str, reason: str) -> str:
    return f"# {title}\n\n**Unavailable:** {reason}"


# --------------------------------------------------------------------------- speech and tagging sections


def tagging_section(cfg: SuiteConfig, rec_result: dict | None, items, out: Path) -> tuple[dict, str]:
    """YAMNet agreement of the reconstructions (from `rec_result`) and of the configured folders."""
    from eval.common import environment, environment_md, markdown_table

    t, d = cfg.tagging, cfg.data
    res: dict[str, Any] = {"settings": to_dict(t)}
    parts = ["# Tagging agreement (YAMNet)"]
    if rec_result is not None and "judge" in rec_result:
        rows = rec_result["tokenizers"]
        cats = list(next(iter(rows.values()))["datasets"])
        chance = rec_result["yamnet_chance"]
        res["judge"] = rec_result["judge"]
        res["definition"] = rec_result["audio_definition"]
        res["chance"] = chance
        res["clips"] = {c: clip_record([it for it in items if it.category == c], d.max_seconds) for c in cats}
        res["reconstructions"] = {name: {"datasets": {c: {k: row["datasets"][c].get(k) for k in ("yamnet_agree", "yamnet_kl", "clips")} for c in cats},
                                         "average": {k: row["average"].get(k) for k in ("yamnet_agree", "yamnet_kl")},
                                         "fad_yamnet": rec_result.get("fad_yamnet", {}).get(name)} for name, row in rows.items()}
        j = res["judge"]

        def table(key):
            return markdown_table(["system", *cats, "average"], [[n, *(v["datasets"][c][key] for c in cats), v["average"][key]] for n, v in res["reconstructions"].items()])

        counts = ", ".join(f"{c}: {v['n']} clips, mean {v['mean_seconds'] or float('nan'):.2f} s" for c, v in res["clips"].items())
        parts += [f"Judge **{j['name']}** ({j['package']} {j['package_version']}, weights sha256 {str(j['weights_sha256'])[:12]}...), {j['sample_rate']} Hz mono, "
                  f"batch size 1, on the reconstruction section's decoded audio. Clips: {counts}.",
                  "Top-1 AudioSet class agreement with the original (higher is better); chance = how often another original of the same category has the clip's top-1 class:",
                  table("yamnet_agree") + "\n| same-category chance | " + " | ".join(f"{chance.get(c, float('nan')):.3f}" for c in cats) + " | |",
                  "KL(original || decoded) of YAMNet class scores (nats; lower is better):", table("yamnet_kl"),
                  "FAD on YAMNet patch embeddings, decoded vs original, categories pooled:",
                  markdown_table(["system", "FAD"], [[n, v["fad_yamnet"]] for n, v in res["reconstructions"].items()]),
                  res["definition"] + "."]
        from eval import reconstruction as rec

        rec.plot(rec_result, out / "tagging.png", key="yamnet_agree")
    elif rec_result is not None:
        reason = ("reconstruction.audio is off (nothing decoded to judge)" if not cfg.reconstruction.audio
                  else "the YAMNet judge is not installed (eval extra: `bash scripts/install.sh --eval`)")
        res["reconstructions"] = {"status": "unavailable", "reason": reason}
        parts.append(f"**Reconstructions: unavailable** — {reason}.")
    if t.systems:
        from eval import tagging
        from eval.fad import list_audio
        from eval.judges import YamNet

        folders = tagging.evaluate_tagging(YamNet.load(threads=t.threads), list_audio(t.reference_dir), {n: list_audio(p) for n, p in t.systems.items()}, d.max_seconds)
        folders.update(reference_name=t.reference_dir, environment=environment(seed=None, device="cpu", dtype="uint8 (onnxruntime)", batch_size=1))
        res["folders"] = folders
        parts.append(tagging.summary_md(folders, f"Systems' folders vs {t.reference_dir}").replace("# ", "## ", 1))
    res["environment"] = environment(seed=cfg.seed, device="cpu", dtype="uint8 (onnxruntime)", batch_size=1)
    parts.append(environment_md(res["environment"]))
    return res, "\n\n".join(parts)


def mos_section(cfg: SuiteConfig, items, cats, main_audio: tuple[Path, dict] | None, work: Path) -> tuple[dict, str]:
    """DNSMOS (or the configured predictor) of the speech categories: originals and reconstructions."""
    from eval import mos
    from eval.common import environment

    m, d = cfg.mos, cfg.data
    speech = _check_categories("mos", m.categories, cats)
    predictor, reason = mos.load_predictor(m.predictor, m.sample_rate, m.score)
    if predictor is not None and cfg.reconstruction is not None and m.reconstructions:
        if main_audio is not None and cfg.reconstruction.examples >= d.per_category:
            folder, rec_result = main_audio  # every drawn clip was written by the main run
        else:
            from eval import reconstruction as rec

            folder = work / "mos"
            rec_result = rec.run(cfg.reconstruction.tokenizers, manifest=d.manifest, categories=speech, per_category=d.per_category, audio=True,
                                 yamnet=False, out=folder, examples=d.per_category, **_rec_kwargs(cfg))
        systems = {n: list(f.values()) for n, f in decoded_folders(folder, rec_result, speech).items()}
    else:
        systems = {"original": [it.path for it in items if it.category in speech]}
    res = mos.evaluate_mos(predictor, systems, reason, d.max_seconds)
    res.update(categories=speech, clips=clip_record([it for it in items if it.category in speech], d.max_seconds), settings=to_dict(m),
               audio=("originals and reconstructions decoded by eval.reconstruction (originals cut to the decoded length, at the frontend's rate)"
                      if len(systems) > 1 else "the manifest files, cut to data.max_seconds"),
               environment=environment(seed=cfg.seed, device="cpu", dtype="float32", batch_size=1))
    title = f"Predicted MOS of speech ({', '.join(speech)})"
    return res, mos.summary_md(res, title) + f"\n\nScored: {res['audio']}; categories {speech} only (a speech-quality model)."


def _wer_rows(cfg: SuiteConfig) -> tuple[list[dict], dict[str, int]]:
    """Manifest rows eligible for WER and the count of rows left out by each rule."""
    w, d = cfg.wer, cfg.data
    rows, dropped = [], {"no_transcript": 0, "other_language": 0, "excluded_source": 0, "longer_than_max_seconds": 0, "no_duration": 0, "shorter_than_min_seconds": 0, "missing_file": 0}
    manifest = w.manifest or d.manifest
    with open(manifest, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{manifest}:{lineno}: not JSON ({exc})") from exc
            if row.get("category") not in w.categories:
                continue
            dur = row.get("duration_s")
            reason = ("no_transcript" if not row.get("transcript") else "other_language" if w.lang and row.get("lang") != w.lang
                      else "excluded_source" if row.get("source") in w.exclude_sources else "no_duration" if dur is None
                      else "longer_than_max_seconds" if dur > d.max_seconds  # the transcript would cover audio that is cut off
                      else "shorter_than_min_seconds" if d.min_seconds and dur < d.min_seconds
                      else "missing_file" if d.skip_missing_files and not (Path(d.audio_root) / row["path"]).is_file() else None)
            if reason:
                dropped[reason] += 1
            else:
                rows.append(row)
    return rows, dropped


def wer_section(cfg: SuiteConfig, cats, work: Path) -> tuple[dict, str]:
    """Whisper WER of English transcribed speech: its own seeded draw, originals and reconstructions."""
    from eval import wer
    from eval.common import environment, read_manifest
    from eval.judges import MissingJudge

    w, d = cfg.wer, cfg.data
    speech = _check_categories("wer", w.categories, cats)
    rows, dropped = _wer_rows(cfg)
    present = [c for c in speech if any(r["category"] == c for r in rows)]
    title = "Word error rate (Whisper tiny.en)"
    base = {"settings": to_dict(w), "rows_left_out": dropped, "eligible_rows": len(rows), "rule": "rows with a transcript in `lang`, not from "
            "`exclude_sources`, with duration_s <= data.max_seconds (the transcript must cover the audio judged)"}
    if not present:
        reason = f"no manifest rows of {speech} qualify ({dropped})"
        return {**base, "status": "unavailable", "reason": reason}, _unavailable_md(title, reason)
    try:
        asr = wer.WhisperASR.load(threads=w.threads)
    except MissingJudge as exc:
        return {**base, "status": "unavailable", "reason": str(exc)}, _unavailable_md(title, str(exc))
    manifest = work / "wer_manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    transcript = {r["path"]: r["transcript"] for r in rows}
    if cfg.reconstruction is not None and w.reconstructions:
        from eval import reconstruction as rec

        rec_result = rec.run(cfg.reconstruction.tokenizers, manifest=str(manifest), categories=present, per_category=w.clips, audio=True,
                             yamnet=False, out=work / "wer", examples=w.clips, **_rec_kwargs(cfg))
        keys = {f"{c}_{i:02d}": k for c in present for i, k in enumerate(rec_result["keys"][c])}
        systems = decoded_folders(work / "wer", rec_result, present)
    else:
        items = read_manifest(manifest, d.audio_root, categories=present, per_category=w.clips, seed=cfg.seed)
        keys = {f"{c}_{i:02d}": it.key for c in present for i, it in enumerate(x for x in items if x.category == c)}
        systems = {"original": {f"{c}_{i:02d}": it.path for c in present for i, it in enumerate(x for x in items if x.category == c)}}
    utts = [wer.Utterance(stem, transcript[key]) for stem, key in keys.items()]
    res = wer.evaluate_wer(asr, systems, utts, w.normalizer, None if len(systems) > 1 else d.max_seconds)
    res.update(base, status="ok", categories=present, clips={stem: key for stem, key in keys.items()},
               environment=environment(seed=cfg.seed, device="cpu", dtype=asr.compute_type, batch_size=1))
    md = wer.summary_md(res, title)
    md += (f"\n\nClips: a seeded draw of {w.clips} per category from {len(rows)} eligible rows ({base['rule']}; left out: "
           + ", ".join(f"{k} {v}" for k, v in dropped.items() if v) + "). Original = the clip as the frontend sees it, cut to the decoded length.")
    return res, md


# --------------------------------------------------------------------------- the suite


def run_suite(cfg: SuiteConfig, command: str = "") -> Path:
    """Run every configured section; return the report folder."""
    from eval import common

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    stats: dict = {}
    items = common.read_manifest(d.manifest, d.audio_root, categories=d.categories or None, per_category=d.per_category, max_duration_s=None, min_duration_s=d.min_seconds, seed=cfg.seed, skip_missing=d.skip_missing_files, stats=stats)
    cats = list(dict.fromkeys(it.category for it in items))
    sections: list[tuple[str, str]] = []
    work_dir = tempfile.TemporaryDirectory(prefix="lmmsn-eval-")
    work = Path(work_dir.name)

    rec_result, main_audio = None, None
    if cfg.reconstruction is not None:
        from eval import reconstruction as rec

        r = cfg.reconstruction
        # YAMNet only for the tagging section (its 1024-d FAD per row costs seconds each), and only when installed
        # (None): without the eval extra the tagging section reports it unavailable
        yamnet = None if r.audio and cfg.tagging is not None else False
        rec_result = rec.run(r.tokenizers, manifest=d.manifest, categories=cats, per_category=d.per_category, audio=r.audio,
                             yamnet=yamnet, out=out, examples=r.examples if r.audio else 0, **_rec_kwargs(cfg))
        rec_result.update(settings=to_dict(r), clips={c: clip_record([it for it in items if it.category == c], d.max_seconds) for c in cats})
        md = rec.summary_md(rec_result)
        common.write_result(out, "reconstruction", rec_result, md)
        main_audio = (out, rec_result) if r.audio else None
        sections.append(("reconstruction", md))

    if cfg.tagging is not None:
        res, md = tagging_section(cfg, rec_result, items, out)
        common.write_result(out, "tagging", res, md)
        sections.append(("tagging", md))

    if cfg.fad is not None:
        from eval import fad

        f = cfg.fad
        cache = fad.EmbeddingCache(fad.build_embedding(f.embedding, f.checkpoint), f.cache, d.max_seconds)
        if f.reference_dir:
            res = fad.evaluate_fad(fad.list_audio(f.reference_dir), {n: fad.list_audio(p) for n, p in f.systems.items()}, cache)
            res.update(reference_name=f.reference_dir, environment=common.environment(seed=None, device="cpu", dtype="float32", batch_size=1))
            md = fad.summary_md(res)
            common.write_result(out, "fad", res, md)
            fad.plot(res, out / "fad.png")
        else:
            res = fad.fad_between_sets({c: [it.path for it in items if it.category == c] for c in cats}, cache)
            res.update(environment=common.environment(seed=cfg.seed, device="cpu", dtype="float32", batch_size=1))
            md = fad.matrix_md(res, "FAD between categories")
            common.write_result(out, "fad", res, md)
            fad.plot_matrix(res, out / "fad.png")
        sections.append(("fad", md))

    text_sections = [s for s in ("captioning", "genre", "consistency") if getattr(cfg, s) is not None]
    clips_cache: dict[int | None, list] = {}
    for name in text_sections:
        t: TextSection = getattr(cfg, name)
        system = common.build_system(t.system, t.max_new_tokens)
        if t.sample_rate not in clips_cache:
            clips_cache[t.sample_rate] = common.load_clips(items, t.sample_rate, None, d.max_seconds)
        clips = clips_cache[t.sample_rate]
        env = common.environment(seed=cfg.seed, device="cpu", dtype="float32", batch_size=t.batch_size)
        if name == "captioning":
            from eval import captioning

            texts = common.call_system(system, clips, t.prompt, t.batch_size)
            res = captioning.score_captions(texts, [[it.caption] for it in items])
            res.update(system=common.system_name(system), ids=[it.key for it in items], candidates=texts, environment=env)
            md = captioning.summary_md(res, f"Captioning: {res['system']} vs manifest captions (1 reference per clip)")
        elif name == "genre":
            from eval import genre

            res = genre.evaluate_genre(system, clips, [it.label for it in items], prompt=t.prompt or genre.DEFAULT_PROMPT, batch_size=t.batch_size, keys=[it.key for it in items])
            res.update(system=common.system_name(system), prompt=t.prompt or genre.DEFAULT_PROMPT, environment=env)
            md = genre.summary_md(res, "Label-in-answer recognition (genre rule)")
            genre.plot(res, out / "genre.png")
        else:
            from eval import consistency

            tasks = {n: consistency.Task(**v) for n, v in consistency.DEFAULT_TASKS.items()}
            res = consistency.evaluate_consistency(system, clips, items, tasks=tasks, batch_size=t.batch_size, seed=cfg.seed, repeats=t.repeats)
            note = "Deterministic stand-in, not a model: the batch and seed checks are 0 by construction; they show the tool runs." if t.system == "deterministic" else ""
            res.update(system_note=note, environment=env)
            md = consistency.summary_md(res)
            consistency.plot(res, out / "consistency.png")
        res.update(clips=clip_record(items, d.max_seconds))
        common.write_result(out, name, res, md)
        sections.append((name, md))

    if cfg.mos is not None:
        res, md = mos_section(cfg, items, cats, main_audio, work)
        common.write_result(out, "mos", res, md)
        sections.append(("mos", md))

    if cfg.wer is not None:
        res, md = wer_section(cfg, cats, work)
        common.write_result(out, "wer", res, md)
        sections.append(("wer", md))
    work_dir.cleanup()

    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    not_run = [s for s in SECTIONS if s not in dict(sections)]
    counts = ", ".join(f"{c}: {sum(it.category == c for it in items)}" for c in cats)
    head = [cfg.notes.strip(), f"Command: `{command}`" if command else "",
            f"Clips per category: {counts} (seed {cfg.seed}, cut to {d.max_seconds} s; manifest rows skipped because their file was absent: {stats['missing_skipped']}). Config: `config.yaml`.",
            f"Not run: {', '.join(not_run) or 'none'}."]
    if cfg.html:
        head.append("Tables, plots and audio players: `index.html` (open it from disk; no network).")
    body = [md.replace("\n# ", "\n## ").replace("# ", "## ", 1) if md.startswith("# ") else md for _, md in sections]
    (out / "README.md").write_text("\n\n".join([f"# {cfg.title}"] + [h for h in head if h] + body) + "\n", encoding="utf-8")
    if cfg.html:
        from eval.html_report import write_html

        write_html(out, title=cfg.title, head_md=head[:-1], sections=sections, captions={it.key: it.caption for it in items})
    log.info("report written to %s", out)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m eval.run_all", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file (schema: SuiteConfig in eval/run_all.py; example: eval/configs/example.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys (e.g. data.per_category=5)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    from eval.common import cli_logging

    cli_logging(args.verbose)
    cfg = load_config(SuiteConfig, args.config, args.overrides)
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    return run_suite(cfg, "python -m eval.run_all " + shlex.join(argv_list))


if __name__ == "__main__":
    main()
