"""Servers and clients for the outbound-policy attacks: real sockets on loopback, nothing else."""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field

import requests

from accounts.services import token_create


def teredo(server: str, client: str, port: int = 40000) -> str:
    """A Teredo address (RFC 4380): server in clear, client port and address obfuscated."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (port ^ 0xFFFF) << 32 | (int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF)
    return str(ipaddress.IPv6Address(value))


# Every way we know to write "inside": loopback, private, link-local, CGNAT, metadata, multicast,
# broadcast, unspecified, in decimal / octal / hex / short forms, and wrapped in IPv6.
INTERNAL_HOSTS = [
    "127.0.0.1",
    "127.1",
    "127.0.0.2",
    "0.0.0.0",  # noqa: S104 - an address under attack, not one we bind
    "0",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "0x7f.1",
    "0177.0.0.1",
    "10.0.0.1",
    "10.255.255.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:0:7f00:1]",  # SIIT
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::1]",  # 6to4 of the metadata address
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[64:ff9b:1::a00:1]",  # local-use NAT64
    f"[{teredo('93.184.216.34', '127.0.0.1')}]",  # Teredo, client loopback
    f"[{teredo('10.0.0.1', '93.184.216.34')}]",  # Teredo, server private
    "[::7f00:1]",  # IPv4-compatible (deprecated)
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fec0::1]",  # site-local (deprecated)
    "[ff02::1]",
    "localhost",
    "LOCALHOST.",
    "metadata.google.internal",
    "private.test",  # a name resolving to 10.0.0.5 (fake DNS)
    "mixed.test",  # a name whose answers mix a public and a loopback address
]


def fake_internal_names(fake_dns) -> None:
    fake_dns["private.test"] = ["10.0.0.5"]
    fake_dns["mixed.test"] = ["93.184.216.34", "127.0.0.1"]


class Remote:
    """An API client over real HTTP against the live server, with a user's token."""

    def __init__(self, base: str, user=None):
        self.base = base
        self.session = requests.Session()
        if user is not None:
            _, key = token_create(user=user)
            self.session.headers["Authorization"] = f"Token {key}"

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kwargs)

    def patch(self, path: str, body=None, **kwargs) -> requests.Response:
        return self.session.patch(self.base + path, json=body, timeout=30, **kwargs)


@dataclass
class TcpServer:
    """A loopback TCP server: `mode` "silent" (accepts, never answers), "garbage" (answers
    bytes that are no protocol), "forward" (relays to `target`). `hits` counts connections."""

    mode: str
    target: tuple[str, int] | None = None
    host: str = "127.0.0.1"
    hits: int = 0
    sock: socket.socket = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self):
        conns = []
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conns.append(conn)
            if self.mode == "garbage":
                try:
                    conn.sendall(b"\x00\xffSSH-9.9 not what you expected\r\n" * 4)
                except OSError:
                    pass
            elif self.mode == "forward":
                threading.Thread(target=self._relay, args=(conn,), daemon=True).start()
        for conn in conns:
            conn.close()

    def _relay(self, conn: socket.socket):
        upstream = socket.create_connection(self.target, timeout=10)

        def pipe(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        pipe(upstream, conn)

    def close(self):
        self._stop.set()
        self.sock.close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
