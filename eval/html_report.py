"""One self-contained HTML page for a report folder: the tables, the plots and audio players.

`python -m eval.run_all` writes `<output_dir>/index.html` beside the files it
links (every path is relative and inside the folder; no script, font or style
comes from the network), so the folder can be copied, zipped or opened from
disk (`file://`) as it is. The page has:

* the report's heading, notes, command and clip counts;
* one section per evaluation: its Markdown summary (`<tool>.md`, rendered with
  markdown-it-py, raw HTML escaped) with its plots (`reconstruction.png`,
  `reconstruction_logmel.png`, `codebook_usage.png`, `tagging.png`, `fad.png`,
  `genre.png`, `consistency.png`, `preference.png` where present) and links to
  `<tool>.json` / `<tool>.md`;
* **Listen: reconstructions**: one row per clip of `audio/original/` (written by
  `eval.reconstruction` with its audio option: `<category>_NN.wav`), one
  column per reconstruction row (`audio/<row>/<category>_NN.wav`), with the
  clip's manifest key and caption, like the paper's sample page;
* **Listen: generated**: one row per file stem, one column per folder under
  `audio/generated/` (text-to-audio systems; optional), with the prompt from
  `audio/generated/prompts.json` (`{stem: prompt}`) when it exists;
* **Listen: text-to-audio**: the clips `eval.audio_lm` saved (`audio_lm.json`'s
  `generation.saved_wavs`: prompt, category, judged category) when it wrote into
  the same folder.

Only one player plays at a time (a few lines of inline script).

    python -m eval.html_report reports/eval   # rebuild index.html from the folder's files (heading and notes from README.md)
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

SECTION_ORDER = ("reconstruction", "tagging", "fad", "captioning", "genre", "consistency", "mos", "wer", "audio_lm", "preference")
PLOTS = {
    "reconstruction": ("reconstruction.png", "reconstruction_logmel.png", "codebook_usage.png"),
    "tagging": ("tagging.png",),
    "fad": ("fad.png",),
    "genre": ("genre.png",),
    "consistency": ("consistency.png",),
    "audio_lm": ("audio_lm.png",),
    "preference": ("preference.png",),
}
AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3")
_CLIP = re.compile(r"^(?P<category>.+)_(?P<index>\d+)$")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #fff; }
main { max-width: 76rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
nav { position: sticky; top: 0; background: #f4f6f9; border-bottom: 1px solid #d8dde5; padding: .5rem 1.5rem; z-index: 1; }
nav a { margin-right: 1rem; color: #1a4f8b; text-decoration: none; font-size: .95rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; border-bottom: 1px solid #d8dde5; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d8dde5; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f6f9; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
img.plot { max-width: min(100%, 40rem); border: 1px solid #e4e8ee; margin: .4rem .4rem .4rem 0; }
.plots { display: flex; flex-wrap: wrap; align-items: flex-start; }
.files { font-size: .85rem; color: #555; }
.scroll { overflow-x: auto; max-width: 100%; }
table.players td { min-width: 13rem; }
table.players audio { width: 13rem; height: 2rem; }
.clip { font-size: .8rem; color: #444; max-width: 16rem; }
.clip code { font-size: .75rem; word-break: break-all; }
code { background: #f4f6f9; padding: 0 .2rem; border-radius: 3px; }
"""

SCRIPT = """
document.addEventListener("play", function (e) {
  document.querySelectorAll("audio").forEach(function (a) { if (a !== e.target) a.pause(); });
}, true);
"""


def markdown_html(md: str) -> str:
    """Markdown (CommonMark + tables) to HTML, headings one level down, raw HTML escaped."""
    from markdown_it import MarkdownIt

    md = re.sub(r"^(#{1,5}) ", r"#\1 ", md, flags=re.M)  # a tool's "# Title" becomes the section's <h2>
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


def _src(path: Path, root: Path) -> str:
    return quote(path.relative_to(root).as_posix())


def _audio(path: Path | None, root: Path) -> str:
    if path is None:
        return "<td>-</td>"
    return f'<td><audio controls preload="metadata" src="{_src(path, root)}"></audio></td>'


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_EXT} if folder.is_dir() else {}


def _clip_order(stem: str) -> tuple:
    m = _CLIP.match(stem)
    return (m["category"], int(m["index"])) if m else (stem, -1)


def row_folders(result: dict, audio_dir: Path) -> dict[str, Path]:
    """Row name -> its folder of decoded WAVs under `audio_dir` (eval.reconstruction's naming), in table order."""
    return {name: audio_dir / _slug(name) for name in result.get("tokenizers", {})}


def reconstruction_players(root: Path, captions: dict[str, str] | None = None, clips_per_category: int | None = None) -> str:
    """The original / reconstructed table from `audio/` (empty string when there is none)."""
    audio = root / "audio"
    originals = _files(audio / "original")
    if not originals:
        return ""
    rec = json.loads((root / "reconstruction.json").read_text()) if (root / "reconstruction.json").is_file() else {}
    named = row_folders(rec, audio)
    labels = {f.name: name for name, f in named.items()}
    order = {f.name: k for k, f in enumerate(named.values())}
    columns = sorted((p for p in audio.iterdir() if p.is_dir() and p.name not in ("original", "generated")), key=lambda p: (order.get(p.name, len(order)), p.name))
    column_files = [_files(c) for c in columns]
    keys = rec.get("keys", {})
    head = "".join(f"<th>{html.escape(labels.get(c.name, c.name))}</th>" for c in columns)
    body = []
    shown: dict[str, int] = {}
    category_order = {c: k for k, c in enumerate(keys)}  # the report's category order, then the rest by name
    for stem in sorted(originals, key=lambda st: (category_order.get(_clip_order(st)[0], len(category_order)), _clip_order(st))):
        m = _CLIP.match(stem)
        category, index = (m["category"], int(m["index"])) if m else (stem, None)
        shown[category] = shown.get(category, 0) + 1
        if clips_per_category is not None and shown[category] > clips_per_category:
            continue
        cat_keys = keys.get(category, [])
        key = cat_keys[index] if index is not None and index < len(cat_keys) else None
        info = f"<b>{html.escape(category)}</b> #{index}" if index is not None else html.escape(stem)
        if key:
            info += f"<br><code>{html.escape(str(key))}</code>"
            if captions and key in captions:
                info += f"<br>{html.escape(captions[key])}"
        cells = [_audio(originals[stem], root)] + [_audio(files.get(stem), root) for files in column_files]
        body.append(f'<tr><td class="clip">{info}</td>{"".join(cells)}</tr>')
    note = ("Originals are cut to the decoded length and resampled to the frontend's rate; the first clips of each category "
            "(<code>examples</code> in the reconstruction section). Flow-matching rows decode clip i with seed + i.")
    return (f'<section id="listen"><h2>Listen: reconstructions</h2><p>{note}</p><div class="scroll">'
            f'<table class="players"><thead><tr><th>clip</th><th>original</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div></section>')


def audio_lm_players(root: Path) -> str:
    """The clips `eval.audio_lm` generated (its `generation.saved_wavs`), with prompt and judged category."""
    path = root / "audio_lm.json"
    saved = (json.loads(path.read_text(encoding="utf-8")).get("generation") or {}).get("saved_wavs", []) if path.is_file() else []
    rows = [w for w in saved if (root / w["path"]).is_file()]
    if not rows:
        return ""
    body = [f'<tr><td class="clip">{html.escape(str(w.get("prompt", "")))}</td><td>{html.escape(str(w.get("category", "")))}</td>'
            f'<td>{html.escape(str(w.get("judged", "")))}</td>{_audio(root / w["path"], root)}</tr>' for w in rows]
    return ('<section id="listen-audio-lm"><h2>Listen: text-to-audio (eval.audio_lm)</h2><p>Generated from each held-out clip\'s caption; '
            'the category the YAMNet probe judged beside the clip\'s own.</p><div class="scroll"><table class="players"><thead><tr>'
            f'<th>prompt</th><th>category</th><th>judged</th><th>generated</th></tr></thead><tbody>{"".join(body)}</tbody></table></div></section>')


def generated_players(root: Path) -> str:
    """The generated-audio table from `audio/generated/<system>/` (empty string when there is none)."""
    gen = root / "audio" / "generated"
    systems = sorted(p for p in gen.iterdir() if p.is_dir()) if gen.is_dir() else []
    files = {s.name: _files(s) for s in systems}
    stems = sorted(set().union(*[set(f) for f in files.values()]), key=_clip_order) if files else []
    if not stems:
        return ""
    prompts = json.loads((gen / "prompts.json").read_text(encoding="utf-8")) if (gen / "prompts.json").is_file() else {}
    head = "".join(f"<th>{html.escape(s.name)}</th>" for s in systems)
    body = [f'<tr><td class="clip"><code>{html.escape(stem)}</code><br>{html.escape(str(prompts.get(stem, "")))}</td>'
            + "".join(_audio(files[s.name].get(stem), root) for s in systems) + "</tr>" for stem in stems]
    return (f'<section id="listen-generated"><h2>Listen: generated</h2><p>Text-to-audio outputs for the same prompts, one column per system.</p>'
            f'<div class="scroll"><table class="players"><thead><tr><th>prompt</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div></section>')


def _slug(text: str) -> str:
    """eval.reconstruction's folder name of a table row (same rule)."""
    from eval.reconstruction import _slug as rec_slug

    return rec_slug(text)


def write_html(
    root: str | Path,
    *,
    title: str,
    head_md: Sequence[str] = (),
    sections: Sequence[tuple[str, str]] | None = None,
    captions: dict[str, str] | None = None,
    clips_per_category: int | None = None,
) -> Path:
    """Write `<root>/index.html`; return its path.

    Args:
        root: the report folder (holds the tools' .json/.md/.png files and `audio/`).
        title: page heading.
        head_md: Markdown paragraphs under the heading (notes, command, clip counts).
        sections: (tool, Markdown summary) in page order (None: every `<tool>.md` in the folder).
        captions: manifest key -> caption, shown beside each original clip.
        clips_per_category: show at most this many clips per category in the players (None: all written).
    """
    root = Path(root)
    if sections is None:
        sections = [(name, (root / f"{name}.md").read_text(encoding="utf-8")) for name in SECTION_ORDER if (root / f"{name}.md").is_file()]
    listen = reconstruction_players(root, captions, clips_per_category)
    generated, audio_lm = generated_players(root), audio_lm_players(root)
    nav = ([("listen", "Listen")] if listen else []) + ([("listen-generated", "Generated")] if generated else []) \
        + ([("listen-audio-lm", "Text-to-audio")] if audio_lm else []) + [(n, n) for n, _ in sections]
    parts = [f"<h1>{html.escape(title)}</h1>", *(markdown_html(md) for md in head_md if md), listen, generated, audio_lm]
    for name, md in sections:
        plots = "".join(f'<img class="plot" src="{quote(p)}" alt="{html.escape(p)}">' for p in PLOTS.get(name, ()) if (root / p).is_file())
        links = " · ".join(f'<a href="{quote(f)}">{html.escape(f)}</a>' for f in (f"{name}.json", f"{name}.md") if (root / f).is_file())
        parts.append(f'<section id="{html.escape(name)}">{markdown_html(md)}'
                     + (f'<div class="plots">{plots}</div>' if plots else "") + (f'<p class="files">Files: {links}</p>' if links else "") + "</section>")
    nav_html = "".join(f'<a href="#{html.escape(i)}">{html.escape(t)}</a>' for i, t in nav)
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{html.escape(title)}</title>\n<link rel="icon" href="data:,">\n<style>{STYLE}</style>\n</head>\n<body>\n'
        f"<nav>{nav_html}</nav>\n"
        f'<main>\n{chr(10).join(p for p in parts if p)}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n'
    )
    path = root / "index.html"
    path.write_text(page, encoding="utf-8")
    log.info("wrote %s", path)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    from eval.common import cli_logging

    parser = argparse.ArgumentParser(prog="python -m eval.html_report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="report folder (written by eval.run_all or the single tools)")
    parser.add_argument("--title", default=None, help="page heading (default: README.md's heading, else 'LM-MSN evaluation report')")
    parser.add_argument("--clips-per-category", type=int, default=None, help="players shown per category (default: every clip written)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    title, head = readme_head(Path(args.folder) / "README.md")
    return write_html(args.folder, title=args.title or title or "LM-MSN evaluation report", head_md=head, clips_per_category=args.clips_per_category)


def readme_head(path: Path) -> tuple[str | None, list[str]]:
    """(heading, paragraphs before the first section) of a README.md written by eval.run_all."""
    if not path.is_file():
        return None, []
    paragraphs = path.read_text(encoding="utf-8").split("\n\n")
    title = paragraphs[0][2:].strip() if paragraphs[0].startswith("# ") else None
    head = []
    for p in paragraphs[1 if title else 0:]:
        if p.startswith("#"):
            break
        head.append(p)
    return title, head


if __name__ == "__main__":
    main()
