"""Train the CPU demo model end to end: frontend shards -> tokenizer -> codes -> stage 0 -> pretrain -> finetune -> export.

    bash scripts/train_demo.sh                       # the open sound set (built by data_prep.demo_data)
    bash scripts/train_demo.sh --manifest data/corpus-split/train.jsonl --audio-root data/corpus
    bash scripts/train_demo.sh --tiny --work /tmp/demo --checkpoint /tmp/demo/lm-msn   # seconds, tiny models

Stages, each a public tool with its own progress bar, in order:

1. `data`: the training side's frontend latents (`data_prep.make_shards --adapter manifest`,
   mel-hifigan, 10 s segments, at most 6 per file). With `--manifest` the given training
   manifest is sharded; without it `data_prep.demo_data` builds (or finds) the open sound set,
   splits off the held-out sources and clips, and shards the training side.
2. `tokenizer`: `recipes/train_tokenizer.py --config recipes/configs/tokenizer/demo.yaml`
   on those shards (or `--tokenizer DIR`: an existing export, no training).
3. `codes`: `data_prep.tokenize_shards` adds the tokenizer's codes.
4. `conversations`: `data_prep.conversations` writes the instruction dialogues (speech
   capped at `--max-speech` segments, so a 56% speech corpus does not dominate the LLM's steps).
5. `text_base`: `recipes/train_text_base.py --config recipes/configs/llm/demo_base.yaml`.
6. `pretrain`: `recipes/pretrain_llm.py --config recipes/configs/llm/demo_pretrain.yaml`.
7. `finetune`: `recipes/finetune_llm.py --config recipes/configs/llm/demo_finetune.yaml`.
8. `export`: `lmmsn export --audio-tokenizer ... --llm <finetune>/export/merged -o checkpoints/lm-msn`
   (the merged LLM: the pipeline directory needs no other file), where `lmmsn.load()` finds it.

Everything goes under `--work` (default runs/demo). A rerun skips every stage whose output
is complete and reruns the rest (an interrupted training stage resumes from its last
checkpoint); after a stage runs, every later stage is redone from scratch.
`<work>/timings.json` records each stage's wall time. `--eval` then runs `eval.audio_lm` on
the held-out manifest (`--heldout`, or the one `data_prep.demo_data` wrote).
"""

from __future__ import annotations

import argparse
import json
import logging
import runpy
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "tokenizer", "codes", "conversations", "text_base", "pretrain", "finetune", "export")

TINY = {  # --tiny: every stage at test size (a fixture-sized manifest runs in well under a minute)
    "vae": "tiny", "segment_s": 0.25, "max_segments": 2, "num_workers": 0, "tokenizer_config": "recipes/configs/tokenizer/tiny.yaml",
    "tokenizer": ["trainer.max_steps=2", "trainer.val_every_n_steps=2", "trainer.checkpoint_every_n_steps=2",
                  "trainer.progress_bar=false"],
    "text_base": ["tokenizer.vocab_size=300", "model.hidden_size=32", "model.num_hidden_layers=1", "model.intermediate_size=64",
                  "model.num_attention_heads=2", "model.num_key_value_heads=2", "corpus.batch_size=2", "trainer.max_steps=2",
                  "trainer.val_every_n_steps=2", "trainer.checkpoint_every_n_steps=2", "trainer.progress_bar=false"],
    "llm": ["model.lora.r=4", "model.lora.alpha=8", "data.batch.batch_size=2", "data.num_workers=0", "data.shuffle_buffer=4",
            "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2", "optim.warmup_steps=1", "trainer.progress_bar=false"],
}


@dataclass
class Chain:
    """Where everything goes and how each stage is called (the command line's options)."""

    work: Path
    checkpoint: Path
    manifest: Path | None = None
    audio_root: Path | None = None
    heldout: Path | None = None
    open_audio_root: Path = Path("data/open-audio")
    tokenizer: Path | None = None
    tokenizer_config: str = "recipes/configs/tokenizer/demo.yaml"
    base_config: str = "recipes/configs/llm/demo_base.yaml"
    pretrain_config: str = "recipes/configs/llm/demo_pretrain.yaml"
    finetune_config: str = "recipes/configs/llm/demo_finetune.yaml"
    vae: str = "mel-hifigan"
    segment_s: float = 10.0
    max_segments: int = 6
    num_workers: int = 2
    max_speech: int | None = 800
    overrides: dict[str, list[str]] = field(default_factory=dict)
    in_process: bool = False

    # ---- paths ---------------------------------------------------------------------------------

    @property
    def latents(self) -> Path:
        return self.work / "data" / "latents"

    @property
    def codes(self) -> Path:
        return self.work / "data" / "codes"

    @property
    def conversations(self) -> Path:
        return self.work / "data" / "conversations"

    @property
    def tokenizer_export(self) -> Path:
        return self.tokenizer if self.tokenizer is not None else self.work / "tokenizer" / "export"

    def done(self, stage: str) -> bool:
        """Whether the stage's output is complete."""
        markers = {
            "data": self.work / "data" / "data.json",
            "tokenizer": self.tokenizer_export / "model.safetensors",
            "codes": self.codes / "index.json",
            "conversations": self.conversations / "index.json",
            "text_base": self.work / "text_base" / "export" / "config.json",
            "pretrain": self.work / "pretrain" / "export" / "config.yaml",
            "finetune": self.work / "finetune" / "export" / "merged" / "config.json",
            "export": self.checkpoint / "config.yaml",
        }
        return markers[stage].exists()

    def outputs(self, stage: str) -> list[Path]:
        """What a stage writes (removed before it is redone)."""
        return {"data": [self.latents, self.work / "data" / "data.json"],
                "tokenizer": [] if self.tokenizer is not None else [self.work / "tokenizer"],
                "codes": [self.codes], "conversations": [self.conversations],
                "text_base": [self.work / "text_base"], "pretrain": [self.work / "pretrain"],
                "finetune": [self.work / "finetune"], "export": [self.checkpoint]}[stage]

    # ---- running tools ---------------------------------------------------------------------------

    def call(self, target: str, argv: list[str]) -> None:
        """Run a module (`-m name`) or a script (`path.py`) with argv: a subprocess, or in this process."""
        if not self.in_process:
            command = [sys.executable, *(["-m", target] if not target.endswith(".py") else [str(ROOT / target)]), *argv]
            logging.info("running %s", " ".join(command))
            subprocess.run(command, check=True, cwd=ROOT)
            return
        old = sys.argv
        sys.argv = [target, *argv]
        try:
            if target.endswith(".py"):
                runpy.run_path(str(ROOT / target), run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=False)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"{target} exited with {exc.code}") from exc
        finally:
            sys.argv = old

    # ---- stages ----------------------------------------------------------------------------------

    def stage_data(self) -> None:
        info: dict[str, str | None]
        if self.manifest is not None:
            if self.audio_root is None:
                raise SystemExit("--manifest needs --audio-root (the folder its paths are relative to)")
            self.call("data_prep.make_shards", [
                "--adapter", "manifest", "--root", str(self.audio_root), "--opt", f"manifest={self.manifest}",
                "--out", str(self.latents), "--vae", self.vae, "--segment-s", str(self.segment_s), "--long", "segments",
                "--max-segments", str(self.max_segments), "--num-workers", str(self.num_workers), "--threads", "1",
                "--records-per-shard", "500", *(["--min-tail-s", "0.05"] if self.segment_s < 1 else [])])
            info = {"train_manifest": str(self.manifest), "audio_root": str(self.audio_root),
                    "heldout_manifest": str(self.heldout) if self.heldout else None, "train_shards": str(self.latents)}
        else:
            from data_prep.demo_data import prepare_demo_data

            data = prepare_demo_data(self.open_audio_root, vae=self.vae, segment_s=self.segment_s,
                                     max_segments=self.max_segments, num_workers=self.num_workers)
            info = {"train_manifest": str(Path(data.heldout_manifest).with_name("train.jsonl")),
                    "audio_root": data.audio_root, "heldout_manifest": data.heldout_manifest,
                    "train_shards": data.train_shards}
        (self.work / "data").mkdir(parents=True, exist_ok=True)
        (self.work / "data" / "data.json").write_text(json.dumps(info, indent=2) + "\n")

    def data_info(self) -> dict[str, str | None]:
        return json.loads((self.work / "data" / "data.json").read_text())

    def stage_tokenizer(self) -> None:
        if self.tokenizer is not None:
            raise SystemExit(f"--tokenizer {self.tokenizer}: no model.safetensors there")
        self.call("recipes/train_tokenizer.py", [
            "--config", self.tokenizer_config, f"data.train_shards={self.data_info()['train_shards']}", "open_audio=null",
            "evaluate=null", f"output_dir={self.work / 'tokenizer'}", *self.overrides.get("tokenizer", [])])

    def stage_codes(self) -> None:
        self.call("data_prep.tokenize_shards", ["--shards", str(self.data_info()["train_shards"]),
                                                "--tokenizer", str(self.tokenizer_export), "--out", str(self.codes)])

    def stage_conversations(self) -> None:
        caps = ["--max-per-category", f"speech={self.max_speech}"] if self.max_speech is not None else []
        self.call("data_prep.conversations", ["--shards", str(self.codes), "--out", str(self.conversations), *caps])

    def stage_text_base(self) -> None:
        self.call("recipes/train_text_base.py", [
            "--config", self.base_config, f"corpus.manifests=[{self.data_info()['train_manifest']}]",
            f"output_dir={self.work / 'text_base'}", *self.overrides.get("text_base", [])])

    def codebook_size(self) -> int:
        """The audio tokenizer's codebook size: the LLM's audio vocabulary must match it."""
        from lmmsn.tokenizer.model import read_tokenizer_config

        return read_tokenizer_config(self.tokenizer_export).quantizer.codebook_size

    def _llm(self, stage: str, config: str, extra: list[str]) -> None:
        self.call(f"recipes/{'pretrain' if stage == 'pretrain' else 'finetune'}_llm.py", [
            "--config", config, f"model.base_model={self.work / 'text_base' / 'export'}",
            f"model.codebook_size={self.codebook_size()}",
            f"data.train_shards={self.conversations}", f"output_dir={self.work / stage}", *extra,
            *self.overrides.get("llm", []), *self.overrides.get(stage, [])])

    def stage_pretrain(self) -> None:
        self._llm("pretrain", self.pretrain_config, [])

    def stage_finetune(self) -> None:
        self._llm("finetune", self.finetune_config, [f"model.init_from={self.work / 'pretrain' / 'export'}"])

    def stage_export(self) -> None:
        self.call("lmmsn.cli", ["export", "--audio-tokenizer", str(self.tokenizer_export),
                                "--llm", str(self.work / "finetune" / "export" / "merged"), "-o", str(self.checkpoint)])

    def run(self, stages: Sequence[str] = STAGES, force: bool = False) -> dict[str, float]:
        """Run the stages that are not done (module docstring); returns {stage: seconds} of those run."""
        self.work.mkdir(parents=True, exist_ok=True)
        timings_path = self.work / "timings.json"
        timings: dict[str, float] = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        ran: dict[str, float] = {}
        redo = force
        for stage in stages:
            if not redo and self.done(stage):
                logging.info("stage %s: done already (skipped)", stage)
                continue
            if redo:  # an earlier stage changed: nothing of this one may be resumed
                for path in self.outputs(stage):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
            logging.info("stage %s: running", stage)
            start = time.perf_counter()
            step: Callable[[], None] = getattr(self, f"stage_{stage}")
            step()
            ran[stage] = timings[stage] = round(time.perf_counter() - start, 3)
            timings_path.write_text(json.dumps(timings, indent=2) + "\n")
            logging.info("stage %s: %.1f s", stage, ran[stage])
            redo = True
        return ran

    def evaluate(self, out: Path, extra: Sequence[str] = ()) -> None:
        """`eval.audio_lm` on the held-out manifest."""
        info = self.data_info()
        heldout = info.get("heldout_manifest")
        if not heldout:
            raise SystemExit("--eval needs --heldout (the held-out manifest) when --manifest is given")
        self.call("eval.audio_lm", ["--pipeline", str(self.checkpoint), "--heldout", heldout,
                                    "--train", str(info["train_manifest"]), "--audio-root", str(info["audio_root"]),
                                    "--out", str(out), "--judge-cache", str(self.work / "judge"), *extra])


def parse_args(argv: Sequence[str] | None = None) -> tuple[Chain, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="bash scripts/train_demo.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/demo", help="folder of every stage's output")
    p.add_argument("--checkpoint", default="checkpoints/lm-msn", help="the exported pipeline directory")
    p.add_argument("--manifest", default=None, help="training manifest (JSON lines); default: build the open sound set")
    p.add_argument("--audio-root", default=None, help="folder the --manifest paths are relative to")
    p.add_argument("--heldout", default=None, help="held-out manifest, for --eval")
    p.add_argument("--open-audio-root", default="data/open-audio", help="where data_prep.demo_data builds the sound set")
    p.add_argument("--tokenizer", default=None, help="use this tokenizer export instead of training one")
    p.add_argument("--tokenizer-config", default=None, help="default recipes/configs/tokenizer/demo.yaml")
    p.add_argument("--max-speech", type=int, default=800, help="speech segments kept for the LLM stages (-1: all)")
    p.add_argument("--set", action="append", default=[], metavar="STAGE:KEY=VALUE",
                   help="config override for one stage (tokenizer, text_base, pretrain, finetune, llm = both LLM stages)")
    p.add_argument("--tiny", action="store_true", help="every stage at test size (tiny VAE, 2 steps each)")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in order")
    p.add_argument("--eval", action="store_true", help="run eval.audio_lm after the export")
    p.add_argument("--eval-out", default=None, help="eval output folder (default <work>/eval)")
    p.add_argument("--in-process", action="store_true", help="run the tools in this process (tests)")
    args = p.parse_args(argv)
    overrides: dict[str, list[str]] = {}
    for item in args.set:
        stage, sep, value = item.partition(":")
        if not sep or stage not in ("tokenizer", "text_base", "pretrain", "finetune", "llm") or "=" not in value:
            p.error(f"--set expects STAGE:KEY=VALUE with STAGE in tokenizer, text_base, pretrain, finetune, llm; got {item!r}")
        overrides.setdefault(stage, []).append(value)
    def path(value: str | None) -> Path | None:  # the tools run in the repository root: paths made absolute here
        return None if value is None else Path(value).expanduser().resolve()

    chain = Chain(work=path(args.work), checkpoint=path(args.checkpoint), manifest=path(args.manifest),
                  audio_root=path(args.audio_root), heldout=path(args.heldout), open_audio_root=path(args.open_audio_root),
                  tokenizer=path(args.tokenizer), max_speech=None if args.max_speech < 0 else args.max_speech,
                  in_process=args.in_process)
    if args.tiny:
        chain.vae, chain.segment_s, chain.max_segments = TINY["vae"], TINY["segment_s"], TINY["max_segments"]
        chain.num_workers, chain.tokenizer_config = TINY["num_workers"], TINY["tokenizer_config"]
        for stage in ("tokenizer", "text_base", "llm"):
            overrides[stage] = [*TINY[stage], *overrides.get(stage, [])]
    if args.tokenizer_config:
        chain.tokenizer_config = args.tokenizer_config
    chain.overrides = overrides
    for name in ("tokenizer_config", "base_config", "pretrain_config", "finetune_config"):
        setattr(chain, name, str(ROOT / getattr(chain, name)))  # absolute stays absolute
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stages {unknown}; known: {list(STAGES)}")
    return chain, args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train_demo %(levelname)s %(message)s")
    chain, args = parse_args(argv)
    start = time.perf_counter()
    ran = chain.run([s for s in STAGES if s in args.stages.split(",")], force=args.force)
    total = time.perf_counter() - start
    print(f"demo model at {chain.checkpoint}; stages run: {ran or 'none (all done)'}; {total / 60:.1f} min", flush=True)
    if args.eval:
        chain.evaluate(Path(args.eval_out) if args.eval_out else chain.work / "eval")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # data_prep / recipes / eval live in the repository, not in the package
    sys.exit(main())
