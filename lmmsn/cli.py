"""The `lmmsn` command: generate, caption, tokenize, reconstruct, info, export.

    lmmsn generate "dog barking" -o dog.wav --seconds 5 --seed 0
    lmmsn caption clip.wav
    lmmsn tokenize clip.wav -o clip.codes.json
    lmmsn reconstruct clip.wav -o out.wav
    lmmsn info checkpoints/lm-msn
    lmmsn export --audio-tokenizer runs/tok/export --llm runs/llm/export -o checkpoints/lm-msn

Every command takes `--checkpoint` (default: the resolution order of
`lmmsn.checkpoints.resolve_checkpoint`), `--device` and `--dtype`. A user error (a bad
argument, a missing or broken checkpoint, unusable audio, an unwritable output) prints
one line naming the argument or file and exits 2, never a traceback; only "no checkpoint
found" adds the list of places searched and how to get a model.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
USER_ERRORS = {"CheckpointNotFoundError", "AudioError", "ExportError", "ConfigError", "UsageError"}
"Errors about the user's input: one message and exit status 2 instead of a traceback."
MULTILINE_ERRORS = {"CheckpointNotFoundError"}
"User errors printed whole (the places searched, how to get a model); every other one is one line."
MAX_SEED = 2**62
"Seeds are 0 <= seed < MAX_SEED (clip i of a batch is seeded with seed + i; torch takes 64 bits)."


class UsageError(ValueError):
    """A command-line argument that cannot work (checked before any model is loaded)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the usage block is what --help prints)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _number(kind: type, low: float, *, low_open: bool = False, high: float | None = None, what: str = ""):
    """argparse `type=` for a finite int/float in [low, high] ((low, high] when `low_open`)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_FLOAT = _number(float, 0.0, low_open=True, what="a finite number > 0")
NON_NEGATIVE_FLOAT = _number(float, 0.0, what="a finite number >= 0")
PROBABILITY = _number(float, 0.0, low_open=True, high=1.0, what="a number in (0, 1]")
POSITIVE_INT = _number(int, 1, what="an integer >= 1")
SEED = _number(int, 0, high=MAX_SEED - 1, what="an integer in [0, 2**62)")


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
    p.add_argument("--steps", type=POSITIVE_INT, default=None, help="audio tokenizer ODE steps, >= 1 (default: its config)")
    p.add_argument(
        "--ode-temperature", type=NON_NEGATIVE_FLOAT, default=None,
        help="scale of the audio tokenizer decoder's starting noise (0: deterministic; default: its config)",
    )
    p.add_argument("--seed", type=SEED, default=None, help="seed for sampling and decoding (same seed -> same output)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lmmsn",
        description="LM-MSN inference: text -> audio, audio -> text, audio <-> tokens.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress messages (INFO level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("generate", help="generate audio from text", formatter_class=fmt,
                       description="Text -> LLM audio tokens -> audio tokenizer decode -> waveform file(s).")
    p.add_argument("prompt", nargs="+", help="one or more text descriptions (quote each); several run as one batch")
    p.add_argument("-o", "--output", required=True,
                   help="output .wav/.flac/.ogg; with several prompts, NAME_<i>.EXT is written for prompt i")
    p.add_argument("--seconds", type=POSITIVE_FLOAT, default=None, help="most seconds of audio (default: the pipeline's, 10)")
    p.add_argument("--min-seconds", type=NON_NEGATIVE_FLOAT, default=None,
                   help="fewest seconds before the LLM may stop (at most --seconds)")
    p.add_argument("--temperature", type=NON_NEGATIVE_FLOAT, default=None, help="LLM sampling temperature (0: greedy)")
    p.add_argument("--top-p", type=PROBABILITY, default=None, help="LLM nucleus sampling mass in (0, 1] (default: off)")
    p.add_argument("--top-k", type=POSITIVE_INT, default=None, help="LLM top-k sampling, >= 1 (default: off)")
    p.add_argument("--guidance-scale", type=NON_NEGATIVE_FLOAT, default=1.0,
                   help="classifier-free guidance scale on the audio span (1: off; the unconditional prompt "
                   "is the same prompt with an empty caption)")
    p.add_argument("--codes", default=None, help="also save the generated codes to this JSON file")
    _add_ode_options(p)
    _add_model_options(p)

    p = sub.add_parser("caption", help="describe audio files in text", formatter_class=fmt,
                       description="Audio -> tokens -> LLM text. Prints one line per file: PATH<TAB>TEXT.")
    p.add_argument("audio", nargs="+", help="audio files (any format libsndfile reads)")
    p.add_argument("--prompt", default=None, help="question to ask (default: the pipeline's 'Describe the audio.')")
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=None, help="longest answer in tokens, >= 1 (default: 256)")
    p.add_argument("--temperature", type=NON_NEGATIVE_FLOAT, default=None, help="LLM temperature (default: 0, greedy)")
    p.add_argument("--seed", type=SEED, default=None, help="seed for sampling when temperature > 0")
    _add_model_options(p)

    p = sub.add_parser("tokenize", help="audio file -> audio token codes", formatter_class=fmt,
                       description="Encode audio with the audio tokenizer; print codes (JSON) or save them.")
    p.add_argument("audio", nargs="+", help="audio files")
    p.add_argument("-o", "--output", default=None,
                   help="write {file: {codes, frame_rate, codebook_size}} as JSON here (default: print to stdout)")
    _add_model_options(p, "audio tokenizer export or pipeline")

    p = sub.add_parser("reconstruct", help="audio -> tokens -> audio (audio tokenizer round trip)", formatter_class=fmt,
                       description="Encode with the audio tokenizer and decode back: hear what the tokens keep.")
    p.add_argument("audio", help="input audio file")
    p.add_argument("-o", "--output", required=True, help="output .wav/.flac/.ogg")
    _add_ode_options(p)
    _add_model_options(p, "audio tokenizer export or pipeline")

    p = sub.add_parser("info", help="describe an exported directory", formatter_class=fmt,
                       description="Kind, format version, config and parameter counts of an export "
                       "(pipeline, audio tokenizer or audio LLM); reads config and weight headers only.")
    p.add_argument("checkpoint", nargs="?", default=None, help="exported directory (default: resolution order)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("export", help="assemble a pipeline directory from an audio tokenizer and an LLM export",
                       formatter_class=fmt,
                       description="Copy an audio tokenizer export and an audio-LLM export into one pipeline directory.")
    p.add_argument("--audio-tokenizer", "--tokenizer", dest="audio_tokenizer", required=True,
                   help="AudioTokenizer export directory (--tokenizer: the name before the audio/text rename)")
    p.add_argument("--llm", required=True, help="AudioLM export directory")
    p.add_argument("-o", "--output", required=True, help="pipeline directory to write (e.g. checkpoints/lm-msn)")
    p.add_argument("--prompt-style", choices=["chat", "pretrain"], default="chat",
                   help="chat: Vicuna template (fine-tuned LLM); pretrain: bare caption/audio pairs")
    return parser


# --------------------------------------------------------------------------- commands


def _numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}_{i}{path.suffix}")


def check_device(name: str | None) -> None:
    """Refuse a --device that torch cannot parse or this machine does not have (UsageError)."""
    if name is None:
        return
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"--device {name!r}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise UsageError(f"--device {name!r}: no CUDA device is visible on this machine")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {name!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {name!r}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r}: use cpu, cuda, cuda:N or mps")


def check_output_file(path: str | Path, option: str) -> Path:
    """An output file path that can be written: not a directory, no file where a parent folder must go."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
            break
    return path


def _load_pipeline(args):
    from lmmsn.api import load

    check_device(args.device)
    return load(args.checkpoint, device=args.device, dtype=args.dtype)


def _load_audio_tokenizer(args):
    from lmmsn.checkpoints import resolve_checkpoint
    from lmmsn.pipeline import best_device_and_dtype, load_audio_tokenizer

    check_device(args.device)
    path = Path(args.checkpoint) if args.checkpoint and Path(args.checkpoint).exists() else resolve_checkpoint(args.checkpoint)
    device, _ = best_device_and_dtype(args.device, None)
    return load_audio_tokenizer(path, device=device)


def cmd_generate(args) -> None:
    from lmmsn.audio import WRITABLE_FORMATS, AudioError

    out = check_output_file(args.output, "-o")
    if out.suffix.lower() not in WRITABLE_FORMATS:
        raise AudioError(f"{out}: cannot write '{out.suffix}'; use one of {sorted(WRITABLE_FORMATS)}")
    if args.codes:
        check_output_file(args.codes, "--codes")
    for i, prompt in enumerate(args.prompt):
        if not prompt.strip():
            raise UsageError(f"prompt {i + 1} is empty; describe the audio to generate")
    if args.seconds is not None and args.min_seconds is not None and args.min_seconds > args.seconds:
        raise UsageError(f"--min-seconds {args.min_seconds} is more than --seconds {args.seconds}")
    pipe = _load_pipeline(args)
    if args.min_seconds is not None and args.min_seconds > (args.seconds or pipe.config.seconds):
        raise UsageError(f"--min-seconds {args.min_seconds} is more than the pipeline's {pipe.config.seconds} seconds; "
                         "pass --seconds too")
    clips = pipe.generate(
        list(args.prompt), seconds=args.seconds, min_seconds=args.min_seconds, steps=args.steps,
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        ode_temperature=args.ode_temperature, seed=args.seed, progress=True, guidance_scale=args.guidance_scale,
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

    if args.output:
        check_output_file(args.output, "-o")
    tok = _load_audio_tokenizer(args)
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
    from lmmsn.audio import WRITABLE_FORMATS, AudioError, load_audio, save_audio
    from lmmsn.seeding import generator

    out_path = check_output_file(args.output, "-o")
    if out_path.suffix.lower() not in WRITABLE_FORMATS:
        raise AudioError(f"{out_path}: cannot write '{out_path.suffix}'; use one of {sorted(WRITABLE_FORMATS)}")
    tok = _load_audio_tokenizer(args)
    wav, _ = load_audio(args.audio, sample_rate=tok.sample_rate, channels=tok.vae.channels)
    codes = tok.encode(wav[None], tok.sample_rate)  # [1, T]
    gen = generator(args.seed, next(tok.parameters()).device)
    out = tok.decode(codes, steps=args.steps, temperature=args.ode_temperature, generator=gen, length=wav.shape[-1])
    path = save_audio(args.output, out[0], tok.sample_rate)
    print(f"{path}\t{codes.shape[1]} tokens\t{tok.bitrate:.0f} bit/s")


def describe_export(path: Path) -> dict:
    """Kind, version, config and parameter counts of an exported directory (no model is built)."""
    from lmmsn.export import CONFIG_FILE, VERSION_FILE, WEIGHTS_FILE
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        from lmmsn.export import ExportError

        raise ExportError(f"{path}: no {CONFIG_FILE}; not an exported LM-MSN directory")
    from lmmsn.export import read_text, read_yaml_document

    document = read_yaml_document(config_path)
    version = read_text(path / VERSION_FILE, VERSION_FILE).strip() if (path / VERSION_FILE).is_file() else None
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
        from lmmsn.checkpoints import pipeline_components

        info["components"] = {name: describe_export(folder) for name, folder in
                              pipeline_components(path, dict(document)).items() if (folder / CONFIG_FILE).is_file()}
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
    from lmmsn.checkpoints import check_export

    check_export(path)  # a broken export is one line naming the file, exit 2
    info = describe_export(path)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        _print_info(info)


def cmd_export(args) -> None:
    from lmmsn.llm.model import AudioLM
    from lmmsn.pipeline import Pipeline, PipelineConfig, load_audio_tokenizer

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: is a file, expected a directory to write the pipeline into")
    tok = load_audio_tokenizer(args.audio_tokenizer)
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


def _user_message(exc: BaseException) -> str | None:
    """The message of a user error (None: a bug, let it raise)."""
    names = {cls.__name__ for cls in type(exc).__mro__}  # by name: `lmmsn info` need not import torch
    if USER_ERRORS & names:
        return str(exc) if MULTILINE_ERRORS & names else " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None:  # a file the user named: unwritable, a folder, ...
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lmmsn` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except Exception as exc:
        message = _user_message(exc)
        if message is None:
            raise
        print(f"lmmsn {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
