"""The README's run command, as a newcomer meets it.

From a clean copy of the repository in a temporary directory, with no ``REDIS_URL`` or
``DATABASE_URL``, run the exact command the README gives, wait until the exchange says it is up,
send the seed's three requests, stop it with SIGINT and check that every process it started is
gone and no port is left open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from exchange.localservers import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 600  # includes creating the virtualenv and installing the project
STOP_TIMEOUT_S = 60

pytestmark = pytest.mark.slow


def readme_run_command() -> str:
    """The first shell block of the README's "two commands" section."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", text, flags=re.S)
    assert blocks, "README has no sh block"
    assert blocks[0].endswith("just up"), blocks[0]
    return blocks[0]


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


def request(method: str, url: str, body: str | None = None) -> tuple[int, object]:
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def processes_under(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(directory) in line and "ps -eo" not in line]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_run_command_from_a_clean_copy(tmp_path: Path) -> None:
    repo = tmp_path / "exchange"
    copy_repository(repo)
    api_port, ws_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV")
    }
    env.update(API_PORT=str(api_port), WS_PORT=str(ws_port))
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            ["bash", "-c", readme_run_command()],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "the exchange is up" not in log_path.read_text(errors="replace"):
            assert up.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)

        api = f"http://127.0.0.1:{api_port}"
        status, order = request(
            "POST",
            f"{api}/api/v1/order",
            '{"market":"TATA_INR","price":"100.5","quantity":"10","side":"buy","user_id":"1"}',
        )
        assert status == 200, order
        assert order["status"] == "new" and order["price"] == "100.5"
        status, depth = request("GET", f"{api}/api/v1/depth?symbol=TATA_INR")
        assert status == 200 and depth["bids"] == [["100.5", "10"]], depth
        status, open_orders = request("GET", f"{api}/api/v1/order/open?market=TATA_INR&user_id=1")
        assert status == 200 and [o["order_id"] for o in open_orders] == [order["order_id"]]

        state = json.loads((repo / "var" / "stack.json").read_text())
        ports = [api_port, ws_port, state["redis_port"], state["postgres_port"]]
        assert all(port_open(port) for port in ports)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise

    log_text = log_path.read_text(errors="replace")
    # `just` reports a Ctrl-C'd recipe the conventional way (128 + SIGINT); the stack itself
    # logs a clean stop.
    assert up.returncode in (0, 128 + signal.SIGINT), log_text[-3000:]
    assert "stopped" in log_text
    deadline = time.monotonic() + 10
    while processes_under(repo) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(repo) == []
    assert not any(port_open(port) for port in ports)
