"""A local Ray instance for one process: started on loopback, stopped with that process.

``ray start --head --block`` leaves its servers running when it is killed, and Ray's processes must
not be started from a short-lived thread: a child started with a parent-death signal dies with the
thread that started it (ray-project/ray#45570), and a Streamlit script run is such a thread. So
:class:`LocalCluster` starts, from a thread of its own that lives as long as the process, a small
supervisor (this module's ``main``) that dies with that thread; the supervisor runs ``ray start`` in
a process group of its own and, when it is told to stop or its parent dies, stops that whole group.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mnist_model.records import EngineError

log = logging.getLogger(__name__)

# Seconds to wait for a local Ray instance to start, and for its processes to stop.
START_SECONDS = 60.0
STOP_SECONDS = 10.0
ADDRESS_ENV = "RAY_ADDRESS"
# Ports for the head's servers: below the kernel's ephemeral range (32768-60999 on Linux, 49152 and up
# elsewhere), where outgoing connections and every server bound to port 0 get theirs, Ray's own
# included, and above Ray's worker ports (10002-19999). A port picked there and bound a moment later
# is not taken in between by a port handed out at random, which once stopped a whole head: its client
# server found "its" ephemeral port in use and `ray start --block` stopped every process.
LISTEN_PORTS = range(20000, 32768)
# A driver's patience with its cluster (see mnist_model.engine), not the head's: a Ray process of the
# head whose servers are gone must still stop.
DRIVER_SETTINGS = (
    "RAY_NUM_REDIS_GET_RETRIES",
    "RAY_py_gcs_connect_timeout_s",
    "RAY_gcs_rpc_server_reconnect_timeout_s",
)


class LocalCluster:
    """A Ray head on this machine, on loopback only, started by and stopping with this process."""

    def __init__(self, num_cpus: int | None = None):
        self.num_cpus = num_cpus
        self.address: str | None = None
        self.error: str | None = None
        self.log_file = Path(tempfile.mkstemp(prefix="mnist-ray-", suffix=".log")[1])
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        # Set when the head's processes have stopped, after a start or a failed one.
        self.stopped = threading.Event()
        # The thread that starts the head lives as long as this process (see the module docstring).
        self._thread = threading.Thread(target=self._run, name="ray-head", daemon=True)

    def start(self, timeout: float = START_SECONDS) -> str:
        """Start the head and return its address. Raises EngineError when it cannot start."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise EngineError(f"The local Ray instance did not start within {timeout:.0f} s.")
        if self.error:
            raise EngineError(self.error)
        return self.address

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()

    def _run(self) -> None:
        try:
            self._start_and_wait()
        except EngineError as error:
            self.error = str(error)
        finally:
            self._ready.set()
            self.stopped.set()

    def _start_and_wait(self) -> None:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "mnist_model.local_ray",
            f"--port={port}",
            f"--ray-client-server-port={free_port()}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            command.append(f"--num-cpus={self.num_cpus}")
        # Ray binds its servers to the node's address; this setting keeps them on loopback.
        environment = {
            **os.environ,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "PYTHONPATH": _import_path(),
            # Ray lowers its workers' priority by default; here they are this server's own work, and
            # training shares the CPU fairly with the pages people are watching.
            "RAY_worker_niceness": "0",
            # Stop at once when asked: there is nothing to drain on a single machine.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        }
        for name in DRIVER_SETTINGS:
            environment.pop(name, None)
        environment.pop(ADDRESS_ENV, None)
        with open(self.log_file, "wb") as output:
            try:
                self._process = subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, env=environment, preexec_fn=_die_with_parent
                )
            except OSError as error:
                log.error("the local Ray instance could not be started: %s", error)
                self.error = "The local Ray instance could not start; the server log says why."
                return
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            if b"Ray runtime started" in self.log_file.read_bytes():
                self.address = f"127.0.0.1:{port}"
                break
            time.sleep(0.05)
        if self.address is None:
            lines = self.log_file.read_text(errors="replace").strip().splitlines() or ["no output"]
            log.error(
                "the local Ray instance did not start (exit status %s): %s; its whole output is in %s",
                self._process.poll(),
                lines[-1],
                self.log_file,
            )
            self.error = "The local Ray instance could not start; the server log says why."
        self._ready.set()
        code = self._process.wait()
        if self.address is not None:
            log.warning("the local Ray instance stopped (exit status %s); its output is in %s", code, self.log_file)


def free_port() -> int:
    """A loopback port that is free now, from :data:`LISTEN_PORTS`. Raises EngineError if none is."""
    for port in random.sample(LISTEN_PORTS, 64):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    first, last = LISTEN_PORTS.start, LISTEN_PORTS.stop - 1
    raise EngineError(f"No free local port between {first} and {last} for the Ray instance.")


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when the thread that started it ends (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _import_path() -> str:
    """PYTHONPATH with this package's folder first, so the supervisor finds it however this process did."""
    here = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])


def main(arguments: list[str]) -> int:
    """Run ``ray start --head --block ARGUMENTS`` in its own process group; stop the group on SIGTERM."""
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", *arguments], start_new_session=True
    )

    def stop(signum, frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline and (head.poll() is None or _group_alive(head.pid)):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Polled rather than waited for: Popen.wait() would hold the lock that stop()'s poll() needs.
    while head.poll() is None:
        time.sleep(0.2)
    return head.returncode


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
