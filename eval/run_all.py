"""Run the evaluation suite from one YAML file and write one report folder.

The YAML lists the data (a JSON-lines manifest and the categories to draw
from), the systems (exported tokenizers, a text-producing system) and which
evaluations to run; every section is optional and a missing section is
listed as "not run" in the summary. Output: `<output_dir>/<tool>.json`,
`<tool>.md`, `<tool>.png` per evaluation and `README.md` joining the
summaries, with the command and the config that made them.

    python -m eval.run_all --config eval/configs/example.yaml [key=value ...]

Sections (schema: the dataclasses below; unknown keys are an error):
`data`, `reconstruction` (tokenizers vs VAE latents per category), `fad`
(between categories, or systems' folders vs a reference folder), `captioning`
(system captions vs the manifest captions), `genre`, `consistency`, `mos`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmmsn.config import load_config, to_dict

log = logging.getLogger(__name__)


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
    """Table I on the drawn clips."""

    tokenizers: dict[str, str] = field(default_factory=dict)
    "name -> exported tokenizer folder; latents come from the first one's VAE."
    steps: int | None = None
    "ODE steps of flow-matching decoders (None: each tokenizer's config)."
    temperature: float | None = None
    "CFM temperature (None: config)."
    error: str = "mse"
    "Primary error: mse | l1."


@dataclass
class FADSection:
    """FAD between categories (default) or of systems' folders against a reference folder."""

    embedding: str = "logmel"
    "Embedding name (eval.fad); only logmel is weights-free."
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
    """Predicted MOS (needs a local predictor)."""

    predictor: str | None = None
    "TorchScript MOS model; None -> reported unavailable."
    sample_rate: int = 16000
    "Predictor sample rate."


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
    "Tokenizer reconstruction error (Table I)."
    fad: FADSection | None = None
    "Fréchet Audio Distance (Figure 3)."
    captioning: TextSection | None = None
    "System captions vs manifest captions (aac-metrics)."
    genre: TextSection | None = None
    "Label-in-answer recognition (Table III rule) with manifest labels."
    consistency: TextSection | None = None
    "Batch size / seed / prompt-template report."
    mos: MOSSection | None = None
    "Predicted MOS of the drawn clips."
    title: str = "LM-MSN evaluation report"
    "Heading of README.md."
    notes: str = ""
    "Free text placed under the heading (what the systems are, what is missing)."


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

    if cfg.reconstruction is not None:
        from eval import reconstruction as rec

        r = cfg.reconstruction
        toks = rec.load_tokenizers(r.tokenizers)
        vae = next(iter(toks.values())).vae
        datasets = {c: rec.latents_from_audio(vae, [it.path for it in items if it.category == c], d.max_seconds) for c in cats}
        res = rec.evaluate_reconstruction(toks, datasets, steps=r.steps, temperature=r.temperature, seed=cfg.seed, error=r.error)
        res.update(settings=to_dict(r), keys={c: [it.key for it in items if it.category == c] for c in cats}, environment=common.environment(seed=cfg.seed, device="cpu", dtype="float32", batch_size=1))
        common.write_result(out, "reconstruction", res, rec.summary_md(res))
        rec.plot(res, out / "reconstruction.png")
        sections.append(("reconstruction", rec.summary_md(res)))

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
        common.write_result(out, name, res, md)
        sections.append((name, md))

    if cfg.mos is not None:
        from eval import mos

        predictor, reason = mos.load_predictor(cfg.mos.predictor, cfg.mos.sample_rate)
        res = mos.evaluate_mos(predictor, {c: [it.path for it in items if it.category == c] for c in cats}, reason, d.max_seconds)
        res.update(environment=common.environment(seed=cfg.seed, device="cpu", dtype="float32", batch_size=1))
        md = mos.summary_md(res)
        common.write_result(out, "mos", res, md)
        sections.append(("mos", md))

    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    not_run = [s for s in ("reconstruction", "fad", "captioning", "genre", "consistency", "mos") if s not in dict(sections)]
    counts = ", ".join(f"{c}: {sum(it.category == c for it in items)}" for c in cats)
    head = [f"# {cfg.title}", cfg.notes.strip(), f"Command: `{command}`" if command else "", f"Clips per category: {counts} (seed {cfg.seed}, cut to {d.max_seconds} s; manifest rows skipped because their file was absent: {stats['missing_skipped']}). Config: `config.yaml`.", f"Not run: {', '.join(not_run) or 'none'}."]
    body = [md.replace("\n# ", "\n## ").replace("# ", "## ", 1) if md.startswith("# ") else md for _, md in sections]
    (out / "README.md").write_text("\n\n".join([h for h in head if h] + body) + "\n", encoding="utf-8")
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
