"""Local servers started as child processes (dynalite, moto): a free port, readiness, a clean stop."""

from __future__ import annotations

import socket
import subprocess
import time


class ServerStartError(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], *, name: str, timeout: float) -> None:
    """Return once ``process`` accepts connections on 127.0.0.1:``port``; raise if it exits or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace").strip() if process.stdout else ""
            raise ServerStartError(f"{name} exited with {process.returncode}: {output}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerStartError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 5) -> None:
    """Terminate by process id, kill if it does not go, and close its pipe."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()
