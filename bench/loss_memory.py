"""Peak memory of the training loss + backward: chunked linear CE vs. the full-logits loss (CPU).

Both sides compute the same thing, the paper's loss (10x audio weight, z-loss,
logged parts) from hidden states [B x L, D] and an output matrix [V, D], then
backward to both (the default; `--frozen-head` leaves the matrix without a
gradient):

    plain   logits = hidden @ weight.T, then `audio_lm_loss(logits, ...)`
    ours    `linear_audio_lm_loss(hidden, weight, ...)` (chunk_size tokens at a time)

`--trainable-rows` is the paper's recipe (LoRA + peft `trainable_token_indices`):
the matrix is frozen and its new rows (the last 8,198: audio codes, <soa>,
<eoa>) are a trainable [R, D] delta. Plain is peft's forward (the merged matrix
`base.index_copy(0, rows, delta)`, then full logits); ours passes
`TrainableRowsHead(base, rows, delta)`, as `output_head_weight` does for our
model, and gets the delta's gradient without a [V, D] one.

Each side runs in its own subprocess. After its inputs are built the
process's resident-set high-water mark is reset (`/proc/self/clear_refs`,
Linux) and the peak reported is VmHWM minus the resident size at that point:
the memory the loss and its backward added, gradients included (tracemalloc
does not see torch's allocations). One line per side, then one line with both
numbers and the ratio (target <= 0.3 at the paper shape).

    python bench/loss_memory.py                  # 8 x 512 tokens, hidden 4096, vocab 40,198, fp32
    python bench/loss_memory.py --trainable-rows # the recipe's head: frozen text rows, trainable new rows
    python bench/loss_memory.py --tiny           # seconds, plumbing only
    python bench/loss_memory.py --json out.json  # also write the numbers
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def child(args: argparse.Namespace) -> dict[str, float]:
    """One side, in this process: peak MB added by loss + backward, seconds, loss value."""
    import torch

    from lmmsn.llm.losses import (
        IGNORE_INDEX,
        LossConfig,
        TrainableRowsHead,
        audio_lm_loss,
        linear_audio_lm_loss,
    )

    torch.manual_seed(0)
    codebook = min(8198, args.vocab // 2)
    audio = range(args.vocab - codebook, args.vocab - 2)
    batch, seq = args.batch, args.seq
    hidden = torch.randn(batch, seq, args.hidden, requires_grad=True)  # [B, L, D]
    frozen = args.frozen_head or args.trainable_rows
    weight = (torch.randn(args.vocab, args.hidden) / args.hidden**0.5).requires_grad_(not frozen)
    rows = range(args.vocab - codebook, args.vocab)  # the new rows (audio codes, <soa>, <eoa>)
    delta = None
    if args.trainable_rows:  # peft initialises the delta from the rows it replaces
        delta = weight[rows.start:].clone().requires_grad_(True)  # [R, D]
    labels = torch.randint(0, args.vocab, (batch, seq))
    labels[:, : seq // 8] = IGNORE_INDEX  # a masked prompt
    settings = LossConfig(chunk_size=args.chunk)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base_kb = _status_kb("VmRSS")
    start = time.perf_counter()
    if args.side == "plain":
        matrix = weight
        if delta is not None:  # peft's TrainableTokensLayer forward: get_merged_weights
            matrix = weight.index_copy(0, torch.arange(rows.start, rows.stop), delta)
        out = audio_lm_loss(hidden @ matrix.T, labels, audio, settings)
    else:
        head = weight if delta is None else TrainableRowsHead(weight, rows, delta)
        out = linear_audio_lm_loss(hidden, head, labels, audio, settings)
    out.total.backward()
    seconds = time.perf_counter() - start
    peak_mb = (_status_kb("VmHWM") - base_kb) / 1024
    trained = weight if delta is None else delta
    head_grad = 0.0 if trained.grad is None else float(trained.grad.norm())
    return {"peak_mb": peak_mb, "seconds": seconds, "loss": float(out.total),
            "hidden_grad_norm": float(hidden.grad.norm()), "head_grad_norm": head_grad}


def run_side(side: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", side, "--batch", str(args.batch), "--seq", str(args.seq),
           "--hidden", str(args.hidden), "--vocab", str(args.vocab), "--chunk", str(args.chunk)]
    if args.frozen_head:
        cmd.append("--frozen-head")
    if args.trainable_rows:
        cmd.append("--trainable-rows")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} side failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=40198, help="32,000 text + 8,198 audio and markers")
    parser.add_argument("--chunk", type=int, default=1024, help="tokens per chunk (LossConfig.chunk_size)")
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--frozen-head", action="store_true", help="no gradient for the output matrix")
    head.add_argument("--trainable-rows", action="store_true",
                      help="frozen matrix, its new rows a trainable delta (LoRA + trainable_token_indices)")
    parser.add_argument("--tiny", action="store_true", help="2 x 64 tokens, hidden 64, vocab 4,000")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--child", choices=["plain", "ours"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch, args.seq, args.hidden, args.vocab, args.chunk = 2, 64, 64, 4000, 32
    args.side = args.child
    if args.child:
        print(json.dumps(child(args)))
        return {}
    head = ("frozen head" if args.frozen_head else "frozen head, trainable new rows" if args.trainable_rows
            else "head and hidden grads")
    print(f"loss + backward, {args.batch} x {args.seq} tokens, hidden {args.hidden}, vocab {args.vocab}, "
          f"fp32 CPU, {head}, chunk {args.chunk}")
    results = {side: run_side(side, args) for side in ("plain", "ours")}
    for side, r in results.items():
        print(f"{side:<6} peak +{r['peak_mb']:.0f} MB  {r['seconds']:.1f} s  loss {r['loss']:.6f}  "
              f"|grad hidden| {r['hidden_grad_norm']:.6f}  |grad head| {r['head_grad_norm']:.6f}")
    ratio = results["ours"]["peak_mb"] / results["plain"]["peak_mb"]
    print(f"loss_memory: plain {results['plain']['peak_mb']:.0f} MB, ours {results['ours']['peak_mb']:.0f} MB, "
          f"ratio {ratio:.3f} (target <= 0.3)")
    summary = {"shape": {"batch": args.batch, "seq": args.seq, "hidden": args.hidden, "vocab": args.vocab,
                         "chunk": args.chunk, "frozen_head": args.frozen_head,
                         "trainable_rows": args.trainable_rows},
               "plain": results["plain"], "ours": results["ours"], "ratio": ratio}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
