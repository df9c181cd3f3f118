"""Latency of `Pipeline.generate`: LLM token rate, ODE decode, VAE decode, total, real-time factor.

GPU (the issue's measurement): a Vicuna-7B-shaped LLaMA (random weights, hidden 4096, 32 layers,
vocab 32000 + 8198 = 40198, merged: no LoRA indirection), the paper-size tokenizer (random weights,
SAO VAE architecture), forced to emit exactly 215 audio tokens (10 s), batch 1:

    python bench/generate_latency.py --device cuda --cache-implementation static

CPU smoke run (tiny tokenizer + tiny LLaMA; numbers say nothing about the GPU):

    python bench/generate_latency.py --tiny

Each phase is timed on its own (CUDA synchronised), then `generate` end to end; the median over
`--repeats` runs after `--warmup` runs is printed, and `--json` writes everything.
`--engine` picks the LLM decoding loop (`lmmsn.generation.sample`): "lmmsn" (ours, default) or
"transformers" (`model.generate`); `--llm-only` times the LLM phase alone (gpu_check.sh row d:
transformers default vs. transformers static cache vs. ours).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def build(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmmsn.llm.model import AudioLM
    from lmmsn.llm.tiny import build_tiny_text_tokenizer
    from lmmsn.llm.vocabulary import AudioVocabulary
    from lmmsn.pipeline import Pipeline, best_device_and_dtype
    from lmmsn.tokenizer.model import build_tokenizer, tokenizer_config

    device, dtype = best_device_and_dtype(args.device, args.dtype)
    torch.manual_seed(0)
    tok = build_tokenizer(tokenizer_config("tiny" if args.tiny else "paper")).to(device).eval()
    text_tok = build_tiny_text_tokenizer()
    vocabulary = AudioVocabulary.extend(text_tok, tok.codebook_size)
    if args.tiny:
        shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                     intermediate_size=64, vocab_size=vocabulary.size)
    else:  # Vicuna-7B v1.5 / LLaMA-2-7B shape with the extended vocabulary of the paper
        shape = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                     intermediate_size=11008, vocab_size=32000 + tok.codebook_size + 2)
    config = LlamaConfig(**shape, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    lm = AudioLM(model, text_tok, vocabulary, base_model="random", lora=None)
    return Pipeline(tok, lm), device, dtype


def timed(fn, device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny tokenizer + tiny LLaMA (CPU smoke run)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="LLM dtype (default: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--tokens", type=int, default=215, help="audio tokens to force (215 = 10 s of the paper VAE)")
    parser.add_argument("--batch", type=int, default=1, help="prompts per generate call")
    parser.add_argument("--ode-steps", type=int, default=None, help="tokenizer ODE steps (default: its config)")
    parser.add_argument("--cache-implementation", default=None, help='transformers KV cache, e.g. "static"')
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--engine", choices=["lmmsn", "transformers"], default="lmmsn", help="LLM decoding loop")
    parser.add_argument("--llm-only", action="store_true", help="time the LLM phase only")
    parser.add_argument("--compile-step", action="store_true",
                        help="engine lmmsn + static cache: torch.compile the one-token step (warm-up runs compile)")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    pipe, device, dtype = build(args)
    build_s = time.perf_counter() - t0
    n = args.tokens
    prompts = ["a dog barking in the distance"] * args.batch
    from lmmsn.generation import SamplingConfig

    constraint = pipe._constraint(n, n, allow_audio=True)  # exactly n audio tokens, then <eoa>
    texts = [pipe.generation_prompt(p) for p in prompts]
    seconds = n / pipe.frame_rate

    def llm():
        return pipe._sample(texts, max_new_tokens=n + 1, sampling=SamplingConfig(temperature=1.0),
                            constraint=constraint, eos=pipe.vocabulary.eoa_id, seed=0, progress=False,
                            cache_implementation=args.cache_implementation, engine=args.engine,
                            compile_step=args.compile_step)

    codes = torch.randint(0, pipe.audio_tokenizer.codebook_size, (args.batch, n), device=device)
    results: dict[str, list[float]] = {"llm_s": [], "ode_s": [], "vae_s": [], "total_s": []}
    for i in range(args.warmup + args.repeats):
        llm_s, rows = timed(llm, device)
        assert all(len(r) == n + 1 for r in rows), "the LLM did not emit exactly n audio tokens + <eoa>"
        if args.llm_only:
            if i >= args.warmup:
                results["llm_s"].append(llm_s)
            continue
        ode_s, z = timed(lambda: pipe.audio_tokenizer.decode_latents(codes, steps=args.ode_steps), device)
        vae_s, wav = timed(lambda z=z: pipe.audio_tokenizer.vae.decode(z.transpose(1, 2)), device)
        total_s, clips = timed(lambda: pipe.generate(prompts, seconds=seconds, min_seconds=seconds,
                                                     steps=args.ode_steps, seed=0,
                                                     cache_implementation=args.cache_implementation,
                                                     compile_step=args.compile_step), device)
        assert all(c.codes.numel() == n for c in (clips if isinstance(clips, list) else [clips]))
        if i >= args.warmup:
            for key, value in zip(results, (llm_s, ode_s, vae_s, total_s), strict=True):
                results[key].append(value)
    if args.llm_only:
        results = {"llm_s": results["llm_s"]}
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "mode": "tiny (CPU smoke)" if args.tiny else "7B-shaped LLM + paper tokenizer",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "llm_dtype": str(dtype).removeprefix("torch."),
        "batch": args.batch,
        "audio_tokens": n,
        "audio_seconds": round(seconds, 3),
        "ode_steps": args.ode_steps or pipe.audio_tokenizer.config.flow.steps,
        "ode_method": pipe.audio_tokenizer.config.flow.method,
        "cache_implementation": args.cache_implementation or "dynamic",
        "build_s": round(build_s, 2),
        "llm_tokens_per_s": round(args.batch * (n + 1) / med["llm_s"], 1),
        **{k: round(v, 4) for k, v in med.items()},
        "engine": args.engine,
        "compile_step": args.compile_step,
        **({} if args.llm_only else {"real_time_factor": round(med["total_s"] / seconds, 4)}),
        "runs": {k: [round(x, 4) for x in v] for k, v in results.items()},
        "torch": torch.__version__,
    }
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
