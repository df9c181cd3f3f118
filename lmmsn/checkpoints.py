"""Where a pipeline checkpoint is found: a path, a name under `checkpoints/`, the environment, a hub id.

Documented for users in checkpoints/README.md; `lmmsn.load()` and every `lmmsn` command use
`resolve_checkpoint`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lmmsn.export import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ExportError,
    read_exported_config,
    read_text,
    read_yaml_document,
    safetensors_shapes,
)

logger = logging.getLogger(__name__)

PIPELINE_KIND = "pipeline"
"The `kind` in a pipeline directory's config.yaml."
AUDIO_TOKENIZER_KIND = "audio_tokenizer"
"The `kind` of an AudioTokenizer export (lmmsn.tokenizer.model.EXPORT_KIND; repeated: the core imports no family)."
AUDIO_LM_KIND = "audio_lm"
"The `kind` of an AudioLM export (lmmsn.llm.model.KIND)."
DEFAULT_NAME = "lm-msn"
"Folder name looked up under `checkpoints/` when nothing else is given."
AUDIO_TOKENIZER_SUBDIR = "audio_tokenizer"
"Folder of the audio tokenizer export inside a pipeline directory."
LLM_SUBDIR = "llm"
"Folder of the audio LM export inside a pipeline directory."
LEGACY_AUDIO_TOKENIZER_KEY = "tokenizer"
"What pipelines exported before the audio/text tokenizer rename call their audio tokenizer (key and folder)."
ENV_CHECKPOINT = "LMMSN_CHECKPOINT"
ENV_HUB_ID = "LMMSN_HUB_ID"
REPO_ROOT = Path(__file__).resolve().parents[1]

HOW_TO_GET = """\
How to get a model:
  - train the CPU demo model (every stage, from open audio, into checkpoints/{name}; README "Train the demo model"):
      bash scripts/train_demo.sh
  - or train one: recipes/train_tokenizer.py (audio tokenizer), then recipes/pretrain_llm.py and
    recipes/finetune_llm.py (audio LLM); each exports a directory at the end;
  - assemble the two exports into a pipeline directory:
      lmmsn export --audio-tokenizer <tokenizer export> --llm <llm export> -o checkpoints/{name}
  - then pass that directory to lmmsn.load(...) / --checkpoint, set ${env}=<dir>, or keep it at
    checkpoints/{name}; on an online machine a hub id (lmmsn.load("owner/repo") or ${hub}) is
    downloaded with huggingface_hub."""


class CheckpointNotFoundError(FileNotFoundError):
    """No pipeline directory was found; the message lists every place searched."""


def checkpoint_roots() -> list[Path]:
    """`checkpoints/` folders searched for named checkpoints: cwd's, then the source tree's."""
    roots = [Path.cwd() / "checkpoints"]
    if (REPO_ROOT / "setup.py").is_file():  # a source / editable install
        roots.append(REPO_ROOT / "checkpoints")
    unique: list[Path] = []
    for r in roots:
        if r.resolve() not in [u.resolve() for u in unique]:
            unique.append(r)
    return unique


def pipeline_components(directory: Path, document: dict[str, Any] | None = None) -> dict[str, Path]:
    """{"audio_tokenizer": dir, "llm": dir} of a pipeline directory, from its config.yaml.

    Pipelines exported before the rename name the audio tokenizer `tokenizer` (key and folder);
    they still load. The component keys are popped from `document` when it is given.
    """
    document = read_exported_config(directory, PIPELINE_KIND) if document is None else document
    legacy = document.pop(LEGACY_AUDIO_TOKENIZER_KEY, None)
    audio = document.pop("audio_tokenizer", None) or legacy or AUDIO_TOKENIZER_SUBDIR
    return {"audio_tokenizer": Path(directory) / audio, "llm": Path(directory) / document.pop("llm", LLM_SUBDIR)}


# ---- validation of exported directories, one function per kind: every file the loader reads, before it reads
# them, so that a broken export fails with one message naming the file instead of a library's traceback.


def _json_file(path: Path, what: str) -> Any:
    import json

    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc


def _looks_local(name: str) -> bool:
    """A base_model that names a local folder (a hub id is `owner/name`, relative, one slash)."""
    return Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name


def check_audio_tokenizer_export(directory: str | Path) -> dict[str, Any]:
    """An AudioTokenizer export: format_version, config.yaml of kind audio_tokenizer, readable weights.

    Returns its config (without `kind`). Schema and shapes are checked when the model is built from it.
    """
    directory = Path(directory)
    config = read_exported_config(directory, AUDIO_TOKENIZER_KIND)
    safetensors_shapes(directory / WEIGHTS_FILE)
    return config


def check_audio_lm_export(directory: str | Path, base_model: str | Path | None = None) -> dict[str, Any]:
    """An AudioLM export (or its merged/ folder): every file `AudioLM.from_pretrained` reads.

    Args:
        directory: the export.
        base_model: the base model that will be loaded instead of config.yaml's (None: config.yaml's).

    Returns:
        Its config (without `kind`); {} for a merged folder.
    """
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file() and (directory / "config.json").is_file():  # merged/: a plain HF model
        _json_file(directory / "config.json", "HF model config")
        _json_file(directory / "audio_vocabulary.json", "audio vocabulary")
        return {}
    config = read_exported_config(directory, AUDIO_LM_KIND)
    for key, kind in (("base_model", str), ("vocab_size", int), ("codebook_size", int)):
        if not isinstance(config.get(key), kind) or isinstance(config.get(key), bool):
            raise ExportError(f"{directory / CONFIG_FILE}: '{key}' must be {kind.__name__}, got {config.get(key)!r}")
    adapter = directory / "adapter"
    if not isinstance(_json_file(adapter / "adapter_config.json", "peft adapter config"), dict):
        raise ExportError(f"{adapter / 'adapter_config.json'}: expected a JSON object")
    safetensors_shapes(adapter / "adapter_model.safetensors")
    text = next((directory / d for d in ("text_tokenizer", "tokenizer") if (directory / d).is_dir()), None)
    if text is None or not any((text / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise ExportError(f"{directory / 'text_tokenizer'}: missing or holds no text tokenizer files")
    if not isinstance(_json_file(directory / "audio_vocabulary.json", "audio vocabulary"), dict):
        raise ExportError(f"{directory / 'audio_vocabulary.json'}: expected a JSON object")
    base = str(base_model) if base_model is not None else config["base_model"]
    if _looks_local(base) and not Path(base).expanduser().exists():  # a folder, or a file (a .gguf base)
        where = "the given base_model" if base_model is not None else f"{directory / CONFIG_FILE}: base_model"
        raise ExportError(f"{where} {base!r}: no such directory or file (the base LLM's weights are referenced, not copied; "
                          "pass base_model= / --base-model where they are)")
    return config


def check_pipeline_export(directory: str | Path, base_model: str | Path | None = None) -> dict[str, Any]:
    """A pipeline directory and both its components (`check_audio_tokenizer_export`, `check_audio_lm_export`).

    Components must be folders inside the pipeline directory. Returns the pipeline config (without
    `kind` and the component keys).
    """
    directory = Path(directory)
    document = read_exported_config(directory, PIPELINE_KIND)
    parts = pipeline_components(directory, document)
    for name, folder in parts.items():
        if folder.resolve().parent != directory.resolve():
            raise ExportError(f"{directory / CONFIG_FILE}: component {name!r} at {folder} is not a folder of the pipeline "
                              "directory")
    check_audio_tokenizer_export(parts["audio_tokenizer"])
    check_audio_lm_export(parts["llm"], base_model)
    return document


EXPORT_CHECKS = {
    PIPELINE_KIND: check_pipeline_export,
    AUDIO_TOKENIZER_KIND: check_audio_tokenizer_export,
    AUDIO_LM_KIND: check_audio_lm_export,
}
"kind -> the function that validates an exported directory of that kind."


def check_export(directory: str | Path) -> str:
    """Validate an exported directory of any kind (the check of its `kind`); returns the kind."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{directory}: {'does not exist' if not directory.exists() else 'not a directory'} "
                          "(expected an exported LM-MSN directory)")
    kind = read_yaml_document(directory / CONFIG_FILE).get("kind")
    if kind not in EXPORT_CHECKS:
        raise ExportError(f"{directory / CONFIG_FILE}: kind {kind!r} is none of {sorted(EXPORT_CHECKS)}")
    EXPORT_CHECKS[kind](directory)
    return kind


def is_pipeline_dir(path: Path) -> bool:
    """Whether `path` holds an exported pipeline (its config.yaml says kind: pipeline)."""
    try:
        read_exported_config(path, PIPELINE_KIND)
    except ExportError:
        return False
    return True


def _hub_download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id))


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_checkpoint(path_or_name: str | Path | None = None) -> Path:
    """Find a pipeline directory.

    Order: `path_or_name` (a path, a name under `checkpoints/`, or a hub id);
    else `$LMMSN_CHECKPOINT`, then `checkpoints/lm-msn` (under the working
    directory, then the source tree), then `$LMMSN_HUB_ID` when set.

    Raises:
        CheckpointNotFoundError: nothing found; lists every place searched.
        ExportError: a directory was found but is not a pipeline export.
    """
    searched: list[str] = []

    def try_path(path: Path, what: str) -> Path | None:
        path = path.expanduser()
        if path.exists():
            if is_pipeline_dir(path):
                return path
            read_exported_config(path, PIPELINE_KIND)  # raises with the precise reason
        searched.append(f"{path} ({what}): not found")
        return None

    def try_hub(repo_id: str, what: str) -> Path | None:
        try:
            path = _hub_download(repo_id)
        except Exception as exc:  # offline, missing repo, no permission: all reported below
            searched.append(f"hub id {repo_id!r} ({what}): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return None
        return try_path(path, f"downloaded from hub id {repo_id!r}")

    candidates: list[tuple[str, Any]] = []
    if path_or_name is not None:
        name = str(path_or_name)
        explicit = Path(name).expanduser()
        if (explicit.is_absolute() or name.startswith((".", "~"))) and not explicit.exists():
            # A path, not a name: nowhere else to look (and never a hub id).
            raise CheckpointNotFoundError(f"{explicit}: no such directory (the given checkpoint path)")
        candidates.append(("path", (Path(name), "the given path")))
        if not Path(name).is_absolute():
            for root in checkpoint_roots():
                candidates.append(("path", (root / name, "the given name under checkpoints/")))
        if _looks_like_hub_id(name):
            candidates.append(("hub", (name, "the given name as a hub id")))
    else:
        env = os.environ.get(ENV_CHECKPOINT)
        if env:
            candidates.append(("path", (Path(env), f"${ENV_CHECKPOINT}")))
        else:
            searched.append(f"${ENV_CHECKPOINT}: not set")
        for root in checkpoint_roots():
            candidates.append(("path", (root / DEFAULT_NAME, "default checkpoint")))
        hub = os.environ.get(ENV_HUB_ID)
        if hub:
            candidates.append(("hub", (hub, f"${ENV_HUB_ID}")))
        else:
            searched.append(f"${ENV_HUB_ID}: not set (no hub release of LM-MSN is configured)")
    for kind, args in candidates:
        found = try_path(*args) if kind == "path" else try_hub(*args)
        if found is not None:
            logger.info("using checkpoint %s", found)
            return found
    lines = "\n".join(f"  - {s}" for s in searched)
    raise CheckpointNotFoundError(
        f"no LM-MSN pipeline checkpoint found. Searched, in order:\n{lines}\n"
        + HOW_TO_GET.format(name=DEFAULT_NAME, env=ENV_CHECKPOINT, hub=ENV_HUB_ID)
    )
