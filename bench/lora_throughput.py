"""LoRA training throughput: our AudioLM step vs. plain transformers + peft, in one run.

Vicuna-7B-shaped LLaMA with random weights (hidden 4096, 32 layers, 32 heads,
FFN 11008, vocabulary 32,000 + 8,198 = 40,198), batch 8 x 512 tokens, LoRA
r 64 / alpha 128 on every linear layer, the new rows of embed_tokens and
lm_head trainable (peft `trainable_token_indices`, dict form), AdamW.

Rows printed (each a separate model built from the same seed):

    plain_sdpa          transformers + peft, SDPA attention, the model's own
                        (unweighted) causal-LM loss, torch.optim.AdamW defaults
    plain_sdpa_compile  the same with torch.compile(model)
    ours                `AudioLM.from_model` (+ embedding padded to a multiple
                        of 64), the training module's loss (`AudioLMModule.loss`:
                        chunked linear CE, 10x audio weight + z-loss, accuracy;
                        the logits are never materialised), fused AdamW on CUDA,
                        torch.compile of the forward + loss

Peak memory: CUDA `max_memory_allocated` over the timed steps (on CPU the
process's resident high-water mark, VmHWM). `--json PATH` writes the rows.
Run one row per process (`--only ours`) for a clean peak: gpu_check.sh does.

tokens/s counts every input token (B x L) per optimizer step. Achieved
TFLOP/s uses the model FLOPs of a LoRA step without recomputation:
4 N_frozen (forward + input gradients of the frozen matmuls, lm_head included)
+ 6 N_trainable + 12 L s h (attention scores and values, forward + backward)
per token, where N counts matmul parameters (the embedding lookup is free).

GPU (the issue's setting):   python bench/lora_throughput.py
CPU check of the plumbing:   python bench/lora_throughput.py --tiny

On CPU the compiled rows are left out unless `--compile-on-cpu` is given:
Inductor's CPU compilation of the peft model ran for over 30 minutes on a
2-core machine, and a CPU figure says nothing about the GPU target anyway.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

VICUNA_7B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 11008,
             "vocab_size": 32000}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "vocab_size": 320}


@dataclass
class Result:
    name: str
    tokens_per_s: float
    tflops: float
    loss: float
    note: str = ""
    peak_gib: float = float("nan")


def build_base(shape: dict[str, int], device: torch.device, dtype: torch.dtype, seed: int):
    """A random LlamaForCausalLM of `shape`, built directly on `device` in `dtype`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, num_key_value_heads=shape["num_attention_heads"], max_position_embeddings=4096,
                         tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def model_flops_per_token(model: torch.nn.Module, shape: dict[str, int], seq: int) -> float:
    """4 N_frozen + 6 N_trainable + 12 L s h (see the module docstring)."""
    frozen = trainable = 0
    for name, p in model.named_parameters():
        if p.ndim < 2 or ("embed_tokens" in name and "lora" not in name):  # lookups are free
            continue
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    attention = 12 * shape["num_hidden_layers"] * seq * shape["hidden_size"]
    return 4 * frozen + 6 * trainable + attention


def timed(step: Callable[[], float], steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """Seconds per step (mean over `steps` after `warmup`) and the last loss."""
    loss = 0.0
    for _ in range(warmup):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, loss


def peak_gib(device: torch.device) -> float:
    """Peak memory since the last reset: CUDA allocated, or the process's RSS high-water mark."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def make_batch(vocab: int, first_audio: int, codebook: int, batch: int, seq: int, device: torch.device, seed: int):
    """Token ids: a short text prefix then an audio span (like a pretraining pair)."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, first_audio, (batch, seq // 8), generator=g)
    audio = torch.randint(first_audio, first_audio + codebook, (batch, seq - seq // 8), generator=g)
    ids = torch.cat([text, audio], dim=1).to(device)  # [B, L]
    return ids, ids.clone()


def run_plain(args, shape, device, dtype, compile_model: bool) -> Result:
    from peft import LoraConfig, get_peft_model

    base = build_base(shape, device, dtype, args.seed)
    vocab = shape["vocab_size"] + args.codebook + 2
    base.resize_token_embeddings(vocab, mean_resizing=False)
    new_ids = list(range(shape["vocab_size"], vocab))
    config = LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0, target_modules="all-linear",
                        trainable_token_indices={"embed_tokens": new_ids, "lm_head": new_ids}, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    forward = torch.compile(model, backend=args.compile_backend) if compile_model else model
    ids, labels = make_batch(vocab, shape["vocab_size"], args.codebook, args.batch, args.seq, device, args.seed)

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast):
            loss = forward(input_ids=ids, labels=labels, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    seconds, loss = timed(step, args.steps, args.warmup, device)
    flops = model_flops_per_token(model, shape, args.seq)
    tokens = args.batch * args.seq / seconds
    return Result("plain_sdpa_compile" if compile_model else "plain_sdpa", tokens, tokens * flops / 1e12, loss,
                  peak_gib=peak_gib(device))


def run_ours(args, shape, device, dtype) -> Result:
    from lmmsn.llm.model import AudioLM, LoraConfig
    from lmmsn.llm.vocabulary import AudioVocabulary
    from lmmsn.training.llm_module import AudioLMModule, TrainLLMConfig

    base = build_base(shape, device, dtype, args.seed)
    vocabulary = AudioVocabulary(args.codebook, shape["vocab_size"])
    lm = AudioLM.from_model(base, vocabulary, LoraConfig(r=args.r, alpha=2 * args.r, dropout=0.0),
                            pad_to_multiple_of=64)
    model = lm.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    config = TrainLLMConfig()
    config.loss.chunk_size = args.chunk_size
    module = AudioLMModule(lm, config)  # its loss is the training step's (chunked linear CE by default)

    def loss_fn(ids, labels):
        return module.loss({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})

    forward = torch.compile(loss_fn, backend=args.compile_backend) if args.compile_ours else loss_fn
    ids, labels = make_batch(vocabulary.size, vocabulary.first_audio_id, args.codebook, args.batch, args.seq,
                             device, args.seed)

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast):
            out = forward(ids, labels)
        out.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(out.total.detach())

    seconds, loss = timed(step, args.steps, args.warmup, device)
    flops = model_flops_per_token(model, shape, args.seq)
    tokens = args.batch * args.seq / seconds
    note = f"weighted CE + z-loss, chunk {args.chunk_size}" + (", compiled" if args.compile_ours else "")
    return Result("ours", tokens, tokens * flops / 1e12, loss, note, peak_gib=peak_gib(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (checks the plumbing only)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 8; tiny 2)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 512; tiny 64)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation happens here)")
    parser.add_argument("--r", type=int, default=64, help="LoRA rank (alpha = 2r)")
    parser.add_argument("--codebook", type=int, default=8196, help="audio tokens (vocabulary += codebook + 2)")
    parser.add_argument("--only", nargs="*", default=["plain_sdpa", "plain_sdpa_compile", "ours"],
                        help="which rows to run")
    parser.add_argument("--no-compile-ours", dest="compile_ours", action="store_false")
    parser.add_argument("--compile-on-cpu", action="store_true", help="with --tiny: also run the compiled rows")
    parser.add_argument("--compile-backend", default="inductor", help='torch.compile backend ("eager": tracing only)')
    parser.add_argument("--chunk-size", type=int, default=1024, help="ours: loss.chunk_size (0: full logits)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.tiny:
        shape, device, dtype = TINY, torch.device("cpu"), torch.float32
        args.batch, args.seq = args.batch or 2, args.seq or 64
        args.codebook = min(args.codebook, 64)
        args.r = min(args.r, 8)
        args.autocast = False
        if not args.compile_on_cpu:
            args.only = [name for name in args.only if not name.endswith("compile")]
            args.compile_ours = False
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --tiny for the CPU check")
        shape, device, dtype = VICUNA_7B, torch.device("cuda"), torch.bfloat16
        args.batch, args.seq = args.batch or 8, args.seq or 512
        args.autocast = True
        torch.backends.cuda.matmul.allow_tf32 = True
    where = "CPU, tiny model (plumbing check, not a GPU figure)" if args.tiny else torch.cuda.get_device_name()
    print(f"device: {where}; shape {shape}; vocab {shape['vocab_size']} + {args.codebook + 2}; "
          f"batch {args.batch} x {args.seq}; LoRA r {args.r}; {args.steps} timed steps after {args.warmup}")
    print(f"{'row':<20} {'tokens/s':>12} {'TFLOP/s':>10} {'last loss':>10}  peak  note")
    results = []
    for name in args.only:
        try:
            if name == "ours":
                result = run_ours(args, shape, device, dtype)
            else:
                result = run_plain(args, shape, device, dtype, compile_model=name.endswith("compile"))
        except Exception as exc:  # report and go on with the other rows
            result = Result(name, float("nan"), float("nan"), float("nan"), f"failed: {type(exc).__name__}: {exc}"[:300])
        results.append(result)
        print(f"{result.name:<20} {result.tokens_per_s:>12.1f} {result.tflops:>10.3g} {result.loss:>10.4f}  "
              f"{result.peak_gib:.2f} GiB  {result.note}", flush=True)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    by_name = {r.name: r for r in results}
    for baseline in ("plain_sdpa_compile", "plain_sdpa"):
        if "ours" in by_name and baseline in by_name:
            ratio = by_name["ours"].tokens_per_s / by_name[baseline].tokens_per_s
            print(f"ours / {baseline} = {ratio:.2f}x (target on GPU: >= 1.5x plain_sdpa_compile)")
    if args.json:
        args.json.write_text(json.dumps({"device": where, "batch": args.batch, "seq": args.seq,
                                         "rows": [asdict(r) for r in results]}, indent=1))


if __name__ == "__main__":
    main()
