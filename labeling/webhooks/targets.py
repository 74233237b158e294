"""Where a webhook may point: http(s) only, and by default only at public addresses.

A webhook makes the server send requests to a URL a project admin chose; without this check
it would be a way to reach the machine's own services or the private network (SSRF). The
check runs when a webhook is saved (a clear 400) and again before each delivery (DNS may
have changed since). ``LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true`` lifts it, for receivers on the
same host or network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from labeling.core.errors import ValidationFailed

SCHEMES = ("http", "https")


def target_check(url: str) -> str:
    """The URL, stripped, if a webhook may send to it; ``ValidationFailed`` naming why not."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"url is not a valid URL: {exc}", code="url_invalid") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValidationFailed(
            f"url must start with http:// or https://, got {url[:100]!r}", code="url_scheme"
        )
    host = parts.hostname
    if not host:
        raise ValidationFailed("url has no host name", code="url_invalid")
    if settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE:
        return url
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    for address in resolve(host, port):
        if not is_public(address):
            raise ValidationFailed(
                f"url host {host!r} resolves to {address}, a loopback, private or otherwise "
                "non-public address; webhooks may only call public addresses unless the "
                "server sets LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true",
                code="url_private",
                details={"host": host, "address": str(address)},
            )
    return url


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError) as exc:  # gaierror, idna, NUL bytes
        raise ValidationFailed(
            f"url host {host!r} cannot be resolved ({exc})", code="url_unresolvable"
        ) from None
    # The scope id of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel: judge the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
