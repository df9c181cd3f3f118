"""Audio captioning metrics with aac-metrics (paper Table II).

Candidates (one caption per clip, from any system) are scored against
references (several per clip: Clotho, AudioCaps, ESC-50 style) with the
reference implementations in aac-metrics 0.5.4: CIDEr-D, BLEU-1..4, ROUGE-L,
METEOR, SPICE, SPIDEr, SBERT similarity and FENSE (the paper reports SPICE
and FENSE).

Normalisation (named in every result, `evaluation-practice.md` section 1):

* `ptb` — aac-metrics' Stanford PTB tokenizer (the field's standard). Needs
  Java 8-13 and the CoreNLP jar (`aac-metrics-download`).
* `simple` — lower-case; every character except letters, digits,
  apostrophes, hyphens and spaces becomes a space; whitespace collapsed
  (`simple_normalise`). Used when PTB cannot run; scores are then close to,
  but not identical with, PTB-tokenised scores.
* `auto` (default) — `ptb` when available, else `simple` (the reason recorded).

Word tokenizer after normalisation: whitespace split (aac-metrics' default).

Resources: METEOR and SPICE (and SPIDEr, which needs SPICE) need Java 8-13 and
jars downloaded by `aac-metrics-download`; SBERT similarity needs a local
sentence-transformers model (`--sbert-model PATH`); FENSE needs that model
and the fluency-error checker checkpoint. A metric whose resources are
missing is reported as `unavailable` with the reason and how to install it,
never silently dropped; a metric that fails while running is reported the
same way with the error.

Clips without a candidate count as empty captions (scored, and counted in
`empty_candidates`).

Input files: CSV with columns `id` and `caption` (candidates) or `id` and
`caption_1..caption_N` / `captions` ("|"-separated) for references; or JSON:
a list of {"id", "caption"} / {"id", "captions": [...]}, or a {id: caption(s)} map.

    python -m eval.captioning --candidates sys.csv --references clotho_eval.csv --out reports/captioning
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.common import cli_logging, environment, environment_md, markdown_table, write_result

log = logging.getLogger(__name__)

ALL_METRICS = ("cider_d", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "meteor", "spice", "spider", "sbert_sim", "fense")
JAVA_METRICS = ("meteor", "spice", "spider")
INSTALL = {
    "java": "install a Java 8-13 runtime (e.g. apt-get install openjdk-11-jre-headless) and pass --java PATH",
    "jars": "run `aac-metrics-download` (downloads the Stanford CoreNLP, METEOR and SPICE jars) or pass --aac-cache DIR",
    "sbert": "download a sentence-transformers model (e.g. paraphrase-TinyBERT-L6-v2) to a folder and pass --sbert-model DIR",
    "echecker": "download the FENSE echecker checkpoint (`aac-metrics-download` or torch hub cache fense_data/) and pass --sbert-model DIR",
}
_SIMPLE = re.compile(r"[^\w'\- ]|_")


def simple_normalise(text: str) -> str:
    """The `simple` normaliser: lower-case, drop punctuation except ' and -, collapse spaces."""
    return " ".join(_SIMPLE.sub(" ", (text or "").lower()).split())


# --------------------------------------------------------------------------- resources


def java_status(java_path: str | None) -> tuple[bool, str]:
    """Whether `java_path` (default: `java` on PATH) is a Java 8-13 that aac-metrics accepts."""
    from aac_metrics.utils.checks import (
        MAX_JAVA_MAJOR_VERSION,
        MIN_JAVA_MAJOR_VERSION,
        _check_java_version,
        _get_java_version,
    )

    java = java_path or shutil.which("java")
    if not java:
        return False, "no java executable found"
    try:
        version = _get_java_version(str(java))
    except ValueError as exc:
        return False, f"{java}: {exc}"
    if not _check_java_version(version, MIN_JAVA_MAJOR_VERSION, MAX_JAVA_MAJOR_VERSION):
        return False, f"{java} is Java {version}; aac-metrics' METEOR/SPICE/PTB need Java {MIN_JAVA_MAJOR_VERSION}-{MAX_JAVA_MAJOR_VERSION}"
    return True, f"{java} (Java {version})"


def _cache_path(cache: str | None) -> Path:
    from aac_metrics.utils.globals import _get_cache_path

    return Path(_get_cache_path(cache))


def _jar(cache: str | None, kind: str) -> Path:
    if kind == "ptb":
        from aac_metrics.utils.tokenization import FNAME_STANFORD_CORENLP_3_4_1_JAR as fname
    elif kind == "meteor":
        from aac_metrics.functional.meteor import FNAME_METEOR_JAR as fname
    else:
        from aac_metrics.functional.spice import FNAME_SPICE_JAR as fname
    return _cache_path(cache) / fname


def metric_status(metric: str, *, java_path: str | None = None, aac_cache: str | None = None, sbert_model: str | None = None) -> dict[str, Any]:
    """{"available": bool, "reason": str, "install": str | None} for one metric."""
    if metric not in ALL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(ALL_METRICS)}")
    if metric in ("cider_d", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        return {"available": True, "reason": "pure Python in aac-metrics", "install": None}
    if metric in JAVA_METRICS:
        ok, why = java_status(java_path)
        if not ok:
            return {"available": False, "reason": why, "install": INSTALL["java"]}
        jar = _jar(aac_cache, "meteor" if metric == "meteor" else "spice")
        if not jar.is_file():
            return {"available": False, "reason": f"missing jar {jar}", "install": INSTALL["jars"]}
        return {"available": True, "reason": why, "install": None}
    if not sbert_model:
        return {"available": False, "reason": "no local sentence-transformers model given (--sbert-model); the default would be downloaded", "install": INSTALL["sbert"]}
    if not Path(sbert_model).is_dir():
        return {"available": False, "reason": f"sentence-transformers model folder {sbert_model} does not exist", "install": INSTALL["sbert"]}
    if metric == "fense":
        import torch

        ckpt = Path(torch.hub.get_dir()) / "fense_data" / "echecker_clotho_audiocaps_base.ckpt"
        if not ckpt.is_file():
            return {"available": False, "reason": f"missing FENSE echecker checkpoint {ckpt}", "install": INSTALL["echecker"]}
    return {"available": True, "reason": f"sentence model {sbert_model}", "install": None}


def choose_normaliser(name: str, *, java_path: str | None, aac_cache: str | None) -> tuple[str, str]:
    """Resolve `auto`/`ptb`/`simple` to the normaliser used and why."""
    if name not in ("auto", "ptb", "simple"):
        raise ValueError(f"normaliser must be auto, ptb or simple, got {name!r}")
    if name == "simple":
        return "simple", "requested"
    ok, why = java_status(java_path)
    jar = _jar(aac_cache, "ptb")
    if ok and jar.is_file():
        return "ptb", why
    reason = why if not ok else f"missing jar {jar}"
    if name == "ptb":
        raise RuntimeError(f"PTB tokenizer unavailable: {reason}. {INSTALL['java']}; {INSTALL['jars']}")
    return "simple", f"PTB tokenizer unavailable ({reason})"


def normalise(sentences: list[str], mult_refs: list[list[str]], normaliser: str, *, java_path: str | None, aac_cache: str | None) -> tuple[list[str], list[list[str]]]:
    """Apply the chosen normaliser to candidates and references."""
    if normaliser == "simple":
        return [simple_normalise(s) for s in sentences], [[simple_normalise(r) for r in refs] for refs in mult_refs]
    from aac_metrics.utils.tokenization import preprocess_mono_sents, preprocess_mult_sents

    kw = {"cache_path": aac_cache, "java_path": java_path}
    return preprocess_mono_sents(sentences, **kw), preprocess_mult_sents(mult_refs, **kw)


# --------------------------------------------------------------------------- scoring


def _run_metric(metric: str, cands: list[str], refs: list[list[str]], *, java_path, aac_cache, sbert_model) -> tuple[dict, dict]:
    from aac_metrics import functional as F

    if metric == "cider_d":
        return F.cider_d(cands, refs)
    if metric.startswith("bleu_"):
        return F.bleu(cands, refs, n=int(metric[-1]))
    if metric == "rouge_l":
        return F.rouge_l(cands, refs)
    if metric == "meteor":
        return F.meteor(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "spice":
        return F.spice(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "spider":
        return F.spider(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "sbert_sim":
        return F.sbert_sim(cands, refs, sbert_model=sbert_model, device="cpu")
    return F.fense(cands, refs, sbert_model=sbert_model, device="cpu")


def score_captions(candidates: Sequence[str], references: Sequence[Sequence[str]], *, metrics: Sequence[str] = ALL_METRICS, normaliser: str = "auto", java_path: str | None = None, aac_cache: str | None = None, sbert_model: str | None = None) -> dict[str, Any]:
    """Score candidates against references; every requested metric appears in the result.

    Returns:
        dict with `normaliser`, `normaliser_reason`, `word_tokenizer`, `metrics`
        ({name: {"status": "ok", "score", "per_item"} or {"status": "unavailable", "reason", "install"}}),
        `n`, `empty_candidates`, and the normalised sentences.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if any(len(r) == 0 for r in references):
        raise ValueError("every clip needs at least one reference caption")
    used, why = choose_normaliser(normaliser, java_path=java_path, aac_cache=aac_cache)
    cands, refs = normalise(list(candidates), [list(r) for r in references], used, java_path=java_path, aac_cache=aac_cache)
    out: dict[str, Any] = {}
    for metric in metrics:
        status = metric_status(metric, java_path=java_path, aac_cache=aac_cache, sbert_model=sbert_model)
        if not status["available"]:
            out[metric] = {"status": "unavailable", "reason": status["reason"], "install": status["install"]}
            continue
        try:
            corpus, sents = _run_metric(metric, cands, refs, java_path=java_path, aac_cache=aac_cache, sbert_model=sbert_model)
        except Exception as exc:  # a metric failing at run time is reported, never dropped
            log.warning("%s failed: %s", metric, exc)
            out[metric] = {"status": "unavailable", "reason": f"failed while running: {type(exc).__name__}: {exc}", "install": status["install"]}
            continue
        out[metric] = {"status": "ok", "score": float(corpus[metric]), "per_item": [float(x) for x in sents[metric]] if metric in sents else None}
    return {
        "normaliser": used,
        "normaliser_reason": why,
        "word_tokenizer": "whitespace split (str.split) after normalisation",
        "n": len(cands),
        "empty_candidates": sum(not c.strip() for c in candidates),
        "metrics": out,
        "normalised_candidates": cands,
        "normalised_references": refs,
    }


# --------------------------------------------------------------------------- files


def read_captions(path: str | Path, multi: bool) -> dict[str, list[str]]:
    """{id: captions} from a CSV or JSON file (formats in the module docstring)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [{"id": k, "captions": v} for k, v in data.items()] if isinstance(data, dict) else data
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    out: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        key = row.get("id") or row.get("file_name") or row.get("fname")
        if key is None:
            raise ValueError(f"{path}: row {i} has no id/file_name column")
        caps = row.get("captions", row.get("caption"))
        if caps is None:
            caps = [v for k, v in sorted(row.items()) if k.startswith("caption_") and v]
        if isinstance(caps, str):
            caps = caps.split("|") if multi else [caps]
        if not caps:
            raise ValueError(f"{path}: row {key!r} has no caption")
        out[str(key)] = [str(c) for c in caps]
    return out


def summary_md(result: dict, title: str = "Captioning (aac-metrics)") -> str:
    rows = []
    for name, m in result["metrics"].items():
        rows.append([name, m["score"] if m["status"] == "ok" else "unavailable", "" if m["status"] == "ok" else f"{m['reason']} — {m['install']}"])
    return "\n\n".join(
        [
            f"# {title}",
            f"Normaliser **{result['normaliser']}** ({result['normaliser_reason']}); word tokenizer: {result['word_tokenizer']}. "
            f"{result['n']} clips, {result['empty_candidates']} empty candidates (scored as empty), {result.get('missing_candidates', 0)} clips without a candidate.",
            markdown_table(["metric", "score", "unavailable because / install"], rows),
            environment_md(result["environment"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.captioning", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", required=True, help="CSV/JSON of system captions (id, caption)")
    parser.add_argument("--references", required=True, help="CSV/JSON of reference captions (id, caption_1..N | captions)")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS), help=f"comma-separated subset of {', '.join(ALL_METRICS)}")
    parser.add_argument("--normaliser", default="auto", choices=("auto", "ptb", "simple"), help="text normalisation before scoring (see above)")
    parser.add_argument("--java", default=None, help="Java 8-13 executable for PTB/METEOR/SPICE (default: java on PATH)")
    parser.add_argument("--aac-cache", default=None, help="aac-metrics cache folder with the downloaded jars (default: aac-metrics' own)")
    parser.add_argument("--sbert-model", default=None, help="local sentence-transformers model folder for SBERT similarity and FENSE")
    parser.add_argument("--out", required=True, help="output folder for captioning.json / captioning.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    cands = read_captions(args.candidates, multi=False)
    refs = read_captions(args.references, multi=True)
    ids = sorted(refs)
    missing = [i for i in ids if i not in cands]
    result = score_captions([cands[i][0] if i in cands else "" for i in ids], [refs[i] for i in ids], metrics=args.metrics.split(","), normaliser=args.normaliser, java_path=args.java, aac_cache=args.aac_cache, sbert_model=args.sbert_model)
    result.update(ids=ids, missing_candidates=len(missing), missing_ids=missing, settings=vars(args), environment=environment(seed=None, device="cpu", dtype="float32", batch_size=None))
    write_result(args.out, "captioning", result, summary_md(result))
    return result


if __name__ == "__main__":
    main()
