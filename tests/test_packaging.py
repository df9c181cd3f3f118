"""The one-import-root layout of DESIGN.md."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_installed_import_root():
    done = run_python("import lmmsn, lmmsn.tokenizer, lmmsn.llm; print(lmmsn.tokenizer.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == ROOT / "tokenizer"


@pytest.mark.parametrize("name, replacement", [("tokenizer", "lmmsn.tokenizer"), ("llm", "lmmsn.llm")])
def test_bare_folder_import_fails_with_directions(name, replacement):
    done = run_python(f"import {name}")
    assert done.returncode != 0
    assert "ImportError" in done.stderr and f"import {replacement}" in done.stderr


def test_recipes_are_not_importable():
    done = run_python("import recipes")
    assert done.returncode != 0 and "not a package" in done.stderr


def test_importing_lmmsn_does_not_import_torch():
    done = run_python("import sys, lmmsn; print('torch' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False"
