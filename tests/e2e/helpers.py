"""Running `just up` as a person would: a command in its own session, its output in a file.

:class:`Up` starts the command, waits until the exchange says it is up and stops it with SIGINT
(Ctrl-C), checking that it stopped cleanly. The rest are small HTTP and process helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 600  # includes creating a virtualenv and installing the project
STOP_TIMEOUT_S = 60
UP_LINE = "the exchange is up"


class Up:
    """One run of a `just up` command (``argv``) in ``cwd``, its output in ``log_path``."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.argv, self.cwd, self.env, self.log_path = argv, cwd, env, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        return self.text()[-4000:]

    def start(self) -> Self:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for(UP_LINE, READY_TIMEOUT_S)
        return self

    def wait_for(self, text: str, timeout_s: float, count: int = 1) -> None:
        """Until ``text`` appears ``count`` times in the output (the command must keep running)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while self.text().count(text) < count:
            assert self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"no {text!r} after {timeout_s}s\n{self.tail()}"
            time.sleep(0.2)

    def stop(self) -> None:
        """Ctrl-C, then check it stopped cleanly (`just` reports 128 + SIGINT, the stack logs
        `stopped`)."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        assert self.process.returncode in (0, 128 + signal.SIGINT), self.tail()
        assert "stopped" in self.text().rsplit(UP_LINE, 1)[-1], self.tail()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self._kill()
            raise

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            self._kill()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def copy_repository(target: Path) -> None:
    """The files a clean clone has (tracked, plus new files not ignored), nothing else."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without the servers or virtualenv a developer may have set, plus
    ``settings``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV", "EXCHANGE_AUTH")
    }
    return env | settings


def request(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def eventually(check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """``check()`` once it returns something truthy (it may raise AssertionError meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"not true after {timeout_s}s"
        time.sleep(0.2)


def processes_under(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(directory) in line and "ps -eo" not in line]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_all_gone(directory: Path, ports: list[int]) -> None:
    """No process of ``directory`` is left and none of ``ports`` is open."""
    deadline = time.monotonic() + 10
    while processes_under(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(directory) == []
    assert not any(port_open(port) for port in ports)


def stack_state(data_dir: Path) -> dict:
    return json.loads((data_dir / "stack.json").read_text())
