"""Outbound HTTP to user-supplied URLs (dataset import, webhooks) without SSRF.

Label Studio shipped three SSRF advisories on URL import (CVE-2022-36551, CVE-2023-47116 via
DNS rebinding, CVE-2025-25297). Here:
- only http and https, no credentials in the URL;
- the host is resolved once, *every* address it resolves to must be public (no loopback,
  private, link-local, metadata, multicast, reserved, unspecified; IPv4-mapped IPv6 unwrapped),
  whatever its spelling (decimal `2130706433`, octal, `[::1]`, `0x7f.1`) since we check the
  resolved addresses, not the text;
- the connection goes to the checked address (pinned; the Host header and TLS SNI keep the
  name), so a second DNS answer cannot swap in an internal address;
- redirects are followed by hand, each hop checked again, at most 5;
- a size limit while streaming and a total time limit.
`settings.URL_FETCH_ALLOWED_HOSTS` lists hosts (exact names) allowed to resolve to private
addresses, for an intranet data source.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class UnsafeURL(ValueError):
    """The URL is not allowed (scheme, host, address); the message says why."""


class FetchFailed(Exception):
    """The request was allowed but did not succeed (network, status, size, time)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


def _address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(url: str, *, allow_hosts: list[str] | None = None) -> tuple[str, str, int, str]:
    """Validate a URL and resolve it; returns (scheme, host, port, pinned_ip)."""
    if not isinstance(url, str) or len(url) > 2000:
        raise UnsafeURL("The URL is missing or too long.")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("Only http and https URLs are allowed.")
    if parts.username or parts.password:
        raise UnsafeURL("Credentials in the URL are not allowed.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURL("The URL has no host.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("The URL's port is not valid.") from None
    allowed = {h.lower() for h in (allow_hosts if allow_hosts is not None else settings.URL_FETCH_ALLOWED_HOSTS)}
    if host in METADATA_HOSTS and host not in allowed:
        raise UnsafeURL("Cloud metadata addresses are not allowed.")
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"The host {host!r} does not resolve.") from None
    addresses = []
    for info in infos:
        addr = info[4][0].split("%")[0]
        ip = ipaddress.ip_address(addr)
        if host not in allowed and not _address_allowed(ip):
            raise UnsafeURL(f"The host {host!r} resolves to a private, loopback or reserved address ({ip}).")
        addresses.append(str(ip))
    if not addresses:
        raise UnsafeURL(f"The host {host!r} does not resolve.")
    return scheme, host, port, addresses[0]


def safe_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    allow_hosts: list[str] | None = None,
    max_redirects: int = 5,
) -> Response:
    """One HTTP request to a user-supplied URL, with every safety check above."""
    timeout = timeout or settings.URL_FETCH_TIMEOUT_SECONDS
    max_bytes = max_bytes or settings.URL_FETCH_MAX_BYTES
    deadline = time.monotonic() + timeout
    for _ in range(max_redirects + 1):
        scheme, host, port, ip = check_url(url, allow_hosts=allow_hosts)
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        pool_kwargs = {"timeout": urllib3.Timeout(connect=min(10.0, timeout), read=timeout), "retries": False}
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(ip, port, server_hostname=host, assert_hostname=host, **pool_kwargs)
        else:
            pool = urllib3.HTTPConnectionPool(ip, port, **pool_kwargs)
        request_headers = {
            "Host": host if port in (80, 443) else f"{host}:{port}",
            "User-Agent": "mlplatform/1.0",
            **(headers or {}),
        }
        try:
            resp = pool.urlopen(
                method,
                path,
                body=body,
                headers=request_headers,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise FetchFailed(f"Could not reach {host}: {type(exc).__name__}") from None
        try:
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                if resp.status == 303:
                    method, body = "GET", None
                continue
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchFailed(f"The response is {int(declared)} bytes; the limit is {max_bytes}.")
            chunks, size = [], 0
            while True:
                # read1 returns whatever arrived (one recv at most), so the total deadline is
                # checked between small reads: `stream(n)` waits for n bytes, and a server
                # trickling a byte per read-timeout could hold the download open indefinitely.
                chunk = resp.read1(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchFailed(f"The response is larger than the limit of {max_bytes} bytes.")
                if time.monotonic() > deadline:
                    raise FetchFailed(f"The download took longer than {timeout:.0f} s.")
                chunks.append(chunk)
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, b"".join(chunks), url)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchFailed(f"The download from {host} failed: {type(exc).__name__}") from None
        finally:
            resp.release_conn()
            pool.close()
    raise FetchFailed(f"More than {max_redirects} redirects.")
