"""Padding per batch with and without packing, on real example lengths (issue 16: target <= 5% with packing).

    python bench/packing.py --shards runs/demo/data/conversations --lm runs/demo/pretrain/export
    python bench/packing.py --openaqa        # an OpenAQA-shaped mix instead (lengths drawn, no shards needed)

With shards: the training pipeline itself (`TokenBatches`: the LLM export's text tokenizer and
audio vocabulary, the config's bucketing) renders the examples of both recipes (pretraining
pairs and the fine-tuning mix) and the bench counts, over `--batches` batches, the padded
fraction of the batch tensor (1 - real tokens / numel) with `packing` off (bucketed padding)
and on (each bucketing buffer packed whole). The OpenAQA-shaped mix: every example one 10 s clip (215 codes + <soa>/<eoa>), the
Vicuna system prompt and turn markers (~60 tokens), a question of 8-30 tokens and an answer
of 2-120 tokens (OpenAQA's open-ended answers are long, its closed ones a word); there also
"packed per batch", each bucketed batch packed on its own (the design before buffer packing).
Prints one line per mode and side, then the ratio on/off.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import torch


def fractions(batches: Any, limit: int) -> dict[str, float]:
    real = total = n = 0
    for batch in batches:
        real += int(batch["attention_mask"].sum())
        total += batch["input_ids"].numel()
        n += 1
        if n >= limit:
            break
    return {"batches": n, "real_tokens": real, "batch_tokens": total, "padding": 1 - real / max(1, total)}


def from_shards(shards: str, lm_dir: str, mode: str, settings: dict[str, Any], limit: int) -> dict[str, Any]:
    from lmmsn.data.loader import shard_samples
    from lmmsn.llm.data import BatchConfig, TokenBatches
    from lmmsn.llm.model import AudioLM

    lm = AudioLM.from_pretrained(lm_dir)
    out = {}
    for packing in (False, True):
        cfg = BatchConfig(**settings, packing=packing)
        samples = shard_samples(shards, shuffle_buffer=0, seed=0)
        batches = TokenBatches(samples, lm.text_tokenizer, lm.vocabulary, mode, cfg, seed=0)
        out["packed" if packing else "padded"] = fractions(iter(batches), limit)
    return out


def openaqa_shaped(settings: dict[str, Any], limit: int, seed: int = 0) -> dict[str, Any]:
    from lmmsn.llm.data import bucket_batches, collate, length_buffers
    from lmmsn.llm.packing import collate_packed, packed_batches
    from lmmsn.llm.prompts import IGNORE_INDEX, Example

    def examples():
        rng = random.Random(seed)  # the same examples on both sides
        while True:
            answer = rng.choice([rng.randint(2, 6), rng.randint(20, 120)])
            n = min(settings["max_length"], 217 + 60 + rng.randint(8, 30) + answer)
            labels = torch.full((n,), IGNORE_INDEX)
            labels[-answer:] = 1
            yield Example(torch.ones(n, dtype=torch.long), labels)

    size, n = settings["batch_size"], settings["batch_size"] * settings["bucket_batches"]
    gen = bucket_batches(examples(), size, settings["bucket_batches"], random.Random(seed))
    return {
        "padded": fractions((collate(b, 0) for b in gen), limit),
        "packed per batch": fractions((collate_packed(b, 0, settings["max_length"])
                                       for b in bucket_batches(examples(), size, settings["bucket_batches"],
                                                               random.Random(seed))), limit),
        "packed": fractions(packed_batches(length_buffers(examples(), n), size, random.Random(seed), 0,
                                           settings["max_length"]), limit),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", help="conversation shards with codes (data_prep.conversations output)")
    p.add_argument("--lm", help="an AudioLM export (its text tokenizer and vocabulary)")
    p.add_argument("--openaqa", action="store_true", help="the OpenAQA-shaped length mix")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--bucket-batches", type=int, default=16)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    settings = {"batch_size": a.batch_size, "max_length": a.max_length, "bucket_batches": a.bucket_batches}
    result: dict[str, Any] = {"settings": settings}
    if a.openaqa:
        result["openaqa-shaped"] = openaqa_shaped({**settings, "max_length": max(a.max_length, 512)}, a.batches)
    if a.shards:
        if not a.lm:
            p.error("--shards needs --lm")
        for mode in ("pretrain", "finetune"):
            result[mode] = from_shards(a.shards, a.lm, mode, settings, a.batches)
    for name, r in result.items():
        if name == "settings":
            continue
        for side, v in r.items():
            print(f"{name:15s} {side:16s} padding {v['padding']:.3f} ({v['batches']} batches, {v['real_tokens']} real of "
                  f"{v['batch_tokens']} tokens)")
        print(f"{name:15s} ratio            packed/padded batch tokens {r['packed']['batch_tokens'] / r['padded']['batch_tokens']:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
