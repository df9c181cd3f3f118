"""Where a pipeline checkpoint is found: a path, a name under `checkpoints/`, the environment, a hub id.

Documented for users in checkpoints/README.md; `lmmsn.load()` and every `lmmsn` command use
`resolve_checkpoint`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lmmsn.export import ExportError, read_exported_config

logger = logging.getLogger(__name__)

PIPELINE_KIND = "pipeline"
"The `kind` in a pipeline directory's config.yaml."
DEFAULT_NAME = "lm-msn"
"Folder name looked up under `checkpoints/` when nothing else is given."
ENV_CHECKPOINT = "LMMSN_CHECKPOINT"
ENV_HUB_ID = "LMMSN_HUB_ID"
REPO_ROOT = Path(__file__).resolve().parents[1]

HOW_TO_GET = """\
How to get a model:
  - train one: recipes/train_tokenizer.py (audio tokenizer), then recipes/pretrain_llm.py and
    recipes/finetune_llm.py (audio LLM); each exports a directory at the end;
  - assemble the two exports into a pipeline directory:
      lmmsn export --tokenizer <tokenizer export> --llm <llm export> -o checkpoints/{name}
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
