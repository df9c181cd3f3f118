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


def read_text(path: str | Path, what: str = "file") -> str:
    """A small UTF-8 text file of an export; ExportError naming the file when it is missing, binary or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no {what} ({'a directory' if path.is_dir() else 'missing'})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not UTF-8 text (a binary or corrupted {what})") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_yaml_document(path: str | Path) -> dict[str, Any]:
    """An export's config.yaml as a mapping (ExportError naming the file otherwise)."""
    try:
        document = yaml.safe_load(read_text(path, CONFIG_FILE))
    except yaml.YAMLError as exc:
        raise ExportError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(document, dict):
        raise ExportError(f"{path}: expected a YAML mapping with 'kind', got {type(document).__name__}")
    return document


def read_exported_config(directory: str | Path, kind: str) -> dict[str, Any]:
    """Check the directory's format version and kind; return its config (without `kind`)."""
    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "not a directory"
        raise ExportError(f"{directory}: {what} (expected an exported {kind})")
    version_path = directory / VERSION_FILE
    if not version_path.is_file():
        raise ExportError(f"{directory}: no '{VERSION_FILE}' file; not an exported LM-MSN model")
    version = read_text(version_path, VERSION_FILE).strip()
    if version != str(FORMAT_VERSION):
        raise ExportError(f"{version_path}: format_version {version[:40]!r}; this LM-MSN reads version {FORMAT_VERSION}")
    config_path = directory / CONFIG_FILE
    document = read_yaml_document(config_path)
    if document.get("kind") != kind:
        raise ExportError(f"{config_path}: holds kind {document.get('kind')!r}, expected {kind!r}")
    document.pop("kind")
    return document


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header (ExportError naming the file).

    safetensors checks that the header's offsets cover the file exactly, so a truncated or
    padded file fails here, before any model is built.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: missing weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as exc:  # SafetensorError (truncated, bad header), OSError
        raise ExportError(f"{path}: not a readable safetensors file ({' '.join(str(exc).split())})") from exc


def load_exported_weights(directory: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The weights of an exported directory, read with safetensors (no unpickling)."""
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"{path}: missing weights file")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises SafetensorError / OSError
        raise ExportError(f"{path}: not a readable safetensors file ({' '.join(str(exc).split())})") from exc
