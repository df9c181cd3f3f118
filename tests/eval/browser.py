"""Headless Chromium for the page tests: Debian's `chromium` driven by playwright-core (npm).

`.ci/run` installs both (apt-get chromium, `npm ci`), and sets LMMSN_REQUIRE_BROWSER=1 so a
missing browser fails there instead of skipping. Elsewhere the page tests skip with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("chromium.cjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing() -> str | None:
    """Why the browser checks cannot run here (None: they can)."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found: `apt-get install chromium` (Debian)"
    if shutil.which("node") is None:
        return "node not found: `apt-get install nodejs npm`"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core not installed: `npm ci` in {ROOT} (package.json)"
    return None


def require_browser() -> None:
    """Skip (fail under LMMSN_REQUIRE_BROWSER=1, as in CI) when the browser checks cannot run."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("LMMSN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"headless Chromium required (LMMSN_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(f"headless Chromium unavailable: {reason}")


class BrowserSession:
    """One Chromium for several checks (`chromium.cjs session`): saves a browser start per check."""

    def __enter__(self) -> BrowserSession:
        self.proc = subprocess.Popen(["node", str(DRIVER), "session"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "CHROMIUM": CHROMIUM})
        return self

    def check(self, mode: str, url: str, screenshot: str = "", rater: str = "", choice: str = "", settle_ms: int = 0) -> dict:
        """One step (chromium.cjs's command-line arguments, and settle_ms: how long to wait after a vote
        before reading the status); its JSON result."""
        step = {"mode": mode, "url": url, "screenshot": screenshot, "rater": rater, "choice": choice, "settle_ms": settle_ms}
        self.proc.stdin.write(json.dumps(step) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"browser session ended (rc {self.proc.wait(10)}): {self.proc.stderr.read()[-2000:]}")
        out = json.loads(line)
        assert "fatal" not in out, out["fatal"]
        return out

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def page_errors(result: dict) -> list[str]:
    """Everything that counts as the page misbehaving: console and page errors, failed / foreign requests."""
    return [*result["console_errors"], *result["page_errors"], *result["failed_requests"], *result["http_errors"], *result["foreign_requests"]]


@contextlib.contextmanager
def serve_folder(folder: Path):
    """A static file server for `folder` on 127.0.0.1 (a free port); yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
