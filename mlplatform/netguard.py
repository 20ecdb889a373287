"""The one outbound policy: every connection the platform makes for a user goes through here.

URL import, webhooks (project, deployment, alert, review) and SQL connections call this module
and nothing else opens a socket to a user-chosen destination. Label Studio shipped three SSRF
advisories on URL import (CVE-2022-36551, CVE-2023-47116 via DNS rebinding, CVE-2025-25297);
an attack on this platform found SQL connections open to loopback, unix sockets and the
platform's own database. The policy, for every destination:

- the host is resolved once and *every* address it resolves to must be public (no loopback,
  private, link-local, CGNAT, site-local, multicast, reserved, unspecified), whatever the
  spelling (`127.1`, `2130706433`, `0x7f.1`, `017700000001`, `[::1]`): we check resolved
  addresses, not text. IPv4 addresses wrapped in IPv6 are unwrapped and checked as IPv4:
  IPv4-mapped `::ffff:0:0/96`, SIIT `::ffff:0:0:0/96`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`
  and Teredo `2001::/32` (server and client); local-use NAT64 `64:ff9b:1::/48` and the
  deprecated IPv4-compatible `::/96` are refused outright;
- `URL_FETCH_ALLOWED_HOSTS` (exact host names, set by operators) may resolve to private
  addresses, for an intranet source;
- never the platform's own database server, broker or object storage endpoint, allowlisted or not: their resolved
  address and port (any loopback address counts as the same machine) are refused, and a
  PostgreSQL session is checked after connecting (same cluster and database: closed at once);
- the connection goes to the checked address (pinned: HTTP keeps the name for the Host header
  and TLS, psycopg gets `hostaddr`), so a second DNS answer cannot swap in an internal address;
- short connect timeouts, and one generic error in the same timing class for every failure
  before an answer (refused, filtered, not the expected protocol, credentials refused), so the
  platform cannot be used as a port scanner.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
TEREDO = ipaddress.ip_network("2001::/32")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")


class Refused(ValueError):
    """The destination is not allowed (scheme, host, address, parameter); the message says why."""


UnsafeURL = Refused  # the name its HTTP callers have always caught


class FetchFailed(Exception):
    """The destination was allowed but the exchange did not succeed (network, status, size, time)."""


class ConnectFailed(FetchFailed):
    """No answer from the destination: one message whatever the reason (see the module doc)."""


# --- addresses ----------------------------------------------------------------------------------


def embedded_ipv4(ip: IP) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 transition form carries, or None for plain IPv6 / IPv4."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in SIIT or ip in NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in SIX_TO_FOUR:
        return [ip.sixtofour]
    if ip in TEREDO:
        server, client = ip.teredo
        return [server, client]
    return None


def address_is_public(ip: IP) -> bool:
    """True for an address any stranger on the internet could also reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL or (ip in IPV4_COMPATIBLE and int(ip) > 1) or ip.is_site_local:
            return False
        wrapped = embedded_ipv4(ip)
        if wrapped is not None:
            return all(address_is_public(inner) for inner in wrapped)
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _same_machine(ip: IP) -> bool:
    inner = embedded_ipv4(ip) or [ip]
    return any(a.is_loopback or a.is_unspecified for a in inner)


def _resolve(host: str, port: int) -> list[IP]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    seen: list[IP] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in seen:
            seen.append(ip)
    return seen


# --- the platform's own services ----------------------------------------------------------------

_own_lock = threading.Lock()
_own_cache: tuple[float, list[tuple[str, IP, int]]] | None = None


def _own_endpoints() -> list[tuple[str, IP, int]]:
    """(what, address, port) of the platform's database servers, broker and object storage
    endpoint (S3_ENDPOINT_URL), resolved (5 min cache)."""
    global _own_cache
    with _own_lock:
        if _own_cache is not None and time.monotonic() - _own_cache[0] < 300:
            return _own_cache[1]
        found: list[tuple[str, IP, int]] = []
        for db in settings.DATABASES.values():
            host = str(db.get("HOST") or "")
            if host and not host.startswith("/"):
                port = int(db.get("PORT") or 5432)
                found += [("database", ip, port) for ip in _resolve(host, port)]
        for url in {getattr(settings, "REDIS_URL", None), getattr(settings, "CELERY_BROKER_URL", None)}:
            parts = urlsplit(url or "")
            if parts.scheme in ("redis", "rediss", "amqp", "amqps") and parts.hostname:
                port = parts.port or {"redis": 6379, "rediss": 6379}.get(parts.scheme, 5672)
                found += [("broker", ip, port) for ip in _resolve(parts.hostname, port)]
        endpoint = urlsplit(str(settings.STORAGES["default"].get("OPTIONS", {}).get("endpoint_url") or ""))
        if endpoint.scheme in ("http", "https") and endpoint.hostname:  # S3-compatible object storage
            port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
            found += [("object storage", ip, port) for ip in _resolve(endpoint.hostname, port)]
        _own_cache = (time.monotonic(), found)
        return found


def own_service(ip: IP, port: int) -> str | None:
    """'database', 'broker' or 'object storage' when (ip, port) reaches one of the platform's own services."""
    for what, own_ip, own_port in _own_endpoints():
        if port == own_port and (ip == own_ip or (_same_machine(ip) and _same_machine(own_ip))):
            return what
    return None


# --- destinations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A host and port whose addresses passed the policy; connect to `ip`, never re-resolve."""

    host: str
    port: int
    ip: str
    addresses: tuple[str, ...]


def _allowlist(allow_hosts: Iterable[str] | None) -> set[str]:
    names = settings.URL_FETCH_ALLOWED_HOSTS if allow_hosts is None else allow_hosts
    return {h.strip().rstrip(".").lower() for h in names}


def check_host(
    host: str,
    port: int,
    *,
    allow_hosts: Iterable[str] | None = None,
    trusted: bool = False,
    resolve_ok: bool = False,
    dbname: str | None = None,
) -> Destination | None:
    """Resolve `host` and apply the policy; returns where to connect.

    `trusted`: an operator named this host (settings), so private addresses are allowed; the
    platform's own services never are. `resolve_ok`: a name that does not resolve (yet) is not
    an error (returns None): used when saving a setting, the connection checks it again.
    `dbname`: a PostgreSQL destination; on the platform's database server only the platform's
    own databases are refused (another database there is the operator's to allowlist).
    """
    host = (host or "").strip().rstrip(".").lower()
    if not host:
        raise Refused("The address has no host.")
    allowed = trusted or host in _allowlist(allow_hosts)
    if host in METADATA_HOSTS and not allowed:
        raise Refused("Cloud metadata addresses are not allowed.")
    addresses = _resolve(host, port)
    if not addresses:
        if resolve_ok:
            return None
        raise Refused(f"The host {host!r} does not resolve.")
    for ip in addresses:
        what = own_service(ip, port)
        if what == "database" and dbname is not None and dbname not in _platform_database_names():
            what = None
        if what is not None:
            raise Refused(f"{host}:{port} is the platform's own {what}: never reachable.")
        if not allowed and not address_is_public(ip):
            raise Refused(
                f"The host {host!r} resolves to a private, loopback or reserved address ({ip}); "
                "an operator can allow it by name in URL_FETCH_ALLOWED_HOSTS."
            )
    return Destination(host, port, str(addresses[0]), tuple(str(a) for a in addresses))


def _pad_failure(started: float, floor: float) -> None:
    """Every failure before an answer takes at least `floor` seconds: no timing oracle."""
    remaining = floor - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)


def connect_timeout() -> float:
    return float(settings.OUTBOUND_CONNECT_TIMEOUT_SECONDS)


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


def url_parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials; Refused otherwise."""
    if not isinstance(url, str) or not url.strip() or len(url) > 2000:
        raise Refused("The URL is missing or too long (at most 2000 characters).")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("Only http and https URLs are allowed.")
    if parts.username or parts.password:
        raise Refused("Credentials in the URL are not allowed.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise Refused("The URL has no host.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise Refused("The URL's port is not valid.") from None
    return scheme, host, port


def check_url(url: str, *, allow_hosts: list[str] | None = None) -> tuple[str, str, int, str]:
    """Validate a URL and resolve it; returns (scheme, host, port, pinned_ip)."""
    scheme, host, port = url_parts(url)
    dest = check_host(host, port, allow_hosts=allow_hosts)
    if dest is None:  # only with resolve_ok, which is off here
        raise Refused(f"The host {host!r} does not resolve.")
    return scheme, host, port, dest.ip


def check_url_for_saving(url: str) -> str:
    """The checks that make sense when a URL is saved for later (a webhook): syntax, and the
    address policy when the name resolves now. Delivery checks again (DNS changes)."""
    _scheme, host, port = url_parts(url)
    check_host(host, port, resolve_ok=True)
    return url.strip()


def _response_body(resp: Any, max_bytes: int, deadline: float, timeout: float) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"The response is {int(declared)} bytes; the limit is {max_bytes}.")
    chunks, size = [], 0
    while True:
        # read1 returns whatever arrived (one recv at most), so the total deadline is checked
        # between small reads: `stream(n)` waits for n bytes, and a server trickling a byte per
        # read-timeout could hold the download open indefinitely.
        chunk = resp.read1(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"The response is larger than the limit of {max_bytes} bytes.")
        if time.monotonic() > deadline:
            raise FetchFailed(f"The download took longer than {timeout:.0f} s.")
        chunks.append(chunk)


def _open(method: str, url: str, body: bytes | None, headers: dict[str, str] | None, allow_hosts, timeout: float):
    """One pinned request (no redirect); returns (response, pool)."""
    scheme, host, port, ip = check_url(url, allow_hosts=allow_hosts)
    parts = urlsplit(url.strip())
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Each socket wait (connect, and every read) is short: a silent port and a closed one look
    # alike; the whole download is bounded by the caller's deadline.
    wait = min(connect_timeout(), timeout)
    pool_kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(connect=wait, read=wait), "retries": False}
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(ip, port, server_hostname=host, assert_hostname=host, **pool_kwargs)
    else:
        pool = urllib3.HTTPConnectionPool(ip, port, **pool_kwargs)
    named = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host
    request_headers = {
        "Host": named if port in (80, 443) else f"{named}:{port}",
        "User-Agent": "mlplatform/1.0",
        "Accept-Encoding": "identity",
        **(headers or {}),
    }
    started = time.monotonic()
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
    except urllib3.exceptions.HTTPError:
        pool.close()
        _pad_failure(started, wait)
        raise ConnectFailed(f"No HTTP answer from {host} (unreachable, or not an HTTP server).") from None
    return resp, pool


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
    """One HTTP request to a user-supplied URL, each redirect hop checked again, size and time bounded."""
    timeout = timeout or settings.URL_FETCH_TIMEOUT_SECONDS
    max_bytes = max_bytes or settings.URL_FETCH_MAX_BYTES
    deadline = time.monotonic() + timeout
    for _ in range(max_redirects + 1):
        resp, pool = _open(method, url, body, headers, allow_hosts, timeout)
        try:
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                if resp.status == 303:
                    method, body = "GET", None
                continue
            data = _response_body(resp, max_bytes, deadline, timeout)
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, data, url)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchFailed(f"The download from {urlsplit(url).hostname} failed: {type(exc).__name__}") from None
        finally:
            resp.release_conn()
            pool.close()
    raise FetchFailed(f"More than {max_redirects} redirects.")


# --- PostgreSQL -------------------------------------------------------------------------------

# Anything else libpq understands either reads a local file (passfile, service, sslkey, sslcert,
# sslrootcert, sslcrl...), overrides where to connect (hostaddr), or changes what the session
# may do (options): refused, never passed through.
PG_PARAMS = ("host", "port", "dbname", "user", "password", "sslmode", "application_name")
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*$")


@dataclass(frozen=True)
class PgTarget:
    """A parsed, checked PostgreSQL DSN (nothing in it reads a file or picks a socket)."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(default="", repr=False)
    sslmode: str = "prefer"
    application_name: str = "mlplatform"


def pg_parse(dsn: str) -> PgTarget:
    """Parse a URL or key=value DSN with libpq's own parser; Refused names the problem."""
    from psycopg import ProgrammingError, conninfo

    dsn = (dsn or "").strip()
    if not dsn or len(dsn) > 2000:
        raise Refused("Give a PostgreSQL DSN such as postgresql://user:password@host:5432/database.")
    if "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        if scheme.lower() not in PG_SCHEMES:
            raise Refused(f"Unsupported database {scheme!r}: only PostgreSQL (postgresql://user:password@host/db).")
        dsn = "postgresql://" + rest
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except ProgrammingError:
        raise Refused("Not a PostgreSQL DSN (e.g. postgresql://user:password@host:5432/database).") from None
    unknown = sorted(set(params) - set(PG_PARAMS))
    if unknown:
        raise Refused(f"The parameter {unknown[0]!r} is not allowed; use only {', '.join(PG_PARAMS)}.")
    host = str(params.get("host") or "").strip().lower()
    if not host or host.startswith(("/", "@")) or "," in host:
        raise Refused("Give one network host name or address: unix sockets and host lists are not allowed.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host.rstrip(".")) or len(host) > 253:
            raise Refused(f"{host!r} is not a valid host name.") from None
    port_text = str(params.get("port") or "5432")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise Refused("The port must be one number between 1 and 65535.")
    user = str(params.get("user") or "")
    if not user:
        raise Refused("Name the database user (postgresql://user:password@host/db).")
    dbname = str(params.get("dbname") or user)
    if "=" in dbname or "://" in dbname:
        raise Refused("The database name must be a plain name.")
    sslmode = str(params.get("sslmode") or "prefer")
    if sslmode not in PG_SSLMODES:
        raise Refused(f"sslmode must be one of {', '.join(PG_SSLMODES)}.")
    return PgTarget(
        host=host,
        port=int(port_text),
        dbname=dbname,
        user=user,
        password=str(params.get("password") or ""),
        sslmode=sslmode,
        application_name=str(params.get("application_name") or "mlplatform")[:60],
    )


def _platform_database_names() -> set[str]:
    return {str(db.get("NAME")) for db in settings.DATABASES.values() if db.get("NAME")}


def _check_platform_session(conn: Any) -> None:
    """Refuse a session on the platform's own database, however it was reached (another
    address of the same machine, a proxy): same postmaster start time and same database."""
    from django.db import connection as platform

    if platform.vendor != "postgresql":
        return
    probe = "SELECT pg_postmaster_start_time(), current_database()"
    with platform.cursor() as cursor:
        cursor.execute(probe)
        ours = cursor.fetchone()
    theirs = conn.execute(probe).fetchone()
    conn.rollback()
    if tuple(theirs) == tuple(ours):
        raise Refused("This is the platform's own database: never reachable.")


def pg_connect(target: PgTarget, *, trusted: bool = False, statement_timeout_s: float = 60.0) -> Any:
    """A read-only psycopg connection to `target`, pinned to the checked address.

    `trusted`: the DSN comes from the operator's settings (private addresses allowed). The
    platform's own database is refused by address, port and name before connecting, and by
    identity after. Every failure to connect raises the same ConnectFailed after the same delay.
    """
    import psycopg

    dest = check_host(target.host, target.port, trusted=trusted, dbname=target.dbname)
    if dest is None:  # only with resolve_ok, which is off here
        raise Refused(f"The host {target.host!r} does not resolve.")
    timeout = max(2, round(connect_timeout()))  # libpq treats anything under 2 s as 2 s
    kwargs: dict[str, Any] = {
        "host": dest.host,
        "hostaddr": dest.ip,  # libpq connects here and never resolves `host` (kept for TLS)
        "port": dest.port,
        "dbname": target.dbname,
        "user": target.user,
        "sslmode": target.sslmode,
        "application_name": target.application_name,
        "connect_timeout": timeout,
        "client_encoding": "UTF8",
        # Nothing of the worker's own identity: no ~/.pgpass, no client certificate, no Kerberos.
        "passfile": os.devnull,
        "sslcertmode": "disable",
        "gssencmode": "disable",
        "require_auth": "password,md5,scram-sha-256,none",
        "options": f"-c default_transaction_read_only=on -c statement_timeout={int(statement_timeout_s * 1000)}",
    }
    if target.password:
        kwargs["password"] = target.password
    if target.sslmode.startswith("verify"):
        kwargs["sslrootcert"] = "system"
    started = time.monotonic()
    try:
        conn = psycopg.connect(**kwargs)
    except psycopg.Error:
        _pad_failure(started, timeout)
        raise ConnectFailed(
            f"Could not connect to a PostgreSQL database at {dest.host}:{dest.port} "
            "(unreachable, not a PostgreSQL server, or the credentials were refused)."
        ) from None
    try:
        _check_platform_session(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def operator_connections(raw: Any) -> dict[str, dict[str, Any]]:
    """Validate the SQL_CONNECTIONS setting at start; raises ValueError naming the problem.

    `{"name": {"dsn": "postgresql://...", "projects": [3, 7]}}`: each connection belongs to the
    projects the operator names (`"projects": "*"` shares it with every project, on purpose).
    """
    if not isinstance(raw, dict):
        raise ValueError('must be a JSON object: {"name": {"dsn": "postgresql://...", "projects": [1, 2]}}')
    parsed: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 80:
            raise ValueError(f"connection name {name!r} must be 1 to 80 characters")
        if isinstance(entry, str):
            raise ValueError(
                f'{name!r}: connections now belong to the projects you name: write {{"dsn": "...", '
                '"projects": [project ids]}} (or "projects": "*" to share it with every project)'
            )
        if not isinstance(entry, dict) or set(entry) - {"dsn", "projects"} or "dsn" not in entry:
            raise ValueError(f'{name!r} must be {{"dsn": "postgresql://...", "projects": [ids] or "*"}}')
        projects = entry.get("projects")
        if projects != "*" and not (
            isinstance(projects, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in projects)
        ):
            raise ValueError(f'{name!r}: "projects" must be a list of project ids or "*"')
        try:
            pg_parse(entry["dsn"])
        except Refused as exc:
            raise ValueError(f"{name!r}: {exc}") from None
        parsed[name] = {"dsn": entry["dsn"], "projects": "*" if projects == "*" else frozenset(projects)}
    return parsed
