"""The reconstruction table of `eval.reconstruction` as Markdown (`summary_md`) and plots
(`plot`: grouped bars per data set and row; `plot_usage`: sorted codebook usage).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval.common import environment_md, markdown_table, new_figure, save_figure
from eval.reconstruction_latents import BASELINE


def summary_md(result: dict, title: str = "Reconstruction error (Table I)") -> str:
    err = result["error"]
    rows_all = result["tokenizers"]
    names = list(next(iter(rows_all.values()))["datasets"])
    other = "l1" if err == "mse" else "mse"

    def metric_table(key: str) -> str:
        rows = [[t, _bits(row), *(row["datasets"][d].get(key) for d in names), row["average"].get(key)] for t, row in rows_all.items()]
        return markdown_table(["system", "bits/frame", *names, "average"], rows)

    first = next(iter(rows_all.values()))["datasets"]
    counts = ", ".join(f"{d}: {first[d]['clips']} clips / {first[d]['frames']} frames, energy {first[d]['energy']:.4g}" for d in names)
    parts = [
        f"# {title}",
        f"Latent **{err.upper()}** between the frontend's latents and their reconstructions ({result['error_definition']}). "
        f"Decoder steps {result['steps']}, temperature {result['temperatures'] or result['temperature']}, seed {result['seed']} (clip i uses seed+i).",
        metric_table(err),
        f"Latent {other.upper()}:",
        metric_table(other),
    ]
    if "audio_definition" in result:
        parts += ["Log-mel L1 of the decoded audio against the original (lower is better):", metric_table("logmel_l1")]
        if result.get("yamnet_chance"):
            chance = result["yamnet_chance"]
            parts += ["YAMNet top-1 agreement with the original (higher is better); the last row is the same-category chance level:",
                      metric_table("yamnet_agree") + "\n" + "| same-category chance | | " + " | ".join(f"{chance.get(d, float('nan')):.3f}" for d in names) + f" | {np.nanmean(list(chance.values())):.3f} |",
                      "KL(original || decoded) of YAMNet class scores:", metric_table("yamnet_kl"),
                      "YAMNet identification (higher is better): the decoded clip's posterior is closest, by that KL, to its "
                      "own original among the category's originals; the last row is chance (1 / clips):",
                      metric_table("yamnet_identified") + "\n" + "| chance | | " + " | ".join(
                          f"{1 / first[d]['clips']:.3f}" for d in names) + f" | {np.mean([1 / first[d]['clips'] for d in names]):.3f} |",
                      "FAD on YAMNet patch embeddings (decoded vs original, categories pooled):",
                      markdown_table(["system", "FAD"], [[k, v] for k, v in result.get("fad_yamnet", {}).items()])]
        parts.append(result["audio_definition"] + ".")
    usage = [[t, row["codebook"]["used"], row["codebook"]["codebook_size"], row["codebook"]["used_fraction"], row["codebook"]["perplexity"]]
             for t, row in rows_all.items() if "codebook" in row]
    if usage:
        parts += ["Codebook usage on the evaluated clips:", markdown_table(["system", "entries used", "of", "fraction", "perplexity"], usage)]
    parts += [
        f"Data: {counts}. `{BASELINE}` predicts every frame by the data set's mean latent; the k-means row quantizes "
        "each frame alone with a codebook of the tokenizer's size fitted on training latents (same bits, no context): "
        "a tokenizer must beat both to show it carries information through context. "
        "Paper (SAO latents, different data, full-size models): VQ+FM 0.636, VQ+MSE 0.700 average.",
    ]
    if "environment" in result:
        parts.append(environment_md(result["environment"]))
    return "\n\n".join(parts)


def _bits(row: dict[str, Any]) -> str:
    bits = row.get("bits_per_frame")
    return "-" if bits is None else f"{bits:g}"


def plot(result: dict, path, key: str | None = None) -> None:
    """Grouped bars: one group per data set (+ average), one bar per row."""
    err = key or result["error"]
    fig, ax = new_figure(8.0, 3.8)
    toks = [t for t, row in result["tokenizers"].items() if row["average"].get(err) is not None]
    names = [*next(iter(result["tokenizers"].values()))["datasets"], "average"]
    width = 0.8 / max(len(toks), 1)
    for i, t in enumerate(toks):
        row = result["tokenizers"][t]
        vals = [row["datasets"][d].get(err, np.nan) for d in names[:-1]] + [row["average"][err]]
        style = {"color": "lightgray", "hatch": "//"} if row.get("baseline") else {}
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=t, **style)
    ax.set_xticks(np.arange(len(names)) + width * (len(toks) - 1) / 2, names, rotation=20, fontsize=8)
    ax.set_ylabel(err.replace("_", " "))
    ax.set_title(f"Reconstruction: {err.replace('_', ' ')}")
    ax.legend(fontsize=6)
    save_figure(fig, path)


def plot_usage(result: dict, path) -> None:
    """Sorted code counts (log scale) of each tokenizer on the evaluated clips."""
    fig, ax = new_figure()
    for t, row in result["tokenizers"].items():
        if "codebook" in row:
            counts = np.asarray(row["codebook"]["sorted_counts"], dtype=float)
            ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.5), label=f"{t} ({row['codebook']['used']} used)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("code rank")
    ax.set_ylabel("frames")
    ax.set_title("Codebook usage on the evaluated clips")
    ax.legend(fontsize=6)
    save_figure(fig, path)
