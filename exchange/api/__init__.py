"""The REST API program (``bin/api``): Quart-Trio on hypercorn's trio worker.

Modules, in the order a request meets them:

- :mod:`.server`    settings → hypercorn (one worker in-process, or N worker processes)
- :mod:`.app`       the app factory; opens the gateway, history reader and credential store
- :mod:`.common`    :class:`~.common.Router` (ASGI dispatch, error shape, metrics), ``Req``, ``Api``
- :mod:`.auth`      API-key signatures (:mod:`exchange.signing`), dev user ids, the admin token
- :mod:`.ratelimit` pure token buckets (per key/user, per IP for public routes)
- :mod:`.parsing`   pure request → command functions; every refusal a precise RequestError
- :mod:`.backend`   what every surface calls: engine commands/queries, PostgreSQL history
- ``routes_*``      the native ``/api/v1`` handlers; :mod:`.openapi`, :mod:`.metrics`

A second surface (``/backpack``) adds its own handlers and router over the same
:class:`~.backend.Backend` and :mod:`.parsing` records.
"""

from exchange.api.app import create_app

__all__ = ["create_app"]
