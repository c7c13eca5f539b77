"""The trading page's files: plain HTML, CSS and JS modules in ``static/``.

A package only so that both sides name the one directory: the API serves it
(:mod:`exchange.api.routes_web`) and a developer tool vendors its chart library into
``static/vendor/`` (:mod:`exchange.dev.webassets`); the program never runs that build step.
"""

from pathlib import Path

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
