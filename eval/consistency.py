"""Reproducibility report for a text-producing audio system (`evaluation-practice.md` section 1).

Three checks on the same clips:

1. **Batch size.** Outputs at batch size 1 vs batch size N (greedy decoding is
   not batch-invariant on many kernels); reported: the fraction of clips whose
   output text differs (exact string comparison after stripping whitespace)
   and the differing pairs.
2. **Seed.** R runs with the same seed (`lmmsn.seeding.seed_everything`
   before each run); reported: the fraction of clips whose R outputs are not
   all identical.
3. **Prompt templates.** Each task is run with several prompt wordings and
   scored per template; reported: per-template scores, mean, standard
   deviation (population), min and max, so no single lucky prompt is quoted.

Task scorers: `label_in_answer` (fraction of clips whose answer contains the
clip's label as whole words, the genre rule of `eval.genre`), `cider_d`
(aac-metrics CIDEr-D against the clip's caption, `simple` normalizer) and
`nonempty` (fraction of non-empty answers).

The system is any callable `system(audios, prompt=...) -> list[str]`
(`eval.common`); `--system deterministic` is a weights-free stand-in whose
outputs cannot depend on batch size or seed, so its report shows the
*tool* working, not a model's behaviour.

    python -m eval.consistency --manifest m.jsonl --audio-root /data --categories speech,music --per-category 8 --batch-size 4 --out reports/consistency
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from eval.common import (
    Audio,
    Item,
    System,
    build_system,
    call_system,
    cli_logging,
    environment,
    environment_md,
    load_clips,
    markdown_table,
    new_figure,
    read_manifest,
    save_figure,
    system_name,
    write_result,
)

DEFAULT_TASKS: dict[str, dict] = {
    "caption": {
        "scorer": "cider_d",
        "templates": [
            "Describe the audio.",
            "What do you hear in this recording?",
            "Write a short caption for this sound.",
            "Describe this audio clip in one sentence.",
        ],
    },
    "classify": {
        "scorer": "label_in_answer",
        "templates": [
            "What kind of sound is this?",
            "Classify this sound.",
            "Which category does this audio belong to?",
        ],
    },
}
SCORERS = ("label_in_answer", "cider_d", "nonempty")


@dataclass
class Task:
    """A task of the prompt check: a scorer and its prompt templates."""

    scorer: str
    "label_in_answer | cider_d | nonempty"
    templates: list[str] = field(default_factory=list)
    "Prompt wordings (at least 2 for a spread)."

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"unknown scorer {self.scorer!r}; known: {', '.join(SCORERS)}")
        if not self.templates:
            raise ValueError("a task needs at least one prompt template")


def score_outputs(scorer: str, outputs: Sequence[str], items: Sequence[Item]) -> float:
    """Score one template's outputs with a named scorer."""
    if scorer == "nonempty":
        return sum(bool(o.strip()) for o in outputs) / len(outputs)
    if scorer == "label_in_answer":
        from eval.genre import genre_appears

        return sum(genre_appears(o, it.label) for o, it in zip(outputs, items, strict=True)) / len(outputs)
    from eval.captioning import score_captions

    res = score_captions(list(outputs), [[it.caption] for it in items], metrics=["cider_d"], normalizer="simple")
    return res["metrics"]["cider_d"]["score"]


def batch_check(system: System, clips: Sequence[Audio], prompt: str | None, batch_size: int) -> dict:
    """Outputs at batch size 1 vs `batch_size`; the fraction that differ."""
    one = call_system(system, clips, prompt, 1)
    many = call_system(system, clips, prompt, batch_size)
    differ = [i for i, (a, b) in enumerate(zip(one, many, strict=True)) if a.strip() != b.strip()]
    return {
        "prompt": prompt,
        "batch_size": batch_size,
        "n": len(clips),
        "differ": len(differ),
        "fraction_differ": len(differ) / len(clips),
        "differing": [{"index": i, "batch_1": one[i], f"batch_{batch_size}": many[i]} for i in differ],
        "outputs_batch_1": one,
    }


def seed_check(system: System, clips: Sequence[Audio], prompt: str | None, batch_size: int, seed: int, repeats: int) -> dict:
    """`repeats` runs with the same seed; the fraction of clips whose outputs are not all identical."""
    from lmmsn.seeding import seed_everything

    if repeats < 2:
        raise ValueError(f"repeats must be >= 2, got {repeats}")
    runs = []
    for _ in range(repeats):
        seed_everything(seed)
        runs.append(call_system(system, clips, prompt, batch_size))
    unstable = [i for i in range(len(clips)) if len({r[i].strip() for r in runs}) > 1]
    return {"seed": seed, "repeats": repeats, "n": len(clips), "unstable": len(unstable), "fraction_unstable": len(unstable) / len(clips), "unstable_items": [{"index": i, "outputs": [r[i] for r in runs]} for i in unstable]}


def prompt_check(system: System, clips: Sequence[Audio], items: Sequence[Item], tasks: dict[str, Task], batch_size: int) -> dict:
    """Per task: score of every template, mean, spread."""
    out = {}
    for name, task in tasks.items():
        per = []
        for template in task.templates:
            outputs = call_system(system, clips, template, batch_size)
            per.append({"template": template, "score": score_outputs(task.scorer, outputs, items), "outputs": outputs})
        scores = [p["score"] for p in per]
        out[name] = {
            "scorer": task.scorer,
            "templates": per,
            "mean": statistics.fmean(scores),
            "std": statistics.pstdev(scores),
            "min": min(scores),
            "max": max(scores),
        }
    return out


def evaluate_consistency(system: System, clips: Sequence[Audio], items: Sequence[Item], *, tasks: dict[str, Task], batch_size: int, seed: int, repeats: int) -> dict:
    """All three checks; the batch and seed checks use each task's first template."""
    first = {name: t.templates[0] for name, t in tasks.items()}
    return {
        "system": system_name(system),
        "n": len(clips),
        "batch": {name: batch_check(system, clips, p, batch_size) for name, p in first.items()},
        "seed": {name: seed_check(system, clips, p, batch_size, seed, repeats) for name, p in first.items()},
        "prompts": prompt_check(system, clips, items, tasks, batch_size),
        "keys": [it.key for it in items],
    }


def summary_md(result: dict, title: str = "Consistency report") -> str:
    b_rows = [[t, v["batch_size"], v["differ"], v["n"], v["fraction_differ"]] for t, v in result["batch"].items()]
    s_rows = [[t, v["seed"], v["repeats"], v["unstable"], v["fraction_unstable"]] for t, v in result["seed"].items()]
    p_rows = [[t, v["scorer"], len(v["templates"]), v["mean"], v["std"], v["min"], v["max"]] for t, v in result["prompts"].items()]
    t_rows = [[t, p["template"], p["score"]] for t, v in result["prompts"].items() for p in v["templates"]]
    return "\n\n".join(
        [
            f"# {title}",
            f"System: `{result['system']}`; {result['n']} clips. {result.get('system_note', '')}",
            "## Batch size 1 vs N (fraction of outputs that differ)",
            markdown_table(["task", "N", "differ", "clips", "fraction"], b_rows),
            "## Same seed, repeated runs (fraction of clips with differing outputs)",
            markdown_table(["task", "seed", "runs", "unstable", "fraction"], s_rows),
            "## Prompt templates (score per template; mean and population std)",
            markdown_table(["task", "scorer", "templates", "mean", "std", "min", "max"], p_rows),
            markdown_table(["task", "template", "score"], t_rows),
            environment_md(result["environment"]),
        ]
    )


def plot(result: dict, path) -> None:
    """Per task: the score of every template (dots) and the mean (bar)."""
    fig, ax = new_figure()
    for i, v in enumerate(result["prompts"].values()):
        ax.bar(i, v["mean"], color="lightgray")
        ax.plot([i] * len(v["templates"]), [p["score"] for p in v["templates"]], "o", color="tab:blue")
    ax.set_xticks(range(len(result["prompts"])), [f"{n}\n({v['scorer']})" for n, v in result["prompts"].items()])
    ax.set_ylabel("score per prompt template")
    ax.set_title(f"Prompt sensitivity: {result['system']}")
    save_figure(fig, path)


def run(items: Sequence[Item], system: System, out_dir, *, tasks: dict[str, Task], batch_size: int, seed: int, repeats: int, max_seconds: float | None, sample_rate: int | None, system_note: str = "") -> dict:
    """Load clips, run the checks, write consistency.json / .md / .png."""
    clips = load_clips(items, sample_rate, None, max_seconds)
    result = evaluate_consistency(system, clips, items, tasks=tasks, batch_size=batch_size, seed=seed, repeats=repeats)
    result.update(system_note=system_note, max_seconds=max_seconds, environment=environment(seed=seed, device="cpu", dtype="float32", batch_size=batch_size))
    write_result(out_dir, "consistency", result, summary_md(result))
    plot(result, f"{out_dir}/consistency.png")
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.consistency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="JSON-lines manifest (path, category, label, caption)")
    parser.add_argument("--audio-root", required=True, help="folder the manifest paths are relative to")
    parser.add_argument("--categories", default=None, help="comma-separated categories to keep (default: all)")
    parser.add_argument("--per-category", type=int, default=8, help="clips per category (seeded draw)")
    parser.add_argument("--system", default="deterministic", help="'deterministic' (weights-free stand-in, not a model) or 'lmmsn:DIR'")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="longest answer of an lmmsn system (default: the pipeline's max_text_tokens)")
    parser.add_argument("--batch-size", type=int, default=4, help="N of the batch-size check (also used by the other checks)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the same-seed check")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draw and of every run")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="cut clips to this length")
    parser.add_argument("--sample-rate", type=int, default=None, help="resample clips to this rate (default: keep)")
    parser.add_argument("--out", required=True, help="output folder for consistency.json / .md / .png")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    cats = args.categories.split(",") if args.categories else None
    items = read_manifest(args.manifest, args.audio_root, categories=cats, per_category=args.per_category, seed=args.seed)
    tasks = {n: Task(**t) for n, t in DEFAULT_TASKS.items()}
    system = build_system(args.system, args.max_new_tokens)
    note = "Deterministic stand-in, not a model: batch and seed checks are 0 by construction." if args.system == "deterministic" else ""
    return run(items, system, args.out, tasks=tasks, batch_size=args.batch_size, seed=args.seed, repeats=args.repeats, max_seconds=args.max_seconds, sample_rate=args.sample_rate, system_note=note)


if __name__ == "__main__":
    main()
