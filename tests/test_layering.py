"""The import layers of DESIGN.md, checked on the source: core -> model families -> application.

core (`lmmsn/` minus the application layer) imports neither model family; `tokenizer/` and `llm/`
import only the core (never each other, never the application layer); pipeline, api, cli and
training are the application layer. Every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = ("lmmsn.pipeline", "lmmsn.api", "lmmsn.cli", "lmmsn.training")
FAMILIES = ("lmmsn.tokenizer", "lmmsn.llm")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    root = {"lmmsn": ["lmmsn"], "tokenizer": ["lmmsn", "tokenizer"], "llm": ["lmmsn", "llm"]}[parts[0]]
    parts = root + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, text: str | None = None) -> set[str]:
    """Every module `path` (or `text` as if it were that file) imports: absolute names, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text, filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


CORE = [p for p in _files("lmmsn") if not _under(_module_name(p), APPLICATION)]


def test_core_is_what_design_md_names():
    names = {_module_name(p) for p in CORE}
    assert {"lmmsn.config", "lmmsn.audio", "lmmsn.export", "lmmsn.data.format", "lmmsn.data.loader",
            "lmmsn.seeding"} <= names
    assert not names & {"lmmsn.blocks", "lmmsn.stable_audio_compat", "lmmsn.data.latents", "lmmsn.data.text"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_model_family_and_no_application(path):
    bad = sorted(n for n in _imports(path) if _under(n, FAMILIES + APPLICATION))
    assert not bad, f"{path.relative_to(ROOT)} (core) imports {bad}"


@pytest.mark.parametrize("folder, other", [("tokenizer", "lmmsn.llm"), ("llm", "lmmsn.tokenizer")])
def test_a_model_family_imports_only_the_core(folder, other):
    bad = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if _under(n, (other, *APPLICATION)))
           for p in _files(folder)}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    probe = ROOT / "lmmsn" / "data" / "format.py"  # read as lmmsn.data.format
    text = "def f():\n    from lmmsn.llm.vocabulary import AudioVocabulary\n    from ..tokenizer import model\n"
    names = _imports(probe, text)
    assert {"lmmsn.llm.vocabulary", "lmmsn.tokenizer", "lmmsn.tokenizer.model"} <= names
