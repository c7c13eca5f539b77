"""Operations: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import trio

from exchange.api import metrics, openapi
from exchange.surfaces.http import Answer, Req, json_answer
from exchange.surfaces.native.errors import error_body
from exchange.surfaces.state import Api

READY_CHECK_TIMEOUT_S = 2.0


async def healthz(api: Api, req: Req) -> Any:
    """The process is up and answering."""
    return {"status": "ok"}


async def _check(name: str, probe, results: dict[str, str]) -> None:
    try:
        with trio.fail_after(READY_CHECK_TIMEOUT_S):
            ok = await probe()
        results[name] = "ok" if ok else "down"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        results[name] = f"down: {type(exc).__name__}"


async def readyz(api: Api, req: Req) -> Any:
    """Redis, the engine's heartbeat and PostgreSQL all reachable (503 otherwise).

    With a read replica, ``checks.replica`` says whether history reads go to it; a replica
    behind or down is no reason to be unready (the primary serves the reads), so it is reported
    but never makes the answer 503.
    """
    results: dict[str, str] = {}

    async def engine() -> bool:
        return api.backend.gateway.heartbeat() is not None

    async def postgres() -> bool:
        return await api.backend.history.ping()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_check, "redis", api.credentials.ping, results)
        nursery.start_soon(_check, "engine", engine, results)
        nursery.start_soon(_check, "postgres", postgres, results)
    down = sorted(name for name, state in results.items() if state != "ok")
    replica = api.backend.history.replica_state
    if replica is not None:
        results["replica"] = replica.describe()
    if down:
        body = error_body("SERVICE_UNAVAILABLE", f"not ready: {', '.join(down)} down")
        body["checks"] = results
        return json_answer(body, 503)
    return {"status": "ready", "checks": results}


async def prometheus(api: Api, req: Req) -> Any:
    data, content_type = metrics.render()
    return Answer(200, data, content_type)


async def openapi_json(api: Api, req: Req) -> Any:
    return openapi.document(api.config)


ROUTES = [
    ("/healthz", "GET", healthz),
    ("/readyz", "GET", readyz),
    ("/metrics", "GET", prometheus),
    ("/api/v1/openapi.json", "GET", openapi_json),
]
