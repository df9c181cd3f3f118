"""Naming rules of issue 13 checked on the source: one config suffix, one spelling, no bare 'tokenizer' attribute."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lmmsn", "tokenizer", "llm", "recipes", "data_prep", "eval", "bench", "scripts")
FILES = sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def _identifiers(tree: ast.AST):
    """(kind, name) of every name a reader types: classes, functions, arguments, attributes, variables, keys."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield type(node).__name__, node.name
        elif isinstance(node, ast.arg):
            yield "argument", node.arg
        elif isinstance(node, ast.Attribute):
            yield "attribute", node.attr
        elif isinstance(node, ast.Name):
            yield "name", node.id
        elif isinstance(node, ast.keyword) and node.arg:
            yield "keyword", node.arg
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield "key", key.value


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_one_config_suffix_and_one_spelling(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = sorted({f"{kind} {name}" for kind, name in _identifiers(tree)
                  if (kind == "ClassDef" and name.endswith("Settings")) or "normalis" in name.lower()})
    assert not bad, f"{path.relative_to(ROOT)}: {bad} (use *Config and 'normalize')"


def test_config_yaml_keys_use_one_spelling():
    offenders = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("*/configs/**/*.yaml"))
                 if "normalis" in p.read_text(encoding="utf-8").lower()]
    assert not offenders


def test_audio_lm_and_pipeline_name_their_tokenizers():
    """Where both tokenizers meet, neither is a bare `tokenizer`: AudioLM.text_tokenizer, Pipeline.audio_tokenizer."""
    for rel in ("llm/model.py", "lmmsn/pipeline.py", "lmmsn/training/llm_module.py", "llm/data.py"):
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        bare = [node.lineno for node in ast.walk(tree)
                if (isinstance(node, ast.Attribute) and node.attr == "tokenizer")
                or (isinstance(node, ast.arg) and node.arg == "tokenizer")]
        assert not bare, f"{rel}: bare 'tokenizer' at lines {bare}"
