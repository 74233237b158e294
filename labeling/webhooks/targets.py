"""Where a webhook may point: http(s) only, and by default only at public addresses.

A webhook makes the server send requests to a URL a project admin chose; without this check
it would be a way to reach the machine's own services or the private network (SSRF). The
check runs when a webhook is saved (a clear 400) and again before each delivery (DNS may
have changed since), and the delivery connects to the very address that was checked
(``target_resolve``): a name that resolves to a public address for the check and to
127.0.0.1 a moment later (DNS rebinding) cannot steer the request inside.
``LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true`` lifts the check, for receivers on the same host or
network.

An IPv6 address that carries an IPv4 address (IPv4-mapped and IPv4-compatible, NAT64 with
the well-known and the local-use prefix, 6to4, Teredo) is judged by the IPv4 address(es) it
carries, with the IPv4 rule: a translator or tunnel would deliver the request there. Port 0
is refused. A URL's credentials are kept for the deliveries, but every answer shows them
masked (``target_display``).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from django.conf import settings

from labeling.core.errors import ValidationFailed

SCHEMES = ("http", "https")
MASK = "***"  # what the answers show instead of a URL's password

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052 translators: the well-known prefix is always a /96 (the IPv4 address in the last
# 32 bits); the local-use /48 (RFC 8215) may be cut at /48, /56, /64 or /96.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291), ::1 included
# Where each RFC 6052 prefix length puts the IPv4 address's four bytes (byte 8, the
# "u" octet, is skipped) and where its zero suffix starts.
_RFC6052 = {48: ((6, 7, 9, 10), 11), 56: ((7, 9, 10, 11), 12), 64: ((9, 10, 11, 12), 13)}


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
    target = target_resolve(url, resolve_host=not settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE)
    if MASK in (target.username, target.password):
        # A URL copied from an answer: saved, it would replace the real password with ***.
        raise ValidationFailed(
            "url has the masked credentials the answers show (***); send the real ones",
            code="url_masked",
        )
    return target.url


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
    if port == 0:
        # Not a port anything listens on; and "or 80" below would quietly call port 80.
        raise ValidationFailed("url port 0 is not a port a webhook can call", code="url_port")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port) if resolve_host else []
    if resolve_host and not settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public(address):
                raise _private(host, address)
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


def _private(host: str, address: Address) -> ValidationFailed:
    carried = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []
    also = f" (it carries {', '.join(map(str, carried))})" if carried else ""
    return ValidationFailed(
        f"url host {host!r} resolves to {address}{also}, a loopback, private or otherwise "
        "non-public address; webhooks may only call public addresses unless the server sets "
        "LABELLOOP_WEBHOOK_ALLOW_PRIVATE=true",
        code="url_private",
        details={"host": host, "address": str(address), "carries": [str(a) for a in carried]},
    )


def target_display(url: str) -> str:
    """``url`` as the answers show it: a password replaced by ``***`` (``user:***@host``), a
    lone user name too (``***@host``: in ``https://TOKEN@host`` it is the secret)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


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
    """Globally reachable unicast. An IPv6 address that carries IPv4 addresses is judged by
    them alone (::ffff:127.0.0.1 is 127.0.0.1 to the kernel; 64:ff9b::7f00:1 is 127.0.0.1 to
    a NAT64 gateway), not by the IPv6 tables, whose verdict on these prefixes differs
    between Python releases."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        if carried:
            return all(is_public(inner) for inner in carried)
    return address.is_global and not address.is_multicast


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``address`` carries: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``; in ``64:ff9b:1::/48`` each
    RFC 6052 layout the bits fit), 6to4 (``2002::/16``), Teredo (``2001::/32``: its server,
    and its client, stored inverted). Empty for any other address."""
    carried = []
    if address.ipv4_mapped is not None:
        carried.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.extend(address.teredo)  # (server, client), the client already un-inverted
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL:
        carried.append(ipaddress.IPv4Address(address.packed[12:]))
    if address in _NAT64_LOCAL:
        packed = address.packed
        for places, suffix in _RFC6052.values():
            # A layout fits when the "u" octet and the suffix after the address are zero.
            if packed[8] == 0 and not any(packed[suffix:]):
                carried.append(ipaddress.IPv4Address(bytes(packed[i] for i in places)))
    return carried
