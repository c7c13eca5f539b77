"""Surfaces: the adapters that speak one dialect of the exchange over the same records.

A surface parses requests into commands and queries (:mod:`exchange.models`), calls the one
:class:`~exchange.surfaces.backend.Backend`, renders the replies in its own shapes and maps error
codes to its own — nothing else. Two surfaces speak today, each over REST and WebSocket: the
native one (:mod:`.native`: ``/api/v1`` and ``/ws``) and Backpack's (:mod:`.backpack`:
``/backpack``). What the REST sides share lives here once, so that a third surface adds its names
and shapes and nothing more:

- :mod:`.http`            the request and response records every REST handler sees
- :mod:`.state`           what handlers are given (config, backend, credentials, rate limits)
- :mod:`.failures`        the error ladder, driven by a surface's code map; rate-limit refusals
- :mod:`.params`          bodies and query parameters read exactly (JSON, markets, history)
- :mod:`.commands`        request fields → engine commands, money read into integer steps
- :mod:`.limits`          page sizes and batch size
- :mod:`.batch`           batch placement: each order placed or refused on its own
- :mod:`.signing_window`  the signing clock and the timestamp window every signature checks
- :mod:`.backend`         the engine and the history behind every surface

The programs that serve them own the I/O: :mod:`exchange.api` (ASGI router, app factory, server,
operations and admin routes) mounts the REST routes, :mod:`exchange.ws` serves the WebSocket
sides. Surfaces never import a program, nor the engine (an order's check against its market is
:mod:`exchange.validation`'s), nor another surface's modules.

The shared command builder reads the contract's native field names; Backpack translates its
names into those first (:mod:`.backpack.translate`). That keeps one reader of money and one
order check for both, at the price of one small dict per Backpack order.
"""
