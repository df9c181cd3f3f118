"""The exported-model directory format, with safe loading.

    <dir>/format_version      "1"
    <dir>/config.yaml         everything needed to rebuild the model (with `kind`)
    <dir>/model.safetensors   the weights (no pickles)

`from_pretrained(dir)` methods rebuild a model from `config.yaml` alone and
load `model.safetensors`. Lightning `.ckpt` files are only for resuming
training; nothing here reads them. Loading never unpickles: weights come from
safetensors, the config from `yaml.safe_load`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import yaml

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
VERSION_FILE = "format_version"


class ExportError(ValueError):
    """An exported-model directory is missing, incomplete or of another format."""


def save_exported(
    directory: str | Path,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None,
) -> Path:
    """Write an exported-model directory.

    Args:
        directory: created if needed; existing files of the format are replaced.
        kind: what the directory holds (e.g. "audio_tokenizer"), checked on load.
        config: plain YAML-serialisable mapping.
        state_dict: weights (tensors are made contiguous and moved to CPU);
            None for a model whose weights live elsewhere (e.g. a peft adapter).

    Returns:
        The directory path.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = {"kind": kind, **config}
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    if state_dict is not None:
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
    (directory / VERSION_FILE).write_text(f"{FORMAT_VERSION}\n", encoding="utf-8")
    return directory


def read_exported_config(directory: str | Path, kind: str) -> dict[str, Any]:
    """Check the directory's format version and kind; return its config (without `kind`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{directory}: not a directory (expected an exported {kind})")
    version_path = directory / VERSION_FILE
    if not version_path.is_file():
        raise ExportError(f"{directory}: no '{VERSION_FILE}' file; not an exported LM-MSN model")
    version = version_path.read_text(encoding="utf-8").strip()
    if version != str(FORMAT_VERSION):
        raise ExportError(
            f"{directory}: format_version {version!r}; this LM-MSN reads version {FORMAT_VERSION}"
        )
    config_path = directory / CONFIG_FILE
    try:
        document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportError(f"{config_path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExportError(f"{config_path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != kind:
        found = document.get("kind") if isinstance(document, dict) else None
        raise ExportError(f"{config_path}: holds kind {found!r}, expected {kind!r}")
    document.pop("kind")
    return document


def load_exported_weights(directory: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The weights of an exported directory, read with safetensors (no unpickling)."""
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"{path}: missing weights file")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises SafetensorError / OSError
        raise ExportError(f"{path}: cannot read safetensors: {exc}") from exc
