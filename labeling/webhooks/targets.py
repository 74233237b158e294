"""Where a webhook may point: http(s) only, and by default only at public addresses.

A webhook makes the server send requests to a URL a project admin chose; without this check
it would be a way to reach the machine's own services or the private network (SSRF). The
check runs when a webhook is saved (a clear 400) and again before each delivery (DNS may
have changed since), and the delivery connects to the very address that was checked
(``target_resolve``): a name that resolves to a public address for the check and to
127.0.0.1 a moment later (DNS rebinding) cannot steer the request inside.
``LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true`` lifts the check, for receivers on the same host or
network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings

from labeling.core.errors import ValidationFailed

SCHEMES = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where one request goes: the checked ``address`` to connect to, and what the request
    says (``host`` for the Host header, the TLS server name and the certificate check)."""

    url: str
    scheme: str  # http or https
    host: str  # the name in the URL (an IP literal stays one), without brackets
    host_header: str  # host[:port] as written in the URL
    port: int
    path: str  # path and query: what goes on the request line
    # What the check approved: the connection goes here and nowhere else (None: not resolved).
    address: Address | None = None
    username: str | None = None
    password: str | None = None


def target_check(url: str) -> str:
    """The URL, stripped, if a webhook may send to it; ``ValidationFailed`` naming why not.
    (With private addresses allowed, the name is not resolved: it may exist only where the
    workers run.)"""
    return target_resolve(url, resolve_host=not settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE).url


def target_resolve(url: str, *, resolve_host: bool = True) -> Target:
    """Check ``url`` and resolve it once, to the address a delivery must connect to."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"url is not a valid URL: {exc}", code="url_invalid") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValidationFailed(
            f"url must start with http:// or https://, got {url[:100]!r}", code="url_scheme"
        )
    host = parts.hostname
    if not host:
        raise ValidationFailed("url has no host name", code="url_invalid")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port) if resolve_host else []
    if resolve_host and not settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public(address):
                raise ValidationFailed(
                    f"url host {host!r} resolves to {address}, a loopback, private or "
                    "otherwise non-public address; webhooks may only call public addresses "
                    "unless the server sets LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true",
                    code="url_private",
                    details={"host": host, "address": str(address)},
                )
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        host_header=parts.netloc.rpartition("@")[2],
        port=port,
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        address=addresses[0] if addresses else None,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError) as exc:  # gaierror, idna, NUL bytes
        raise ValidationFailed(
            f"url host {host!r} cannot be resolved ({exc})", code="url_unresolvable"
        ) from None
    if not infos:
        raise ValidationFailed(f"url host {host!r} has no address", code="url_unresolvable")
    # The scope id of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def is_public(address: Address) -> bool:
    # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel: judge the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
