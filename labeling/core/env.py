"""Typed readers for environment variables, used once by ``labeling/settings.py``.

Each helper fails loudly with ``ImproperlyConfigured`` naming the variable and the bad value,
so a typo in a deployment is caught at start-up, not at the first request.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, above: float | None = None, at_most: float | None = None
) -> float:
    """A number; ``above`` / ``at_most``: the open lower and the closed upper bound."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if (above is not None and not value > above) or (at_most is not None and value > at_most):
        low = "" if above is None else f" above {above}"
        high = "" if at_most is None else f" at most {at_most}"
        both = " and" if low and high else ""
        raise ImproperlyConfigured(f"{name} must be{low}{both}{high}, got {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


TrustedProxies = int | tuple[IPv4Network | IPv6Network, ...]


def env_trusted_proxies(name: str) -> TrustedProxies:
    """The proxies whose X-Forwarded-For entries are believed: a count of proxies in front
    (``1``: the last entry is the client), or networks (``10.0.0.0/8,fd00::/8``: hops in them
    are skipped from the right). Unset, empty or ``0``: none, REMOTE_ADDR is the client."""
    raw = os.environ.get(name, "").strip()
    if raw.isdigit():
        return int(raw)
    if not raw:
        return 0
    networks = []
    for part in raw.split(","):
        try:
            networks.append(ip_network(part.strip()))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} must be a count of proxies (e.g. 1) or networks such as "
                f"10.0.0.0/8,fd00::/8; {part.strip()!r} is neither: {exc}"
            ) from None
    return tuple(networks)


def env_rate(name: str, default: str) -> str:
    """A throttle rate as DRF writes it: ``<count>/<period>``, period s, min, hour or day."""
    value = os.environ.get(name, default).strip()
    count, _, period = value.partition("/")
    if not (count.isdigit() and period[:1] in ("s", "m", "h", "d")):
        raise ImproperlyConfigured(f"{name} must be a rate like 20/min or 10/hour, got {value!r}")
    return value
