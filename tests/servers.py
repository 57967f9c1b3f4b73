"""``featviz microscope serve`` started for real, in its own process on a free port of
127.0.0.1, for the tests (and ``bench/microscope.py serve-ctrl-c``) that talk to it over HTTP."""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The server of ``folder``; ``extra`` command-line options. SIGINT is at its default in
    it, as a terminal's Ctrl-C finds a command (a shell started in the background hands its
    children SIGINT ignored)."""

    def __init__(self, folder: Path, *extra: str, timeout: float = 120) -> None:
        self.folder, self.port = folder, free_port()
        cmd = [sys.executable, "-m", "featviz", "microscope", "serve", str(folder), "--port", str(self.port), *extra]
        default_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
        env = dict(os.environ, OMP_NUM_THREADS="2")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.get("/api/status")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise AssertionError(f"the server did not start: {self.proc.communicate()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        """A request with the path sent exactly as given (no client-side normalization)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
