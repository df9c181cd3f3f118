"""The table of `bench/gpu_check.sh`: reads each row's JSON / log / exit code, prints one table, writes JSON.

    python bench/gpu_table.py DIR [--dry-run 0|1]     # DIR holds <row>.json, <row>.log, <row>.rc

Each row gets `ok`, `seconds`, its headline `metrics` (numbers) and, when it failed, `error`
(the last lines of its log). Ratios between rows that the issue's targets name come last.
Writes DIR/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROWS = ["a_ours", "a_plain_sdpa", "a_plain_sdpa_compile", "b_vae_eager", "b_vae_compiled", "c_make_shards",
        "d_generate_default", "d_generate_static", "d_generate_ours", "d_generate_ours_dynamic",
        "d_generate_ours_compiled", "e_tokenizer_step", "f_pytest_gpu"]


def _lora(data: dict) -> dict[str, float]:
    row = data["rows"][0]
    if str(row.get("note", "")).startswith("failed"):
        raise RuntimeError(row["note"])
    return {"tokens_per_s": row["tokens_per_s"], "peak_gib": row["peak_gib"], "tflops": row["tflops"]}


def _vae(data: dict) -> dict[str, float]:
    row = data["vae_only"]
    out = {"x_real_time": row["x_real_time"], "ms_per_clip": row["ms_per_clip"]}
    if "max_latent_diff" in row:
        out["max_latent_diff"] = row["max_latent_diff"]
        out["max_latent_diff_rel"] = row["max_latent_diff_rel"]
    return out


def _shards(data: dict) -> dict[str, float]:
    row = data["end_to_end"]
    return {"x_real_time": row.get("x_real_time", row["x_real_time_incl_warmup"]),
            "x_real_time_incl_warmup": row["x_real_time_incl_warmup"], "samples": row["samples"]}


def _generate(data: dict) -> dict[str, float]:
    return {"llm_s": data["llm_s"], "llm_tokens_per_s": data["llm_tokens_per_s"]}


def _tokenizer(data: dict) -> dict[str, float]:
    return {"samples_per_s": data["samples_per_s"], "peak_gib": data["peak_gib"], "step_ms": data["step_ms"]}


def _pytest(log: str) -> dict[str, float]:
    counts = {key: float(n) for n, key in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", log)}
    collected = re.search(r"(\d+)(?:/\d+)? tests? collected", log)
    if collected:
        counts["collected"] = float(collected.group(1))
    if not counts:
        raise RuntimeError("no pytest summary in the log")
    return counts


READERS = {"a": _lora, "b": _vae, "c": _shards, "d": _generate, "e": _tokenizer}


def read_row(directory: Path, name: str) -> dict:
    rc_file, log_file, err_file = (directory / f"{name}.{ext}" for ext in ("rc", "log", "error"))
    row: dict = {"ok": False, "seconds": None, "metrics": {}}
    if rc_file.exists():
        rc, seconds = rc_file.read_text().split()
        row["rc"], row["seconds"] = int(rc), float(seconds)
    elif not err_file.exists():
        row["error"] = "not run"
        return row
    try:
        if name.startswith("f"):
            row["metrics"] = _pytest(log_file.read_text(errors="replace") if log_file.exists() else "")
        else:
            row["metrics"] = READERS[name[0]](json.loads((directory / f"{name}.json").read_text()))
        row["ok"] = row.get("rc") == 0 and all(isinstance(v, (int, float)) for v in row["metrics"].values())
    except Exception as exc:  # a missing or partial JSON: the row failed
        row["error"] = f"{type(exc).__name__}: {exc}"
    if err_file.exists():
        row["error"] = err_file.read_text(errors="replace")[-1500:]
    return row


def ratios(rows: dict[str, dict]) -> dict[str, float]:
    def get(name: str, key: str) -> float | None:
        value = rows.get(name, {}).get("metrics", {}).get(key)
        return float(value) if isinstance(value, (int, float)) and value == value else None

    out = {}
    for label, (a, b, key) in {
        "lora ours / plain_sdpa_compile tokens/s (target >= 1.5)": ("a_ours", "a_plain_sdpa_compile", "tokens_per_s"),
        "lora ours / plain_sdpa tokens/s": ("a_ours", "a_plain_sdpa", "tokens_per_s"),
        "lora ours / plain_sdpa peak memory": ("a_ours", "a_plain_sdpa", "peak_gib"),
        "vae compiled / eager x real time": ("b_vae_compiled", "b_vae_eager", "x_real_time"),
        "generate ours / transformers default tok/s": ("d_generate_ours", "d_generate_default", "llm_tokens_per_s"),
        "generate ours / transformers static tok/s": ("d_generate_ours", "d_generate_static", "llm_tokens_per_s"),
        "generate ours dynamic / transformers default tok/s": ("d_generate_ours_dynamic", "d_generate_default",
                                                               "llm_tokens_per_s"),
        "generate ours compiled / transformers default tok/s": ("d_generate_ours_compiled", "d_generate_default",
                                                                "llm_tokens_per_s"),
    }.items():
        x, y = get(a, key), get(b, key)
        if x is not None and y:
            out[label] = x / y
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--dry-run", type=int, default=0)
    args = parser.parse_args(argv)
    rows = {name: read_row(args.directory, name) for name in ROWS}
    table = {"dry_run": bool(args.dry_run), "rows": rows, "ratios": ratios(rows)}
    (args.directory / "gpu_check.json").write_text(json.dumps(table, indent=1))
    print(f"\n{'row':<22} {'ok':<4} {'s':>6}  metrics")
    for name, row in rows.items():
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.0f}"
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in row["metrics"].items()) if row["metrics"] else ""
        if not row["ok"]:
            metrics += ("  " if metrics else "") + "ERROR " + (row.get("error") or "").strip().splitlines()[0][:90] \
                if row.get("error") else ""
        print(f"{name:<22} {'yes' if row['ok'] else 'NO':<4} {seconds:>6}  {metrics}")
    for label, value in table["ratios"].items():
        print(f"{label}: {value:.3g}")
    print(f"written: {args.directory / 'gpu_check.json'}" + ("  (dry run: CPU, tiny shapes)" if args.dry_run else ""))
    return table


if __name__ == "__main__":
    main()
