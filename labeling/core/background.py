"""Threads that the worker process (``manage.py worker``) hosts beside its runs.

An app whose work belongs in the worker rather than in web requests (webhook deliveries)
registers a factory from its ``AppConfig.ready()``; the worker starts one of each, stops them
when it stops, and never imports the apps above it to do so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class BackgroundService(Protocol):
    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


Factory = Callable[[threading.Event], BackgroundService]  # called with the worker's "stopping"

_SERVICES: dict[str, Factory] = {}


def background_register(*, name: str, factory: Factory) -> None:
    _SERVICES[name] = factory


def background_services() -> dict[str, Factory]:
    """Every registered service, by name, in registration order."""
    return dict(_SERVICES)
