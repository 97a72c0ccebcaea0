"""Processes the suite starts and watches: dashboard servers, and readings of memory and threads.

Each :class:`Dashboard` is a real server started as people start it (``python -m dashboard``, which
logs the package's lines too) on a free local port, with its own artifacts folder and
log file. Storage faults are real: the server can be started in its own mount namespace
(``unshare -m``) with its artifacts folder bind-mounted read-only or replaced by a tiny tmpfs, so
even root cannot write there, and nothing outside that server sees the mount.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mnist_model.local_ray import free_port  # a port that no process is handed at random meanwhile

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Read by mnist_model.config; named here so that this module needs no import of the package.
DEFAULT_MODEL_ENV = "MNIST_DEFAULT_MODEL"
# The line mnist_model's training module logs once for every real training run.
TRAINING_LINE = re.compile(r"INFO mnist_model\.\w+: training (\S+) \(")


def suite_environment(artifacts: Path, **overrides: str) -> dict[str, str]:
    """The environment for a process the suite starts: quiet TensorFlow, its own artifacts folder, and
    the dense network as the default model (unless this process's environment or ``overrides`` name
    one), so that a server or command trains the convnet only where a check asks for it."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    environment.setdefault(DEFAULT_MODEL_ENV, "mlp")
    environment["MNIST_ARTIFACTS"] = str(artifacts)
    environment.update(overrides)
    return environment


def _status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def resident_mb(pid: int | None = None) -> float:
    """Resident memory of a process (default: this one) in MB, from /proc."""
    return int(_status_field(pid or os.getpid(), "VmRSS").split()[0]) / 1024


def peak_resident_mb(pid: int | None = None) -> float:
    """The most resident memory a process (default: this one) has had, in MB, since it started or
    since :func:`reset_peak` (VmHWM in /proc)."""
    return int(_status_field(pid or os.getpid(), "VmHWM").split()[0]) / 1024


def reset_peak() -> None:
    """Start this process's peak resident memory again from its current resident memory."""
    Path("/proc/self/clear_refs").write_text("5")


def websocket_handshake(url: str, host: str) -> int:
    """The HTTP status of a WebSocket handshake with a dashboard's stream, sent with the Host header ``host``."""
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key}
        connection.request("GET", "/_stcore/stream", headers={**headers, "Sec-WebSocket-Version": "13"})
        return connection.getresponse().status
    finally:
        connection.close()


def thread_count(pid: int | None = None) -> int:
    """Threads of a process (default: this one), from /proc."""
    return int(_status_field(pid or os.getpid(), "Threads"))


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below ``pid``, as (pid, command line), parents before children."""
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True
    ).stdout.splitlines()
    children: dict[int, list[tuple[int, str]]] = {}
    for line in listing:
        parts = line.split(None, 2)
        if len(parts) == 3:
            children.setdefault(int(parts[1]), []).append((int(parts[0]), parts[2]))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child[0])
    return found


def namespaces_available(scratch: Path) -> bool:
    """Whether this machine lets the suite mount a tmpfs in a private mount namespace (root, unshare)."""
    target = scratch / "namespace-probe"
    target.mkdir(parents=True, exist_ok=True)
    try:
        probe = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', target],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def storage_wrapper(kind: str, folder: Path) -> list[str]:
    """A command prefix that runs the rest in a mount namespace where ``folder`` is faulty.

    kind: "read-only" (the folder bind-mounted onto itself read-only) or "full" (a 200 kB tmpfs,
    too small for a model file, so saving fails with ENOSPC part-way through).
    """
    mounts = {
        "read-only": 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"',
        "full": 'mount -t tmpfs -o size=200k tmpfs "$0"',
    }
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", mounts[kind] + ' && exec "$@"', str(folder)]


class Dashboard:
    """One dashboard server; use as a context manager. ``url``, ``pid``, ``log_text()``, ``training_runs()``."""

    def __init__(self, artifacts: Path, log_path: Path, *, wrapper: list[str] | None = None, **environment: str):
        self.artifacts = artifacts
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._wrapper = wrapper or []
        self._environment = suite_environment(artifacts, **environment)
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 120) -> None:
        command = [sys.executable, "-m", "dashboard", "--server.headless", "true"]
        command += ["--server.port", str(self.port), "--server.address", "127.0.0.1"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self._wrapper + command,
                cwd=PROJECT_ROOT,
                env=self._environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {self._process.returncode}:\n{self.log_text()[-2000:]}")
            if self.healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the dashboard did not answer within {timeout:.0f} s:\n{self.log_text()[-2000:]}")

    def healthy(self) -> bool:
        """Whether the server is running and its health endpoint answers "ok"."""
        if self._process is None or self._process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def training_runs(self) -> list[str]:
        """The cache keys of the training runs this server started, one per log line."""
        return TRAINING_LINE.findall(self.log_text())

    def tracebacks(self) -> int:
        return self.log_text().count("Traceback (most recent call last)")
