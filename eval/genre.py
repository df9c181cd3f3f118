"""GTZAN-style genre recognition by prompting an audio LLM (paper Table III).

The paper asks the model about each GTZAN clip and counts (a) how often the
answer describes the clip as music (998/999) and (b) per genre, how often the
true genre appears in the answer (the answer may list several genres).

Matching rule (deterministic, tested in tests/eval/test_genre.py):

* The answer is lower-cased; every character that is not a letter or digit
  becomes a space; words are then the whitespace-separated tokens.
* A genre *appears* when one of its spellings occurs as a run of whole
  consecutive words. Spellings are the genre name plus the variants in
  `GENRE_SPELLINGS` (only spelling variants, never related genres: "rap" does
  not count as hip hop, "rock and roll" counts as rock because "rock" is a
  whole word in it, "popular" does not count as pop, "classic" does not
  count as classical, "metallic" does not count as metal).
* The answer is *described as music* when it contains a whole word from
  `MUSIC_WORDS` or any genre spelling.
* Empty outputs are counted (`empty`), never dropped; they match nothing.

Accuracy per genre = clips whose answer contains the true genre / clips of
that genre; the overall accuracy is over all clips.

    python -m eval.genre --manifest gtzan.jsonl --audio-root /data/gtzan --system deterministic --out reports/genre
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence

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

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
GENRE_SPELLINGS: dict[str, tuple[str, ...]] = {
    "hiphop": ("hiphop", "hip hop"),  # "hip-hop" normalizes to "hip hop"
    "rnb": ("rnb", "r b", "rhythm and blues"),
}
MUSIC_WORDS = frozenset(
    "music musical musician musicians song songs melody melodic tune tunes instrumental band singing singer "
    "chord chords beat beats rhythm harmony genre".split()
)
DEFAULT_PROMPT = "What is the genre of this music? List the most likely genres."
DEFAULT_MAX_SECONDS = 10.0
"Clips are cut to this length: the 10 s segments the tokenizer and the LLM were trained on (GTZAN clips are 30 s)."
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words of `text` (the rule's normalization)."""
    return _NON_ALNUM.sub(" ", (text or "").lower()).split()


def spellings(genre: str) -> tuple[str, ...]:
    """Accepted spellings of a genre (the name itself plus GENRE_SPELLINGS variants)."""
    base = " ".join(words(genre))
    return tuple(dict.fromkeys((base, *GENRE_SPELLINGS.get(base.replace(" ", ""), ()))))


def _contains_phrase(tokens: Sequence[str], phrase: str) -> bool:
    target = phrase.split()
    n = len(target)
    return any(list(tokens[i : i + n]) == target for i in range(len(tokens) - n + 1))


def genre_appears(answer: str, genre: str) -> bool:
    """True when `genre` (any accepted spelling) appears as whole words in `answer`."""
    tokens = words(answer)
    return any(_contains_phrase(tokens, s) for s in spellings(genre))


def described_as_music(answer: str, genres: Sequence[str] = GTZAN_GENRES) -> bool:
    """True when the answer contains a music word or any genre spelling."""
    tokens = words(answer)
    return bool(MUSIC_WORDS.intersection(tokens)) or any(genre_appears(answer, g) for g in genres)


def score_genre(answers: Sequence[str], labels: Sequence[str], genres: Sequence[str] | None = None, top_k: int = 3) -> dict:
    """Per-genre accuracy, most frequent outputs per genre and the described-as-music rate.

    Args:
        answers: model outputs, one per clip.
        labels: true genre per clip.
        genres: genre vocabulary (default: the labels' set, sorted).
        top_k: how many most frequent outputs to keep per genre.
    """
    if len(answers) != len(labels):
        raise ValueError(f"{len(answers)} answers for {len(labels)} labels")
    genres = sorted(set(labels)) if genres is None else list(genres)
    per: dict[str, dict] = {}
    music = 0
    items = []
    for answer, label in zip(answers, labels, strict=True):
        hit = genre_appears(answer, label)
        is_music = described_as_music(answer, genres)
        music += is_music
        mentioned = [g for g in genres if genre_appears(answer, g)]
        items.append({"label": label, "answer": answer, "correct": hit, "music": is_music, "genres_mentioned": mentioned})
        g = per.setdefault(label, {"n": 0, "correct": 0, "empty": 0, "outputs": Counter(), "mentioned": Counter()})
        g["n"] += 1
        g["correct"] += hit
        g["empty"] += not (answer or "").strip()
        g["outputs"][" ".join(words(answer))] += 1
        g["mentioned"].update(mentioned)
    n = len(answers)
    per_genre = {
        label: {
            "n": g["n"],
            "correct": g["correct"],
            "accuracy": g["correct"] / g["n"],
            "empty": g["empty"],
            "top_outputs": g["outputs"].most_common(top_k),
            "genres_mentioned": g["mentioned"].most_common(top_k),
        }
        for label, g in sorted(per.items())
    }
    correct = sum(it["correct"] for it in items)
    return {
        "n": n,
        "accuracy": correct / n if n else float("nan"),
        "music_rate": music / n if n else float("nan"),
        "music_count": music,
        "empty": sum(not (a or "").strip() for a in answers),
        "per_genre": per_genre,
        "items": items,
    }


def evaluate_genre(
    system: System, clips: Sequence[Audio], labels: Sequence[str], *, prompt: str = DEFAULT_PROMPT, batch_size: int = 1, keys: Sequence[str] | None = None
) -> dict:
    """Prompt `system` on every clip and score the answers (`score_genre`)."""
    answers = call_system(system, clips, prompt, batch_size)
    result = score_genre(answers, labels)
    for item, key in zip(result["items"], keys or [None] * len(answers), strict=True):
        item["key"] = key
    return result


def summary_md(result: dict, title: str = "Genre recognition") -> str:
    """Markdown summary of a genre result."""
    rows = [
        [g, v["n"], v["accuracy"], v["empty"], "; ".join(f"{t!r} x{c}" for t, c in v["top_outputs"])]
        for g, v in result["per_genre"].items()
    ]
    return "\n\n".join(
        [
            f"# {title}",
            f"System: `{result['system']}`. Prompt: {result['prompt']!r}. Matching rule: `eval/genre.py` docstring.",
            f"Overall accuracy {result['accuracy']:.3f} over {result['n']} clips; described as music: "
            f"{result['music_count']}/{result['n']} ({result['music_rate']:.3f}); empty outputs: {result['empty']}.",
            markdown_table(["genre", "n", "accuracy", "empty", "most frequent outputs"], rows),
            environment_md(result["environment"]),
        ]
    )


def plot(result: dict, path) -> None:
    """Bar chart of per-genre accuracy."""
    fig, ax = new_figure()
    names = list(result["per_genre"])
    ax.bar(names, [result["per_genre"][g]["accuracy"] for g in names])
    ax.set_ylabel("true genre in answer (fraction)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Genre recognition: {result['system']}")
    ax.tick_params(axis="x", rotation=45)
    save_figure(fig, path)


def run(items: Sequence[Item], system: System, out_dir, *, prompt: str, batch_size: int, seed: int, max_seconds: float | None, sample_rate: int | None) -> dict:
    """Load clips, evaluate, write genre.json / genre.md / genre.png."""
    clips = load_clips(items, sample_rate, None, max_seconds)
    result = evaluate_genre(system, clips, [it.label for it in items], prompt=prompt, batch_size=batch_size, keys=[it.key for it in items])
    result.update(system=system_name(system), prompt=prompt, max_seconds=max_seconds, environment=environment(seed=seed, device="cpu", dtype="float32", batch_size=batch_size))
    result["matching_rule"] = "genre spelling as whole consecutive words after lower-casing and non-alphanumerics -> spaces (eval/genre.py)"
    write_result(out_dir, "genre", result, summary_md(result))
    plot(result, f"{out_dir}/genre.png")
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.genre", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="JSON-lines manifest; rows need path, category, label (= true genre), caption")
    parser.add_argument("--audio-root", required=True, help="folder the manifest paths are relative to")
    parser.add_argument("--categories", default=None, help="comma-separated manifest categories to keep (default: all)")
    parser.add_argument("--per-category", type=int, default=None, help="draw at most this many clips per category (seeded)")
    parser.add_argument("--system", default="deterministic", help="'deterministic' (weights-free stand-in, not a model) or 'lmmsn:DIR'")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="longest answer of an lmmsn system (default: the pipeline's max_text_tokens)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="question asked for every clip")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per system call (recorded)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="cut clips to this length (default 10 s: the tokenizer's and the LLM's training segment)")
    parser.add_argument("--sample-rate", type=int, default=None, help="resample clips to this rate (default: keep)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draw and of the system")
    parser.add_argument("--out", required=True, help="output folder for genre.json, genre.md, genre.png")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    cats = args.categories.split(",") if args.categories else None
    items = read_manifest(args.manifest, args.audio_root, categories=cats, per_category=args.per_category, seed=args.seed)
    return run(items, build_system(args.system, args.max_new_tokens), args.out, prompt=args.prompt, batch_size=args.batch_size, seed=args.seed, max_seconds=args.max_seconds, sample_rate=args.sample_rate)


if __name__ == "__main__":
    main()
