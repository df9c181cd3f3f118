"""Decoding speed on one model: our loop (`lmmsn.generation.decode`) vs. transformers `generate`.

Same model, same prompt, same seed, same constraint (exactly `--tokens` audio tokens then
<eoa>, as `Pipeline.generate` asks for 10 s of audio): the rows must write the same tokens (the
script checks it) and differ only in speed. Rows: transformers `generate` with its default
(dynamic) cache, transformers with `cache_implementation="static"`, ours with a dynamic and
with a static cache, and ours with the static cache and the compiled one-token step
(`compile_step`; its first call, which compiles, is printed apart and never timed). Median of `--repeats` timed runs after `--warmup`; the last line is the
ratio against transformers default (target on CPU with the tiny model: >= 2x).

    python bench/generate_engines.py                       # CPU, tiny random LLaMA, 215 tokens
    python bench/generate_engines.py --device cuda --shape 7b --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008),
}
ROWS = [("transformers", None), ("transformers", "static"), ("lmmsn", None), ("lmmsn", "static"),
        ("lmmsn", "static+compile")]


def main(argv: list[str] | None = None) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmmsn.generation import AudioSpanConstraint, SamplingConfig, sample

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--tokens", type=int, default=215, help="audio tokens (215 = 10 s)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--codebook", type=int, default=8196)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    text = 32000 if args.shape == "7b" else 384
    vocab = text + args.codebook + 2
    soa, eoa = text + args.codebook, text + args.codebook + 1
    shape = SHAPES[args.shape]
    config = LlamaConfig(**shape, num_key_value_heads=shape["num_attention_heads"], vocab_size=vocab,
                         max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    constraint = AudioSpanConstraint(soa_id=soa, eoa_id=eoa, audio_ids=range(text, text + args.codebook),
                                     max_tokens=args.tokens, min_tokens=args.tokens, extra_forbidden_ids=[0])
    g = torch.Generator().manual_seed(1)
    prompt = torch.cat([torch.tensor([1]), torch.randint(3, text, (20,), generator=g), torch.tensor([soa])])
    ids = prompt.repeat(args.batch, 1).to(device)  # [B, 22]: "... ASSISTANT: <soa>"
    mask = torch.ones_like(ids)
    sampling = SamplingConfig(temperature=1.0)

    def run(engine: str, cache: str | None) -> torch.Tensor:
        compiled = cache == "static+compile"
        return sample(model, ids, mask, max_new_tokens=args.tokens + 1, sampling=sampling, constraint=constraint,
                      vocab_size=vocab, eos_token_id=eoa, pad_token_id=0, seed=0, engine=engine,
                      cache_implementation="static" if compiled else cache, compile_step=compiled)

    results, tokens = {}, {}
    for engine, cache in ROWS:
        name = f"{engine}_{cache or 'dynamic'}"
        times, first = [], None
        for i in range(max(1, args.warmup) + args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = run(engine, cache)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i == 0:
                first = time.perf_counter() - t0  # with compilation, for the compiled row
            if i >= max(1, args.warmup):
                times.append(time.perf_counter() - t0)
        tokens[name] = out.tolist()
        seconds = statistics.median(times)
        results[name] = {"seconds": seconds, "tokens_per_s": args.batch * out.shape[1] / seconds, "first_call_s": first}
        print(f"{name:<28} {seconds:8.4f} s  {results[name]['tokens_per_s']:9.1f} tok/s  (first call {first:.2f} s)",
              flush=True)
    same = all(t == tokens["transformers_dynamic"] for t in tokens.values())
    ratio = results["lmmsn_static"]["tokens_per_s"] / results["transformers_dynamic"]["tokens_per_s"]
    best = max(results[n]["tokens_per_s"] for n in ("lmmsn_dynamic", "lmmsn_static", "lmmsn_static+compile"))
    best_ratio = best / results["transformers_dynamic"]["tokens_per_s"]
    print(f"generate_engines ({args.shape}, {device}, {args.tokens} tokens, batch {args.batch}): ours static / "
          f"transformers default = {ratio:.2f}x, best ours = {best_ratio:.2f}x (target >= 2x); "
          f"same tokens: {same}")
    summary = {"shape": args.shape, "device": str(device), "tokens": args.tokens, "batch": args.batch,
               "rows": results, "ratio_static": ratio, "ratio_best": best_ratio, "same_tokens": same}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
