"""bench/long_encode.py measures both sides in one run and checks that their codes agree."""

import importlib.util
from pathlib import Path


def test_tiny_run_reports_both_sides_and_identical_codes(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "bench" / "long_encode.py"
    spec = importlib.util.spec_from_file_location("long_encode", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.main(["--tiny", "--json", str(tmp_path / "out.json")])
    assert summary["codes_identical"] is True
    assert summary["one-pass"]["frames"] == summary["chunked"]["frames"] > 64  # more than one chunk
    assert summary["memory_ratio"] > 0 and summary["speed_ratio"] > 0
    assert "long_encode: tiny encoder" in capsys.readouterr().out and (tmp_path / "out.json").is_file()
