"""One embedded DynamoDB that several kairos commands share (docs/adr/0200-a-shared-embedded-dynamodb.md).

The first command that needs it starts a detached keeper (``python -m kairos.local.server``), which
owns the data directory for its whole life and runs dynalite on a free loopback port; the port and
the process ids go into ``<data dir>.server.json``. Later commands read that file, check the
processes are alive and are ours, and reuse the server. The keeper stops dynalite when no command
has used it for ``idle_s`` seconds, or when told to (``kairos local stop``).

Files beside the data directory ``D``:

* ``D.lock``: held exclusively by the one process that has dynalite open (the keeper, and dynalite,
  which inherits it): LevelDB must never be opened twice.
* ``D.start.lock``: serialises starting, reusing and stopping, so two commands racing to start
  the server start one, and the keeper never stops while a command is attaching.
* ``D.clients.lock``: every command using the server holds it shared; the keeper counts the server
  idle while it can take it exclusively.
* ``D.server.json``: the keeper's and dynalite's process ids, the port and the data directory.
* ``D.log``: the keeper's and dynalite's output.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

DEFAULT_IDLE_S = 900.0
"""How long the server stays up with no command using it."""
START_TIMEOUT_S = 20.0
LOCK_WAIT_S = 30.0
POLL_S = 0.5


class SharedServerError(RuntimeError):
    """The shared server cannot be started, found or stopped; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class ServerState:
    keeper_pid: int
    dynalite_pid: int
    port: int
    data_dir: str
    idle_s: float
    started_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _sibling(data_dir: Path, suffix: str) -> Path:
    return data_dir.with_name(f"{data_dir.name}.{suffix}")


def state_file(data_dir: Path) -> Path:
    return _sibling(data_dir, "server.json")


def log_file(data_dir: Path) -> Path:
    return _sibling(data_dir, "log")


@contextmanager
def _flock(path: Path, mode: int, *, wait_s: float, what: str) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SharedServerError(f"{what} ({path} stayed locked for {wait_s:.0f} s)") from None
                time.sleep(0.05)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_flock(handle: IO[str], mode: int) -> bool:
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_state(data_dir: Path) -> ServerState | None:
    try:
        raw = json.loads(state_file(data_dir).read_text(encoding="utf-8"))
        return ServerState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _command_line(pid: int) -> list[str] | None:
    """The process's arguments, None when it does not exist (or /proc is unavailable: then alive is enough)."""
    with suppress(ChildProcessError, OSError):
        # A keeper this process started and that has exited is reaped here, not left a zombie.
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return None  # someone else's process: not ours
    try:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return None  # exited, not yet reaped by its parent
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, IndexError):
        return []


def _is_ours(state: ServerState, data_dir: Path) -> bool:
    """Both processes alive, started for this data directory, and the port answering."""
    if Path(state.data_dir) != data_dir.resolve():
        return False
    keeper, dynalite = _command_line(state.keeper_pid), _command_line(state.dynalite_pid)
    if keeper is None or dynalite is None:
        return False
    if keeper and "kairos.local.server" not in keeper:
        return False  # the pid was reused by another program
    if dynalite and str(data_dir.resolve()) not in dynalite:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", state.port)) == 0


def running_server(data_dir: Path) -> ServerState | None:
    """The server for ``data_dir`` when it is running and ours, else None."""
    data_dir = data_dir.resolve()
    state = read_state(data_dir)
    return state if state is not None and _is_ours(state, data_dir) else None


@contextmanager
def shared_dynamodb(data_dir: Path, *, idle_s: float = DEFAULT_IDLE_S) -> Iterator[ServerState]:
    """The shared server for ``data_dir``, started if none runs, held in use for the block."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    clients = _sibling(data_dir, "clients.lock")
    with _flock(
        _sibling(data_dir, "start.lock"),
        fcntl.LOCK_EX,
        wait_s=LOCK_WAIT_S,
        what="another kairos command is starting or stopping the embedded DynamoDB",
    ):
        state = running_server(data_dir) or _start(data_dir, idle_s=idle_s)
        lease = clients.open("a")
        # Taken before the start lock is let go: the keeper checks for idleness under that lock.
        fcntl.flock(lease, fcntl.LOCK_SH)
    try:
        yield state
    finally:
        fcntl.flock(lease, fcntl.LOCK_UN)
        lease.close()


def _start(data_dir: Path, *, idle_s: float) -> ServerState:
    stale = read_state(data_dir)
    if stale is not None:
        _stop_orphan(stale, data_dir)
    state_file(data_dir).unlink(missing_ok=True)  # stale: its processes are gone or not ours
    command = [
        sys.executable,
        "-m",
        "kairos.local.server",
        "--data-dir",
        str(data_dir),
        "--idle-s",
        str(idle_s),
    ]
    with log_file(data_dir).open("ab") as log:
        keeper = subprocess.Popen(  # noqa: S603 - this interpreter and our own module
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the terminal of the command that started it does not reach it.
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(data_dir)
        if state is not None and state.keeper_pid == keeper.pid and _is_ours(state, data_dir):
            return state
        if keeper.poll() is not None:
            raise SharedServerError(f"the embedded DynamoDB did not start: {_log_tail(data_dir)}")
        time.sleep(0.05)
    _signal(keeper.pid, signal.SIGTERM)
    raise SharedServerError(
        f"the embedded DynamoDB did not start within {START_TIMEOUT_S:.0f} s: {_log_tail(data_dir)}"
    )


def _stop_orphan(stale: ServerState, data_dir: Path) -> None:
    """A dynalite left running by a keeper that was killed still holds the data directory: stop it."""
    arguments = _command_line(stale.dynalite_pid)
    if not arguments or str(data_dir) not in arguments or not any("dynalite" in part for part in arguments):
        return
    _signal(stale.dynalite_pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _command_line(stale.dynalite_pid) is not None:
        time.sleep(0.05)


def _log_tail(data_dir: Path) -> str:
    try:
        lines = log_file(data_dir).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def stop_server(data_dir: Path, *, force: bool = False, wait_s: float = 10.0) -> ServerState | None:
    """Stop the shared server; None when none was running. Refuses while a command uses it, unless ``force``."""
    data_dir = data_dir.resolve()
    with _flock(
        _sibling(data_dir, "start.lock"),
        fcntl.LOCK_EX,
        wait_s=LOCK_WAIT_S,
        what="another kairos command is starting or stopping the embedded DynamoDB",
    ):
        state = running_server(data_dir)
        if state is None:
            state_file(data_dir).unlink(missing_ok=True)
            return None
        with _sibling(data_dir, "clients.lock").open("a") as clients:
            idle = _try_flock(clients, fcntl.LOCK_EX)
            if idle:
                fcntl.flock(clients, fcntl.LOCK_UN)
        if not idle and not force:
            raise SharedServerError(
                "a kairos command (kairos local, runs, status) is using the embedded DynamoDB; "
                "let it finish, or stop it anyway with --force"
            )
        _signal(state.keeper_pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and (
            _command_line(state.keeper_pid) is not None or _command_line(state.dynalite_pid) is not None
        ):
            time.sleep(0.05)
        state_file(data_dir).unlink(missing_ok=True)
        return state


# --------------------------------------------------------------------------------------------
# The keeper: python -m kairos.local.server --data-dir D --idle-s S


class _StopError(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _StopError


def keep(data_dir: Path, *, idle_s: float) -> int:
    from kairos.local.dynamodb import DYNALITE_CLI, dynalite_command
    from kairos.local.processes import ServerStartError, free_loopback_port, stop_process, wait_for_port

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    owner = _sibling(data_dir, "lock").open("a")
    if not _try_flock(owner, fcntl.LOCK_EX):
        print(f"another process has the data directory {data_dir} open", flush=True)
        return 1
    if not DYNALITE_CLI.exists():
        print("dynalite is not installed: run `make setup` (npm ci)", flush=True)
        return 1
    port = free_loopback_port()
    # dynalite inherits the owner lock: while it lives, no other server opens the data directory.
    process = subprocess.Popen(  # noqa: S603 - node and the pinned dynalite
        dynalite_command(data_dir, port),
        stdin=subprocess.DEVNULL,
        pass_fds=(owner.fileno(),),
    )
    try:
        wait_for_port(port, process, name="dynalite", timeout=START_TIMEOUT_S)
    except ServerStartError as error:
        print(error, flush=True)
        stop_process(process)
        return 1
    state = ServerState(os.getpid(), process.pid, port, str(data_dir), idle_s, time.time())
    temporary = state_file(data_dir).with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state)), encoding="utf-8")
    temporary.replace(state_file(data_dir))
    print(f"embedded DynamoDB on {state.url} (keeper {state.keeper_pid}, dynalite {process.pid})", flush=True)

    def shutdown(reason: str) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"stopping: {reason}", flush=True)
        stop_process(process)
        current = read_state(data_dir)
        if current is not None and current.keeper_pid == os.getpid():
            state_file(data_dir).unlink(missing_ok=True)
        owner.close()

    try:
        reason = _watch(data_dir, process, idle_s=idle_s, shutdown=shutdown)
    except _StopError:
        shutdown("asked to")
        return 0
    if reason is not None:
        shutdown(reason)
    return 0


def _watch(
    data_dir: Path, process: subprocess.Popen[bytes], *, idle_s: float, shutdown: Callable[[str], None]
) -> str | None:
    """Wait until dynalite exits (its reason) or the server is idle (shut down here, None)."""
    idle_since: float | None = None
    with _sibling(data_dir, "clients.lock").open("a") as clients, _sibling(data_dir, "start.lock").open("a") as start:
        while process.poll() is None:
            time.sleep(POLL_S)
            if not _try_flock(clients, fcntl.LOCK_EX):
                idle_since = None
                continue
            fcntl.flock(clients, fcntl.LOCK_UN)
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < idle_s:
                continue
            # Idle long enough: stop under the start lock, so no command attaches meanwhile or
            # starts another server before this one has let go of the data directory.
            if not _try_flock(start, fcntl.LOCK_EX):
                continue
            try:
                if _try_flock(clients, fcntl.LOCK_EX):
                    shutdown(f"idle for {idle_s:.0f} s")
                    return None
            finally:
                fcntl.flock(start, fcntl.LOCK_UN)
        return f"dynalite exited with {process.returncode}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kairos.local.server")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--idle-s", type=float, default=DEFAULT_IDLE_S)
    arguments = parser.parse_args(argv)
    return keep(arguments.data_dir.resolve(), idle_s=arguments.idle_s)


if __name__ == "__main__":
    raise SystemExit(main())
