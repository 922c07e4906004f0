"""The harness's side of a C viewer worker (benchmarks/cgen/viewers.c).

`start_cviewers(spec)` starts the binary (compiled on first use, and again whenever the source
is newer) with the same spec as `loadgen.start_worker` and returns a `CViewerHandle`: the same
`.call`, `.send`, `.reply`, `.stop` and `.pid` as `WorkerHandle`, and the same reply dicts for the
viewer commands connect, mark, collect, received, await, stall, close. It holds viewers only: senders
and the storm's reconnect/rejoined stay in the Python worker.

Commands go to the binary's stdin as one line of space-separated words; it answers each with
one JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.loadgen import WorkerHandle

__all__ = ["BUILD_DIR", "CViewerHandle", "ensure_built", "start_cviewers"]

SOURCE = Path(__file__).resolve().parent / "cgen" / "viewers.c"
BUILD_DIR = SOURCE.parent / "build"  # gitignored
CFLAGS = ("-O2", "-Wall", "-Werror")


def ensure_built(build_dir: Path = BUILD_DIR) -> Path:
    """The compiled worker, built with $CC (default cc) when missing or older than its source."""
    binary = build_dir / "viewers"
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise RuntimeError(f"no C compiler ({os.environ.get('CC', 'cc')}) to build {SOURCE}: install gcc, "
                           "or run the benchmarks with --viewers py")
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = build_dir / f"viewers.{os.getpid()}"  # then renamed: workers started in parallel never see half a file
    done = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cc} failed on {SOURCE}:\n{done.stderr}")
    tmp.replace(binary)
    return binary


def _line(cmd: str, args: dict[str, Any], room: str) -> bytes:
    words: list[Any] = [cmd]
    if cmd == "connect":
        tokens, rooms = args["tokens"], args.get("rooms") or [[room]]
        words += [args["n"], args.get("concurrency", 100), int(args.get("timeout_s", 60.0) * 1000),
                  args.get("rcvbuf", 0), len(tokens), *tokens, len(rooms), *(",".join(g) for g in rooms)]
    elif cmd == "received":
        words += [args["lo"], args["hi"]]
    elif cmd == "await":
        words += [args["lo"], args["hi"], args["n"], int(args.get("within_s", 15.0) * 1000)]
    elif args:
        raise ValueError(f"the C viewer worker takes no arguments for {cmd!r}: {args}")
    text = " ".join(str(w) for w in words)
    if "\n" in text or any(not str(w) or " " in str(w) for w in words):
        raise ValueError(f"tokens and rooms must be words without spaces for the C viewer worker: {text[:200]}")
    return text.encode() + b"\n"


class CViewerHandle(WorkerHandle):
    """One C viewer worker process, driven like a `WorkerHandle` (whose `call` it inherits)."""

    def __init__(self, proc: subprocess.Popen[bytes], room: str) -> None:
        self.proc = proc
        self.room = room
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(_line(cmd, args, self.room))
        self.proc.stdin.flush()

    def reply(self, timeout_s: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            if not select.select([fd], [], [], timeout_s)[0]:
                raise TimeoutError(f"C viewer worker {self.pid} did not answer in {timeout_s} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"C viewer worker {self.pid} exited (code {self.proc.wait()})")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"C viewer worker {self.pid}: {reply['error']}")
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone: BrokenPipeError
            self.send("exit")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc.kill()  # a no-op once it has exited
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def start_cviewers(spec: dict[str, Any]) -> CViewerHandle:
    """Start one C viewer worker. `spec`: host, port, dialect, room, shm_path, shm_cap, cpus
    (the binary pins itself to `cpus` and raises its open-file limit)."""
    argv = [str(ensure_built()), spec["host"], str(spec["port"]), spec["dialect"], spec["room"],
            str(spec["shm_path"]), str(spec["shm_cap"]), ",".join(str(c) for c in spec.get("cpus") or ())]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return CViewerHandle(proc, spec["room"])
