"""Pairwise preference ranking of systems by listeners (evaluation-practice.md section 4).

"Mind the Gap" (7,500 real voice-assistant interactions) found that no static
benchmark predicts which model people prefer; preferences were collected as
pairwise choices and ranked with a Bradley-Terry model. This tool does the
same for LM-MSN outputs, in three commands:

    python -m eval.preference pairs --system vqfm=gen_fm/ --system vqmse=gen_mse/ --prompts prompts.csv --out PAIRS.jsonl
    python -m eval.preference serve --pairs PAIRS.jsonl --votes VOTES.jsonl          # http://127.0.0.1:8765
    python -m eval.preference fit --votes VOTES.jsonl --out reports/preference

`pairs` matches the systems' outputs by file stem (audio folders with
`--system NAME=FOLDER`, or caption files with `--captions NAME=FILE`, CSV or
JSON as in `eval.captioning`, plus `--clips FOLDER` for the audio that was
captioned) and writes every unordered pair of systems per item, the sides
(A/B) and the order of pairs drawn at random with `--seed` so neither system
sits on one side. Rows of PAIRS.jsonl:

    {"id": "p0000", "item": "dog_01", "prompt": "a dog barks",
     "a": {"system": "vqfm", "audio": "/abs/gen_fm/dog_01.wav"},   # or {"system": ..., "text": "..."}
     "b": {"system": "vqmse", "audio": "/abs/gen_mse/dog_01.wav"},
     "context": "/abs/clips/dog_01.wav"}                            # captions only: the clip they describe

`serve` runs the standard library's `http.server` on 127.0.0.1 (no web
framework; one listener page, `eval/templates/preference.html`). The page is
blind: it shows the prompt, plays A and B (or shows the two captions) and
records A / B / tie; system names never reach the browser. Each vote is one
JSON line appended to VOTES.jsonl (flushed and fsynced before the page hears
"ok"), with the pair, both system names, the choice, the winner, the rater
name the listener typed, whether each clip was played, and the time. On start
the votes file is read back, so a restarted server continues where it
stopped; one rater votes once per pair (a second vote is refused, 409).

`fit` estimates Bradley-Terry strengths: P(i beats j) = p_i / (p_i + p_j),
reported as theta_i = log p_i centred to mean 0, so P(i beats j) =
sigmoid(theta_i - theta_j). A tie counts half a win for each side (the rule
of Chatbot Arena's BT fits; Rao-Kupper / Davidson tie models would need a
tie parameter that a few hundred votes cannot pin down). Every pair of
systems also gets `--prior` virtual ties (default 0.5), which keeps the
estimate finite when a system wins or loses every comparison and connects
systems never compared directly; it shrinks strengths slightly toward 0.
Confidence intervals: `--bootstrap` resamples of the votes (with
replacement, seeded), percentile intervals of theta and of each system's
rank. Writes preference.json / .md / .png.

The fit is minorization-maximization (Hunter 2004, Ann. Statist. 32(1),
eq. 3), written here with numpy: p_i <- W_i / sum_j N_ij / (p_i + p_j), all
bootstrap replicates at once as one array. No library fits: `choix` (the BT
library on PyPI) is not installed and has no batched bootstrap, and
scikit-learn's logistic regression cannot weight ties as half wins per
comparison without duplicating rows.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import itertools
import json
import logging
import mimetypes
import os
import random
import re
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

log = logging.getLogger(__name__)

CHOICES = ("a", "b", "tie")
TEMPLATE = Path(__file__).resolve().parent / "templates" / "preference.html"

# --------------------------------------------------------------------------- pairs


def build_pairs(
    audio_systems: dict[str, str | Path] | None = None,
    caption_systems: dict[str, str | Path] | None = None,
    *,
    prompts: str | Path | None = None,
    clips: str | Path | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every unordered pair of systems for every item that two or more systems produced.

    Args:
        audio_systems: name -> folder of audio files named `<item>.<ext>`.
        caption_systems: name -> CSV/JSON of captions by id (`eval.captioning.read_captions`).
        prompts: CSV/JSON of the prompt text by id (None: the prompt is the item id).
        clips: folder of the captioned audio by stem (shown as context for caption pairs).
        seed: seed of the A/B sides and of the order of pairs.

    Raises:
        ValueError: fewer than two systems, both kinds given, or no item shared by two systems.
    """
    from eval.captioning import read_captions
    from eval.fad import list_audio

    audio_systems, caption_systems = dict(audio_systems or {}), dict(caption_systems or {})
    if audio_systems and caption_systems:
        raise ValueError("give audio systems or caption systems, not both: a pair compares like with like")
    outputs: dict[str, dict[str, dict[str, str]]] = {}
    for name, folder in audio_systems.items():
        outputs[name] = {p.stem: {"system": name, "audio": str(p.resolve())} for p in list_audio(folder)}
    for name, file in caption_systems.items():
        outputs[name] = {k: {"system": name, "text": v[0]} for k, v in read_captions(file, multi=False).items()}
    if len(outputs) < 2:
        raise ValueError(f"need two or more systems to compare, got {sorted(outputs)}")
    prompt_text = {k: v[0] for k, v in read_captions(prompts, multi=False).items()} if prompts else {}
    context = {p.stem: str(p.resolve()) for p in list_audio(clips)} if clips else {}
    rng = random.Random(seed)
    pairs = []
    for item in sorted(set().union(*[set(o) for o in outputs.values()])):
        have = [n for n in outputs if item in outputs[n]]
        for x, y in itertools.combinations(have, 2):
            a, b = (x, y) if rng.random() < 0.5 else (y, x)
            row: dict[str, Any] = {"item": item, "prompt": prompt_text.get(item, item), "a": outputs[a][item], "b": outputs[b][item]}
            if item in context:
                row["context"] = context[item]
            pairs.append(row)
    if not pairs:
        raise ValueError("no item is shared by two systems (outputs are matched by file stem / caption id)")
    rng.shuffle(pairs)
    for i, row in enumerate(pairs):
        row["id"] = f"p{i:04d}"
    return [{"id": r.pop("id"), **r} for r in pairs]


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """PAIRS.jsonl rows, checked; a bad row is an error naming the file and line."""
    path = Path(path)
    pairs, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from exc
        for side in ("a", "b"):
            if not isinstance(row.get(side), dict) or "system" not in row[side] or not ("audio" in row[side] or "text" in row[side]):
                raise ValueError(f"{path}:{lineno}: side {side!r} needs 'system' and 'audio' or 'text'")
            if "audio" in row[side] and not Path(row[side]["audio"]).is_file():
                raise ValueError(f"{path}:{lineno}: audio file {row[side]['audio']} does not exist")
        if "id" not in row or row["id"] in seen:
            raise ValueError(f"{path}:{lineno}: every pair needs a unique 'id'")
        seen.add(row["id"])
        pairs.append(row)
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def read_votes(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Votes of a VOTES.jsonl file and a note per line that was skipped (malformed, never fatal)."""
    path = Path(path)
    votes, skipped = [], []
    if not path.is_file():
        return votes, skipped
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            v = json.loads(line)
            if v["choice"] not in CHOICES or not v["a"] or not v["b"] or v["a"] == v["b"]:
                raise ValueError(f"choice {v['choice']!r}, systems {v['a']!r} / {v['b']!r}")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{path}:{lineno}: {type(exc).__name__}: {exc}")
            continue
        votes.append(v)
    for note in skipped:
        log.warning("skipped vote line %s", note)
    return votes, skipped


# --------------------------------------------------------------------------- server


class VoteStore:
    """The votes file and what is known about it (thread-safe appends)."""

    def __init__(self, path: str | Path, pairs: Sequence[dict[str, Any]], pairs_file: str = ""):
        self.path, self.pairs_file = Path(path), pairs_file
        self.pairs = {p["id"]: p for p in pairs}
        self.order = [p["id"] for p in pairs]
        self.lock = threading.Lock()
        votes, self.skipped = read_votes(self.path)
        self.voted = {(v.get("rater", ""), v.get("pair")) for v in votes}
        self.total = len(votes)

    def next_pair(self, rater: str) -> dict[str, Any] | None:
        """The first pair this rater has not judged, in an order of its own (seeded by the name)."""
        order = list(self.order)
        random.Random(hashlib.sha1(rater.encode()).hexdigest()).shuffle(order)
        with self.lock:
            return next((self.pairs[i] for i in order if (rater, i) not in self.voted), None)

    def done(self, rater: str) -> int:
        with self.lock:
            return sum(1 for r, p in self.voted if r == rater and p in self.pairs)

    def add(self, pair_id: str, choice: str, rater: str, played: dict | None = None, elapsed_ms: float | None = None) -> dict[str, Any]:
        """Append one vote (flushed and fsynced); raises KeyError (unknown pair) or ValueError (bad choice / repeat)."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        pair = self.pairs[pair_id]
        a, b = pair["a"]["system"], pair["b"]["system"]
        vote = {"pair": pair_id, "item": pair.get("item"), "prompt": pair.get("prompt"), "a": a, "b": b, "choice": choice,
                "winner": {"a": a, "b": b}.get(choice), "rater": rater, "played": played or {}, "elapsed_ms": elapsed_ms,
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "pairs_file": self.pairs_file}
        with self.lock:
            if (rater, pair_id) in self.voted:
                raise ValueError(f"rater {rater!r} already judged pair {pair_id}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(vote, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.voted.add((rater, pair_id))
            self.total += 1
        return vote


def _public(pair: dict[str, Any]) -> dict[str, Any]:
    """What the page may see of a pair: no system names (the test is blind)."""
    out: dict[str, Any] = {"id": pair["id"], "prompt": pair.get("prompt", ""), "context": f"/media/{pair['id']}/context" if pair.get("context") else None}
    for side in ("a", "b"):
        s = pair[side]
        out[side] = {"audio": f"/media/{pair['id']}/{side}"} if "audio" in s else {"text": s["text"]}
    return out


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def make_handler(store: VoteStore):
    """The request handler class bound to one vote store."""
    page = TEMPLATE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "lmmsn-preference"

        def log_message(self, fmt, *args):  # through logging, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _json(self, obj: Any, status: int = 200) -> None:
            body = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _state(self, rater: str) -> dict[str, Any]:
            pair = store.next_pair(rater)
            return {"pair": _public(pair) if pair else None, "done": store.done(rater), "total": len(store.pairs), "votes_total": store.total}

        def do_GET(self):
            url = urlparse(self.path)
            if url.path in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            elif url.path == "/api/next":
                self._json(self._state(parse_qs(url.query).get("rater", [""])[0]))
            elif url.path.startswith("/media/"):
                self._media(url.path)
            elif url.path == "/favicon.ico":
                self.send_response(204)
                self.end_headers()
            else:
                self._json({"error": f"no such page {url.path}"}, 404)

        def _media(self, path: str) -> None:
            parts = path.split("/")  # ['', 'media', pair, side]
            pair = store.pairs.get(parts[2]) if len(parts) == 4 else None
            file = None
            if pair is not None:
                file = pair.get("context") if parts[3] == "context" else pair.get(parts[3], {}).get("audio") if parts[3] in ("a", "b") else None
            if not file or not Path(file).is_file():  # only files named in the pairs file are served
                self._json({"error": "no such media"}, 404)
                return
            data = Path(file).read_bytes()
            start, end, status = 0, len(data) - 1, 200
            m = _RANGE.match(self.headers.get("Range", ""))
            if m and (m.group(1) or m.group(2)):  # the audio element asks for ranges; seeking needs 206
                if m.group(1):
                    start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else end
                else:
                    start = max(0, len(data) - int(m.group(2)))
                end = min(end, len(data) - 1)
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", mimetypes.guess_type(file)[0] or "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            self.wfile.write(data[start : end + 1])

        def do_POST(self):
            if urlparse(self.path).path != "/api/vote":
                self._json({"error": "POST /api/vote only"}, 404)
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                rater = str(body.get("rater") or "")
                vote = store.add(str(body["pair"]), str(body["choice"]), rater, body.get("played"), body.get("elapsed_ms"))
            except KeyError as exc:
                self._json({"error": f"unknown pair or missing field: {exc}"}, 400)
                return
            except ValueError as exc:
                self._json({"error": str(exc)}, HTTPStatus.CONFLICT if "already" in str(exc) else 400)
                return
            log.info("vote %s: %s (%s vs %s) by %r", vote["pair"], vote["choice"], vote["a"], vote["b"], rater)
            self._json({"ok": True, **self._state(rater)})

    return Handler


def make_server(pairs_file: str | Path, votes_file: str | Path, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """The preference server (not started: call `serve_forever`); port 0 picks a free one."""
    store = VoteStore(votes_file, read_pairs(pairs_file), str(pairs_file))
    server = ThreadingHTTPServer((host, port), make_handler(store))
    server.store = store  # type: ignore[attr-defined]
    return server


# --------------------------------------------------------------------------- Bradley-Terry


def comparison_arrays(votes: Sequence[dict[str, Any]], systems: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vote: index of side a, index of side b, and a's score (1 win, 0.5 tie, 0 loss)."""
    index = {s: i for i, s in enumerate(systems)}
    ia = np.array([index[v["a"]] for v in votes], dtype=np.int64)
    ib = np.array([index[v["b"]] for v in votes], dtype=np.int64)
    score = np.array([{"a": 1.0, "tie": 0.5, "b": 0.0}[v["choice"]] for v in votes])
    return ia, ib, score


def win_matrix(ia: np.ndarray, ib: np.ndarray, score: np.ndarray, n_systems: int, weights: np.ndarray | None = None) -> np.ndarray:
    """w[..., i, j] = (weighted) wins of i over j, ties as half; weights [B, V] give B matrices at once."""
    per_vote = np.zeros((len(ia), n_systems * n_systems))  # [V, S*S]: what each vote adds
    rows = np.arange(len(ia))
    np.add.at(per_vote, (rows, ia * n_systems + ib), score)
    np.add.at(per_vote, (rows, ib * n_systems + ia), 1.0 - score)
    if weights is None:
        return per_vote.sum(0).reshape(n_systems, n_systems)
    return (np.atleast_2d(weights) @ per_vote).reshape(-1, n_systems, n_systems)


def fit_bt(wins: np.ndarray, prior: float = 0.5, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) by MM (Hunter 2004, eq. 3).

    Args:
        wins: [S, S] or [B, S, S]; wins[i, j] = times i beat j (ties as 0.5 each way).
        prior: virtual ties added to every pair of systems (0: plain maximum likelihood, which
            diverges when a system never loses or never wins).
        tol: stop when no log-strength moves by more than this.

    Returns:
        theta [S] or [B, S].
    """
    w = np.asarray(wins, dtype=np.float64)
    single = w.ndim == 2
    w = w[None] if single else w
    s = w.shape[-1]
    off = 1.0 - np.eye(s)
    w = w + prior / 2 * off  # a virtual tie: half a win each way
    total = w.sum(-1)  # [B, S]: W_i
    n = (w + np.swapaxes(w, -1, -2)) * off  # [B, S, S]: comparisons of i and j
    log_p = np.zeros(w.shape[:2])
    for _ in range(max_iter):
        p = np.exp(log_p)
        denom = (n / (p[..., :, None] + p[..., None, :])).sum(-1)
        new = np.log(np.maximum(total, 1e-300)) - np.log(np.maximum(denom, 1e-300))
        new -= new.mean(-1, keepdims=True)
        if np.max(np.abs(new - log_p)) < tol:
            log_p = new
            break
        log_p = new
    else:
        log.warning("Bradley-Terry MM did not converge in %d iterations", max_iter)
    return log_p[0] if single else log_p


def _ranks(theta: np.ndarray) -> np.ndarray:
    """Rank 1 = strongest, per row of [B, S]."""
    return np.argsort(np.argsort(-theta, axis=-1), axis=-1) + 1


def fit_votes(votes: Sequence[dict[str, Any]], *, prior: float = 0.5, bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Strengths, bootstrap intervals, ranks and head-to-head counts of every system in `votes`."""
    if not votes:
        raise ValueError("no votes to fit")
    systems = sorted({v["a"] for v in votes} | {v["b"] for v in votes})
    ia, ib, score = comparison_arrays(votes, systems)
    wins = win_matrix(ia, ib, score, len(systems))
    theta = fit_bt(wins, prior)
    rng = np.random.default_rng(seed)
    boot = np.zeros((0, len(systems)))
    if bootstrap > 0:
        counts = np.stack([np.bincount(rng.integers(len(votes), size=len(votes)), minlength=len(votes)) for _ in range(bootstrap)]).astype(float)
        boot = fit_bt(win_matrix(ia, ib, score, len(systems), counts), prior)  # [B, S]
    alpha = (1 - confidence) / 2
    lo, hi = (np.quantile(boot, [alpha, 1 - alpha], axis=0) if bootstrap > 0 else (np.full(len(systems), np.nan),) * 2)
    rank = _ranks(theta[None])[0]
    rank_lo, rank_hi = (np.quantile(_ranks(boot), [alpha, 1 - alpha], axis=0) if bootstrap > 0 else (rank, rank))
    table = {}
    for k, name in enumerate(systems):
        table[name] = {"theta": float(theta[k]), "ci_low": float(lo[k]), "ci_high": float(hi[k]), "rank": int(rank[k]),
                       "rank_ci": [int(round(rank_lo[k])), int(round(rank_hi[k]))],
                       "wins": float(wins[k].sum()), "ties": int(np.sum((score == 0.5) & ((ia == k) | (ib == k)))),
                       "comparisons": int(np.sum(ia == k) + np.sum(ib == k))}
    order = sorted(systems, key=lambda n: -table[n]["theta"])
    return {"systems": {n: table[n] for n in order}, "ranking": order, "votes": len(votes),
            "raters": sorted({str(v.get("rater", "")) for v in votes}), "items": len({v.get("item") for v in votes}),
            "head_to_head": {a: {b: float(wins[i, j]) for j, b in enumerate(systems) if i != j} for i, a in enumerate(systems)},
            "settings": {"prior_virtual_ties_per_pair": prior, "bootstrap": bootstrap, "confidence": confidence, "seed": seed,
                         "method": "Bradley-Terry by MM (Hunter 2004), numpy; theta = log strength, mean 0; P(i>j) = sigmoid(theta_i - theta_j)",
                         "ties": "half a win to each side", "intervals": "percentile bootstrap over votes (resampled with replacement)"}}


def summary_md(result: dict[str, Any], title: str = "Listener preference (Bradley-Terry)") -> str:
    from eval.common import markdown_table

    s = result["settings"]
    pct = round(100 * s["confidence"])
    rows = [[v["rank"], n, v["theta"], f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]", f"{v['rank_ci'][0]}-{v['rank_ci'][1]}", v["wins"], v["ties"], v["comparisons"]]
            for n, v in result["systems"].items()]
    skipped = result.get("skipped_lines") or []
    return "\n\n".join([
        f"# {title}",
        f"{result['votes']} votes on {result['items']} items by {len(result['raters'])} rater(s). theta = Bradley-Terry log strength "
        f"(mean 0; P(i beats j) = sigmoid(theta_i - theta_j)); ties count half a win each; {s['prior_virtual_ties_per_pair']} virtual "
        f"ties per pair of systems; {pct}% percentile intervals from {s['bootstrap']} bootstrap resamples of the votes (seed {s['seed']}).",
        markdown_table(["rank", "system", "theta", f"{pct}% CI", f"rank {pct}% CI", "wins", "ties", "comparisons"], rows),
        f"Vote lines skipped as malformed: {len(skipped)}." + (" " + "; ".join(skipped[:5]) if skipped else ""),
    ])


def plot(result: dict[str, Any], path) -> None:
    """Strengths with their intervals, strongest on top."""
    from eval.common import new_figure, save_figure

    names = list(result["systems"])[::-1]
    v = [result["systems"][n] for n in names]
    theta = np.array([x["theta"] for x in v])
    err = np.array([[x["theta"] - x["ci_low"] for x in v], [x["ci_high"] - x["theta"] for x in v]])
    fig, ax = new_figure(6.0, 0.5 + 0.45 * len(names))
    ax.errorbar(theta, np.arange(len(names)), xerr=np.nan_to_num(err), fmt="o", capsize=4)
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_xlabel(f"Bradley-Terry theta ({round(100 * result['settings']['confidence'])}% bootstrap CI)")
    ax.set_title(f"Preference: {result['votes']} votes")
    save_figure(fig, path)


# --------------------------------------------------------------------------- CLI


def _named(spec: str) -> tuple[str, str]:
    """NAME=VALUE (eval.common.named_value, repeated so `serve` never imports eval.common, whose torch import takes seconds)."""
    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {spec!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(prog="python -m eval.preference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="build PAIRS.jsonl from two or more systems' outputs")
    p.add_argument("--system", action="append", type=_named, default=[], help="NAME=FOLDER of audio outputs named <item>.<ext>; repeat")
    p.add_argument("--captions", action="append", type=_named, default=[], help="NAME=FILE of captions by id (CSV/JSON, eval.captioning); repeat")
    p.add_argument("--prompts", default=None, help="CSV/JSON of the prompt text by item id (default: the id)")
    p.add_argument("--clips", default=None, help="with --captions: folder of the captioned audio, by stem (played above the captions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the A/B sides and the pair order")
    p.add_argument("--out", required=True, help="PAIRS.jsonl to write")
    s = sub.add_parser("serve", help="serve the listener page on 127.0.0.1 and append votes")
    s.add_argument("--pairs", required=True, help="PAIRS.jsonl (from `pairs`)")
    s.add_argument("--votes", required=True, help="VOTES.jsonl: appended to, read back on start")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    s.add_argument("--port", type=int, default=8765, help="port (0: any free one; the URL is printed)")
    f = sub.add_parser("fit", help="Bradley-Terry strengths with bootstrap intervals")
    f.add_argument("--votes", required=True, help="VOTES.jsonl")
    f.add_argument("--prior", type=float, default=0.5, help="virtual ties per pair of systems (0: plain maximum likelihood)")
    f.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the votes (0: no intervals)")
    f.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    f.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    f.add_argument("--out", default=None, help="folder for preference.json / .md / .png (default: beside VOTES.jsonl)")
    args = parser.parse_args(argv)
    # eval.common.cli_logging's format, without importing eval.common (torch) for `serve`
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "pairs":
        pairs = build_pairs(dict(args.system), dict(args.captions), prompts=args.prompts, clips=args.clips, seed=args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        log.info("wrote %d pairs to %s", len(pairs), args.out)
        return pairs
    if args.command == "serve":
        server = make_server(args.pairs, args.votes, args.host, args.port)
        store = server.store  # type: ignore[attr-defined]
        print(f"serving {len(store.pairs)} pairs on http://{args.host}:{server.server_address[1]}/ ; votes -> {args.votes} "
              f"({store.total} already there)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return None
    from eval.common import write_result

    votes, skipped = read_votes(args.votes)
    result = fit_votes(votes, prior=args.prior, bootstrap=args.bootstrap, confidence=args.confidence, seed=args.seed)
    result.update(votes_file=str(args.votes), skipped_lines=skipped)
    out = Path(args.out) if args.out else Path(args.votes).parent
    write_result(out, "preference", result, summary_md(result))
    plot(result, out / "preference.png")
    return result


if __name__ == "__main__":
    main()
