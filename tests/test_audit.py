"""The audit's comparison and its table (pure), and ``just audit``'s exit status over HTTP."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exchange import auditctl
from exchange.audit import audit_json, audit_table, problems
from exchange.markets import load_config
from exchange.models import AssetTotals, LedgerAudit

CONFIG = load_config()
BALANCED = {"INR": AssetTotals(1_000, 300, 690, 10), "TATA": AssetTotals(50, 0, 50, 0)}


def test_balanced_parts_that_agree_are_ok() -> None:
    engine = LedgerAudit(9, 7, BALANCED)
    history = LedgerAudit(7, 7, BALANCED)
    assert problems(engine, history) == []
    report = audit_json(CONFIG, engine, history)
    assert report["ok"] and report["engine"]["assets"]["INR"] == {
        "deposits": "0.1",
        "withdrawals": "0.03",
        "users": "0.069",
        "fees": "0.001",
        "difference": "0",
    }
    table = audit_table(report)
    assert table.splitlines()[0].split() == [
        "part", "seq", "asset", "deposits", "withdrawals", "users", "fees", "difference",
    ]  # fmt: skip
    assert table.rstrip().endswith("ok")


def test_each_problem_names_its_asset_and_its_size() -> None:
    engine = LedgerAudit(9, 7, {**BALANCED, "INR": AssetTotals(1_000, 300, 695, 10)})
    history = LedgerAudit(7, 7, {**BALANCED, "TATA": AssetTotals(50, 0, 48, 0)})
    assert problems(engine, history) == [
        "engine INR: difference -5",
        "history TATA: difference 2",
        "history INR: users differs from the engine's by -5",
        "history TATA: users differs from the engine's by -2",
    ]
    report = audit_json(CONFIG, engine, history)
    assert not report["ok"] and report["engine"]["assets"]["INR"]["difference"] == "-0.0005"
    assert "NOT OK" in audit_table(report)


def test_a_history_behind_the_engine_is_not_ok() -> None:
    engine = LedgerAudit(9, 8, BALANCED)
    assert problems(engine, LedgerAudit(7, 7, BALANCED)) == [
        "history: behind the engine (ledger at seq 7, last movement at seq 8)"
    ]


@pytest.mark.parametrize(("ok", "status"), [(True, 0), (False, 1)])
def test_the_command_exits_1_when_anything_is_off(ok: bool, status: int, capsys) -> None:
    engine = LedgerAudit(9, 7, BALANCED if ok else {"INR": AssetTotals(1, 0, 0, 0)})
    report = audit_json(CONFIG, engine, LedgerAudit(7, 7, engine.assets))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            allowed = self.headers.get("X-ADMIN-TOKEN") == "t0ken"
            body = json.dumps(report if allowed else {"error": {}}).encode()
            self.send_response(200 if allowed else 403)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert auditctl.run(url, "t0ken") == status
        assert ("NOT OK" in capsys.readouterr().out) is not ok
        assert auditctl.run(url, "wrong") == 2
    finally:
        server.shutdown()
        server.server_close()
    assert auditctl.run(url, "t0ken") == 2  # nothing listens any more
