"""The REST API program (``bin/api``): Quart-Trio on hypercorn's trio worker.

Modules, in the order a request meets them:

- :mod:`.server`    settings → hypercorn (one worker in-process, or N worker processes)
- :mod:`.app`       the app factory; opens the gateway, history reader and credential store,
                    and mounts every surface's routes
- :mod:`.router`    :class:`~.router.Router`: ASGI dispatch, each route's error shape, metrics
- ``routes_*``      what is the program's own: admin (``X-ADMIN-TOKEN``), operations, the page;
                    :mod:`.openapi`, :mod:`.metrics`

The surfaces' handlers, the native ``/api/v1`` and Backpack's ``/backpack``, are
:mod:`exchange.surfaces`'; this package mounts them and never the other way round.
"""

from exchange.api.app import create_app

__all__ = ["create_app"]
