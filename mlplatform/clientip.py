"""The client's address, believing X-Forwarded-For only from configured proxies.

Anyone can send `X-Forwarded-For: 1.2.3.4`; a throttle keyed on it is a throttle the attacker
resets at will. The header counts only when the direct peer (REMOTE_ADDR) is in
`settings.TRUSTED_PROXIES`; then the list is read from the right (each proxy appends the
address it received the request from) and the first hop that is not a trusted proxy is the
client. Entries left of it are whatever the client wrote: ignored.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(text: str) -> IP | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IP) -> bool:
    return any(ip in net for net in settings.TRUSTED_PROXIES if ip.version == net.version)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text ("unknown" when the peer is not an IP address)."""
    peer = _parse(str(request.META.get("REMOTE_ADDR") or ""))
    if peer is None:
        return "unknown"
    if not _trusted(peer):
        return str(peer)
    hops = [h for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if (h := part.strip())]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            # Our proxy wrote every entry right of here, so this one came from the client:
            # the client is the last hop we could trust to be real.
            return str(peer)
        if not _trusted(ip):
            return str(ip)
        peer = ip
    return str(peer)  # every hop is a proxy of ours: the left-most is the best we know


def client_bucket(address: str) -> str:
    """What one client controls: its IPv4 address, or its IPv6 /64 (an end site's usual prefix,
    so cycling through one's own 2^64 addresses does not reset a throttle)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
