"""The `lmmsn` command: generate, caption, tokenize, reconstruct, info, export.

    lmmsn generate "dog barking" -o dog.wav --seconds 5 --seed 0
    lmmsn caption clip.wav
    lmmsn tokenize clip.wav -o clip.codes.json
    lmmsn reconstruct clip.wav -o out.wav
    lmmsn info checkpoints/lm-msn
    lmmsn export --tokenizer runs/tok/export --llm runs/llm/export -o checkpoints/lm-msn

Every command takes `--checkpoint` (default: the resolution order of
`lmmsn.checkpoints.resolve_checkpoint`), `--device` and `--dtype`. Errors about
missing checkpoints or unusable audio print one clear message and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
USER_ERRORS = {"CheckpointNotFoundError", "AudioError", "ExportError", "ConfigError"}
"Errors about the user's input: one message and exit status 2 instead of a traceback."


def _add_model_options(p: argparse.ArgumentParser, what: str = "pipeline") -> None:
    p.add_argument(
        "--checkpoint", "-c", default=None,
        help=f"{what} directory, a name under checkpoints/, or a hub id (default: $LMMSN_CHECKPOINT, "
        "then checkpoints/lm-msn, then $LMMSN_HUB_ID)",
    )
    p.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16", "float16"],
        help="LLM weights dtype (default: bfloat16 on CUDA, float32 on CPU)",
    )


def _add_ode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None, help="tokenizer ODE steps (default: the tokenizer's config)")
    p.add_argument(
        "--ode-temperature", type=float, default=None,
        help="scale of the tokenizer decoder's starting noise (0: deterministic; default: its config)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for sampling and decoding (same seed -> same output)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmmsn",
        description="LM-MSN inference: text -> audio, audio -> text, audio <-> tokens.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress messages (INFO level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("generate", help="generate audio from text", formatter_class=fmt,
                       description="Text -> LLM audio tokens -> tokenizer decode -> waveform file(s).")
    p.add_argument("prompt", nargs="+", help="one or more text descriptions (quote each); several run as one batch")
    p.add_argument("-o", "--output", required=True,
                   help="output .wav/.flac/.ogg; with several prompts, NAME_<i>.EXT is written for prompt i")
    p.add_argument("--seconds", type=float, default=None, help="most seconds of audio (default: the pipeline's, 10)")
    p.add_argument("--min-seconds", type=float, default=None, help="fewest seconds before the LLM may stop")
    p.add_argument("--temperature", type=float, default=None, help="LLM sampling temperature (0: greedy)")
    p.add_argument("--top-p", type=float, default=None, help="LLM nucleus sampling mass (default: off)")
    p.add_argument("--top-k", type=int, default=None, help="LLM top-k sampling (default: off)")
    p.add_argument("--codes", default=None, help="also save the generated codes to this JSON file")
    _add_ode_options(p)
    _add_model_options(p)

    p = sub.add_parser("caption", help="describe audio files in text", formatter_class=fmt,
                       description="Audio -> tokens -> LLM text. Prints one line per file: PATH<TAB>TEXT.")
    p.add_argument("audio", nargs="+", help="audio files (any format libsndfile reads)")
    p.add_argument("--prompt", default=None, help="question to ask (default: the pipeline's 'Describe the audio.')")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest answer in tokens (default: 256)")
    p.add_argument("--temperature", type=float, default=None, help="LLM temperature (default: 0, greedy)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling when temperature > 0")
    _add_model_options(p)

    p = sub.add_parser("tokenize", help="audio file -> audio token codes", formatter_class=fmt,
                       description="Encode audio with the tokenizer; print codes (JSON) or save them.")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("-o", "--output", default=None,
                   help="write {file: {codes, frame_rate, codebook_size}} as JSON here (default: print to stdout)")
    _add_model_options(p, "tokenizer export or pipeline")

    p = sub.add_parser("reconstruct", help="audio -> tokens -> audio (tokenizer round trip)", formatter_class=fmt,
                       description="Encode with the tokenizer and decode back: hear what the tokens keep.")
    p.add_argument("audio", help="input audio file")
    p.add_argument("-o", "--output", required=True, help="output .wav/.flac/.ogg")
    _add_ode_options(p)
    _add_model_options(p, "tokenizer export or pipeline")

    p = sub.add_parser("info", help="describe an exported directory", formatter_class=fmt,
                       description="Kind, format version, config and parameter counts of an export "
                       "(pipeline, audio tokenizer or audio LLM); reads config and weight headers only.")
    p.add_argument("checkpoint", nargs="?", default=None, help="exported directory (default: resolution order)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("export", help="assemble a pipeline directory from a tokenizer and an LLM export",
                       formatter_class=fmt,
                       description="Copy a tokenizer export and an audio-LLM export into one pipeline directory.")
    p.add_argument("--tokenizer", required=True, help="AudioTokenizer export directory")
    p.add_argument("--llm", required=True, help="AudioLM export directory")
    p.add_argument("-o", "--output", required=True, help="pipeline directory to write (e.g. checkpoints/lm-msn)")
    p.add_argument("--prompt-style", choices=["chat", "pretrain"], default="chat",
                   help="chat: Vicuna template (fine-tuned LLM); pretrain: bare caption/audio pairs")
    return parser


# --------------------------------------------------------------------------- commands


def _numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}_{i}{path.suffix}")


def _load_pipeline(args):
    from lmmsn.api import load

    return load(args.checkpoint, device=args.device, dtype=args.dtype)


def _load_tokenizer(args):
    from lmmsn.checkpoints import resolve_checkpoint
    from lmmsn.pipeline import best_device_and_dtype, load_tokenizer

    path = Path(args.checkpoint) if args.checkpoint and Path(args.checkpoint).exists() else resolve_checkpoint(args.checkpoint)
    device, _ = best_device_and_dtype(args.device, None)
    return load_tokenizer(path, device=device)


def cmd_generate(args) -> None:
    from lmmsn.audio import WRITABLE_FORMATS, AudioError

    out = Path(args.output)
    if out.suffix.lower() not in WRITABLE_FORMATS:
        raise AudioError(f"{out}: cannot write '{out.suffix}'; use one of {sorted(WRITABLE_FORMATS)}")
    pipe = _load_pipeline(args)
    clips = pipe.generate(
        list(args.prompt), seconds=args.seconds, min_seconds=args.min_seconds, steps=args.steps,
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        ode_temperature=args.ode_temperature, seed=args.seed, progress=True,
    )
    codes = {}
    for i, clip in enumerate(clips):
        path = clip.save(_numbered(out, i, len(clips)))
        codes[str(path)] = {"prompt": clip.prompt, "codes": clip.codes.tolist()}
        print(f"{path}\t{clip.seconds:.2f} s\t{clip.codes.numel()} tokens")
    if args.codes:
        Path(args.codes).write_text(json.dumps(codes, indent=1), encoding="utf-8")


def cmd_caption(args) -> None:
    from tqdm.auto import tqdm

    pipe = _load_pipeline(args)
    for path in tqdm(args.audio, desc="caption", unit="file", disable=len(args.audio) < 2):
        text = pipe.caption(path, args.prompt, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, seed=args.seed)
        print(f"{path}\t{text}")


def cmd_tokenize(args) -> None:
    from tqdm.auto import tqdm

    from lmmsn.audio import load_audio

    tok = _load_tokenizer(args)
    result = {}
    for path in tqdm(args.audio, desc="tokenize", unit="file", disable=len(args.audio) < 2):
        wav, _ = load_audio(path, sample_rate=tok.sample_rate, channels=tok.vae.channels)
        codes = tok.encode(wav[None], tok.sample_rate)[0].cpu()  # [T]
        result[str(path)] = {"codes": codes.tolist(), "frame_rate": tok.frame_rate, "codebook_size": tok.codebook_size}
    if args.output:
        Path(args.output).write_text(json.dumps(result), encoding="utf-8")
        print(f"wrote codes of {len(result)} file(s) to {args.output}")
    else:
        print(json.dumps(result))


def cmd_reconstruct(args) -> None:
    from lmmsn.audio import load_audio, save_audio
    from lmmsn.seeding import generator

    tok = _load_tokenizer(args)
    wav, _ = load_audio(args.audio, sample_rate=tok.sample_rate, channels=tok.vae.channels)
    codes = tok.encode(wav[None], tok.sample_rate)  # [1, T]
    gen = generator(args.seed, next(tok.parameters()).device)
    out = tok.decode(codes, steps=args.steps, temperature=args.ode_temperature, generator=gen, length=wav.shape[-1])
    path = save_audio(args.output, out[0], tok.sample_rate)
    print(f"{path}\t{codes.shape[1]} tokens\t{tok.bitrate:.0f} bit/s")


def describe_export(path: Path) -> dict:
    """Kind, version, config and parameter counts of an exported directory (no model is built)."""
    import yaml

    # The names of lmmsn.export, repeated so that `lmmsn info` does not import torch.
    CONFIG_FILE, VERSION_FILE, WEIGHTS_FILE = "config.yaml", "format_version", "model.safetensors"
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        from lmmsn.export import ExportError

        raise ExportError(f"{path}: no {CONFIG_FILE}; not an exported LM-MSN directory")
    document = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    version = (path / VERSION_FILE).read_text(encoding="utf-8").strip() if (path / VERSION_FILE).is_file() else None
    info = {"path": str(path), "kind": document.get("kind"), "format_version": version, "config": document}
    weights = [path / WEIGHTS_FILE, path / "adapter" / "adapter_model.safetensors"]
    counts = {}
    for w in weights:
        if w.is_file():
            from safetensors import safe_open

            with safe_open(str(w), framework="np") as f:
                n = 0
                for key in f.keys():
                    shape = f.get_slice(key).get_shape()
                    size = 1
                    for s in shape:
                        size *= s
                    n += size
            counts[str(w.relative_to(path))] = n
    info["parameters"] = counts
    if document.get("kind") == "pipeline":
        info["components"] = {
            name: describe_export(path / document.get(name, name)) for name in ("tokenizer", "llm")
            if (path / document.get(name, name) / CONFIG_FILE).is_file()
        }
    return info


def _print_info(info: dict, indent: str = "") -> None:
    print(f"{indent}{info['path']}: kind {info['kind']}, format_version {info['format_version']}")
    for name, n in info["parameters"].items():
        print(f"{indent}  {name}: {n:,} parameters")
    config = {k: v for k, v in info["config"].items() if k != "kind"}
    for key, value in config.items():
        print(f"{indent}  {key}: {json.dumps(value)}")
    for name, sub in info.get("components", {}).items():
        print(f"{indent}  [{name}]")
        _print_info(sub, indent + "    ")


def cmd_info(args) -> None:
    if args.checkpoint and Path(args.checkpoint).is_dir():
        path = Path(args.checkpoint)
    else:
        from lmmsn.checkpoints import resolve_checkpoint

        path = resolve_checkpoint(args.checkpoint)
    info = describe_export(path)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        _print_info(info)


def cmd_export(args) -> None:
    from lmmsn.llm.model import AudioLM
    from lmmsn.pipeline import Pipeline, PipelineConfig
    from lmmsn.tokenizer.model import AudioTokenizer

    tok = AudioTokenizer.from_pretrained(args.tokenizer)
    lm = AudioLM.from_pretrained(args.llm)
    out = Pipeline(tok, lm, PipelineConfig(prompt_style=args.prompt_style)).save_pretrained(args.output)
    print(f"wrote pipeline to {out}")


COMMANDS = {
    "generate": cmd_generate,
    "caption": cmd_caption,
    "tokenize": cmd_tokenize,
    "reconstruct": cmd_reconstruct,
    "info": cmd_info,
    "export": cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lmmsn` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except Exception as exc:
        # Matched by name so `lmmsn info` need not import torch just to name these classes.
        if not USER_ERRORS & {cls.__name__ for cls in type(exc).__mro__}:
            raise
        print(f"lmmsn {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
