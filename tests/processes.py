"""giftcast as a real process (`python -m server serve`), for tests that need one: memory
measured from outside, logs captured from its stderr, signals."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import TOKEN_SECRET, WEBHOOK_SECRET, free_port

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    stderr_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def rss_bytes(self) -> int:
        """Resident set size now, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@contextlib.contextmanager
def server_process(tmp_path: Path, port: int | None = None, **env: str) -> Iterator[ServerProcess]:
    """Run `python -m server serve` on `port` (default: a free one) until the block ends (then
    SIGTERM, unless the test killed it already)."""
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIFTCAST_") and k != "REDIS_URL"}
    full_env.update(PORT=str(port), GIFTCAST_TOKEN_SECRET=TOKEN_SECRET, GIFTCAST_WEBHOOK_SECRET=WEBHOOK_SECRET,
                    GIFTCAST_DATA_DIR=str(tmp_path / "data"), GIFTCAST_LOG_LEVEL="warning")
    full_env.update(env)
    stderr_path = tmp_path / f"giftcast-{port}.stderr"
    with open(stderr_path, "w") as stderr, subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], cwd=REPO, env=full_env,
            stdout=subprocess.PIPE, stderr=stderr, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "giftcast listening" in line, stderr_path.read_text()
            yield ServerProcess(proc, port, stderr_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
