"""Attacks on the outbound policy (mlplatform/netguard.py) through a running copy.

Every outbound path the platform opens for a user: URL import, SQL connections, webhooks. The
API is called over real HTTP (live server), jobs run on the real worker, every socket is real
(loopback only: nothing here needs the network; public-looking names come from `fake_dns`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from datasets.crypto import encrypt
from datasets.models import Dataset, DatasetVersion, SqlConnection
from mlplatform import netguard
from tests.datasets.helpers import wait_version
from tests.security.outbound_helpers import (
    INTERNAL_HOSTS,
    Remote,
    TcpServer,
    closed_port,
    fake_internal_names,
)

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def _platform_db() -> dict:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": int(db["PORT"] or 5432),
        "dbname": db["NAME"],
        "user": db["USER"],
    }


def test_url_import_refuses_every_spelling_of_an_internal_address(live_server, team, fake_dns, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = []
    fake_internal_names(fake_dns)
    editor = Remote(live_server.url, team.editor)
    leaks = []
    for host in INTERNAL_HOSTS:
        r = editor.post(
            "/api/v1/datasets/", {"project": team.project.pk, "name": "x", "source_url": f"http://{host}/d.csv"}
        )
        if r.status_code != 400 or "source_url" not in r.json().get("errors", {}):
            leaks.append((host, r.status_code, r.text[:200]))
    assert leaks == []
    assert not Dataset.objects.exists() and not DatasetVersion.objects.exists()


def test_sql_connection_refuses_every_spelling_of_an_internal_address(live_server, team, fake_dns, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = []
    fake_internal_names(fake_dns)
    owner = Remote(live_server.url, team.owner)
    leaks = []
    for host in INTERNAL_HOSTS:
        dsn = f"postgresql://reader:pw@{host}:5432/sales"
        r = owner.post("/api/v1/sql-connections/", {"project": team.project.pk, "name": "x", "dsn": dsn})
        if r.status_code != 400 or "dsn" not in r.json().get("errors", {}):
            leaks.append((host, r.status_code, r.text[:200]))
    assert leaks == []
    assert not SqlConnection.objects.exists()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u@db.example.invalid/x?host=/var/run/postgresql",  # unix socket by query parameter
        "postgresql://u@%2Fvar%2Frun%2Fpostgresql/x",  # unix socket spelled as the host
        "host=/tmp dbname=x user=u",  # key=value form
        "host=@abstract dbname=x user=u",  # abstract socket
        "postgresql://u@/x",  # no host: libpq's default socket
        "postgresql://u@db.example.invalid/x?hostaddr=127.0.0.1",  # address chosen by the user
        "postgresql://u@db.example.invalid/x?passfile=/etc/passwd",
        "postgresql://u@db.example.invalid/x?service=internal",
        "postgresql://u@db.example.invalid/x?servicefile=/etc/shadow",
        "postgresql://u@db.example.invalid/x?sslkey=/etc/ssl/private/server.key",
        "postgresql://u@db.example.invalid/x?sslcert=/etc/ssl/certs/server.pem",
        "postgresql://u@db.example.invalid/x?sslrootcert=/etc/passwd",
        "postgresql://u@db.example.invalid/x?sslcrl=/etc/passwd",
        "postgresql://u@db.example.invalid/x?options=-c%20default_transaction_read_only%3Doff",
        "postgresql://u@a.example.invalid,b.example.invalid/x",  # host lists
        "host=db.example.invalid port=5432,5433 dbname=x user=u",
        "postgresql://u@db.example.invalid:99999/x",
        "postgresql://db.example.invalid/x",  # no user: libpq would use the worker's OS user
        "postgresql://u@db.example.invalid/postgresql%3A%2F%2Fu%40127.0.0.1%2Fx",  # a DSN as the db name
        "postgresql://u@db.example.invalid/x?sslmode=verify-everything",
        "sqlite:////etc/passwd",
        "mysql://u@db.example.invalid/x",
        "mssql+pyodbc://u@db.example.invalid/x",
    ],
)
def test_dsn_cannot_pick_a_socket_read_a_file_or_choose_its_address(api, team, dsn):
    r = api("owner").post(
        "/api/v1/sql-connections/", {"project": team.project.pk, "name": "x", "dsn": dsn}, format="json"
    )
    assert r.status_code == 400, r.data
    assert "dsn" in r.data["errors"]
    assert not SqlConnection.objects.exists()


class RedirectHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_platform_database_and_broker_are_never_reachable_even_when_allowlisted(live_server, team, fake_dns, settings):
    from urllib.parse import urlsplit

    db = _platform_db()
    redis_port = urlsplit(settings.REDIS_URL).port or 6379
    fake_dns["alias.test"] = ["::1"]  # the same machine under another name and family
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost", "127.0.0.1", "alias.test", "redirector.test"]
    netguard._own_cache = None
    owner = Remote(live_server.url, team.owner)
    refused = []
    for host in ("127.0.0.1", "localhost", "[::1]", "alias.test"):
        dsn = f"postgresql://{db['user']}@{host}:{db['port']}/{db['dbname']}"
        r = owner.post("/api/v1/sql-connections/", {"project": team.project.pk, "name": "own", "dsn": dsn})
        refused.append((dsn, r.status_code, r.json().get("detail", "")))
        dsn = f"postgresql://{db['user']}@{host}:{redis_port}/x"
        r = owner.post("/api/v1/sql-connections/", {"project": team.project.pk, "name": "redis", "dsn": dsn})
        refused.append((dsn, r.status_code, r.json().get("detail", "")))
        url = f"http://{host}:{redis_port}/"
        r = owner.post("/api/v1/datasets/", {"project": team.project.pk, "name": "r", "source_url": url})
        refused.append((url, r.status_code, r.json().get("detail", "")))
        r = owner.patch(f"/api/v1/projects/{team.project.pk}/webhook/", {"url": url})
        refused.append((f"webhook {url}", r.status_code, r.json().get("detail", "")))
    wrong = [row for row in refused if row[1] != 400 or "platform's own" not in row[2]]
    assert wrong == []
    assert not SqlConnection.objects.exists() and not Dataset.objects.exists()
    # ... nor through a redirect from an allowed host.
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RedirectHandler)
    httpd.location = f"http://localhost:{redis_port}/"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    fake_dns["redirector.test"] = ["127.0.0.1"]
    try:
        with pytest.raises(netguard.Refused, match="platform's own broker"):
            netguard.safe_request("GET", f"http://redirector.test:{httpd.server_address[1]}/")
    finally:
        httpd.shutdown()


@pytest.mark.worker
def test_platform_database_behind_a_port_forward_is_closed_after_connecting(
    team, worker, warehouse_db, fake_dns, settings
):
    # The attacker forwards a port of an allowed host to the platform's database: the address
    # check passes (another port), the session's identity does not.
    from datasets.services import dataset_from_sql, sql_connection_create

    db = _platform_db()
    forward = TcpServer("forward", target=(db["host"], db["port"]))
    fake_dns["warehouse.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["warehouse.test"]
    try:
        for name, dbname in (("own", db["dbname"]), ("wh", warehouse_db["dbname"])):
            sql_connection_create(
                project=team.project,
                name=name,
                dsn=f"postgresql://{db['user']}@warehouse.test:{forward.port}/{dbname}",
                actor=team.owner,
            )
        own = dataset_from_sql(
            project=team.project, name="own", connection="own", query="SELECT * FROM auth_user", created_by=team.editor
        )
        wh = dataset_from_sql(
            project=team.project, name="wh", connection="wh", query="SELECT * FROM sales", created_by=team.editor
        )
        own, wh = wait_version(own.pk, profiled=False), wait_version(wh.pk, profiled=False)
    finally:
        forward.close()
    assert own.status == "failed" and "platform's own database" in own.error
    assert wh.status == "ready" and wh.row_count == 80  # the same forward reaches another database
    assert forward.hits >= 2


def _timed(call) -> tuple[float, str]:
    started = time.monotonic()
    try:
        call()
    except (netguard.ConnectFailed, netguard.FetchFailed) as exc:
        return time.monotonic() - started, str(exc)
    raise AssertionError("the connection was expected to fail")


def test_sql_port_states_are_indistinguishable(team, fake_dns, settings):
    """Closed, silent, HTTP-speaking and garbage-speaking ports: one message, one timing class."""
    from datasets.connections import query_frame
    from datasets.services import sql_connection_create

    settings.OUTBOUND_CONNECT_TIMEOUT_SECONDS = 2
    fake_dns["scan.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["scan.test"]
    silent, garbage = TcpServer("silent"), TcpServer("garbage")
    http = ThreadingHTTPServer(("127.0.0.1", 0), RedirectHandler)
    http.location = "/"
    threading.Thread(target=http.serve_forever, daemon=True).start()
    ports = {"closed": closed_port(), "silent": silent.port, "garbage": garbage.port, "http": http.server_address[1]}
    results = {}
    try:
        for state, port in ports.items():
            sql_connection_create(
                project=team.project, name=state, dsn=f"postgresql://u:p@scan.test:{port}/db", actor=team.owner
            )
            elapsed, message = _timed(lambda s=state: query_frame(project=team.project, connection=s, query="SELECT 1"))
            results[state] = (round(elapsed, 2), message.replace(f":{ports[state]} ", ":PORT "))
    finally:
        silent.close(), garbage.close(), http.shutdown()
    messages = {m for _, m in results.values()}
    assert len(messages) == 1, results
    times = [t for t, _ in results.values()]
    assert min(times) >= 1.95 and max(times) - min(times) < 1.0, results


def test_http_port_states_are_indistinguishable(fake_dns, settings):
    settings.OUTBOUND_CONNECT_TIMEOUT_SECONDS = 1
    fake_dns["scan.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["scan.test"]
    silent, garbage = TcpServer("silent"), TcpServer("garbage")
    ports = {"closed": closed_port(), "silent": silent.port, "garbage": garbage.port}
    results = {}
    try:
        for state, port in ports.items():
            elapsed, message = _timed(lambda p=port: netguard.safe_request("GET", f"http://scan.test:{p}/"))
            results[state] = (round(elapsed, 2), message)
    finally:
        silent.close(), garbage.close()
    assert len({m for _, m in results.values()}) == 1, results
    times = [t for t, _ in results.values()]
    assert min(times) >= 0.95 and max(times) - min(times) < 1.0, results


class NamedHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.name.encode()
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server_on(host: str, port: int, name: str) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer((host, port), NamedHandler)
    httpd.name, httpd.hits = name, 0
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_dns_answer_changing_between_check_and_connect_cannot_swap_the_address(fake_dns, settings):
    """DNS rebinding (Label Studio CVE-2023-47116): the first answer passes the check, the next
    one points inside. The request goes to the first, checked address; the inside never hears."""
    inside = _server_on("127.0.0.2", 0, "inside")
    port = inside.server_address[1]
    outside = _server_on("127.0.0.1", port, "outside")
    answers = iter([["127.0.0.1"]])
    fake_dns["rebind.test"] = lambda: next(answers, ["127.0.0.2"])
    settings.URL_FETCH_ALLOWED_HOSTS = ["rebind.test"]
    try:
        response = netguard.safe_request("GET", f"http://rebind.test:{port}/")
    finally:
        inside.shutdown(), outside.shutdown()
    assert response.body == b"outside" and outside.hits == 1
    assert inside.hits == 0
    assert fake_dns.calls.count("rebind.test") == 1  # resolved once, never again by the client


def test_a_name_with_one_private_answer_among_public_ones_is_refused(fake_dns, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = []
    fake_dns["mixed.test"] = ["93.184.216.34", "10.1.2.3"]
    with pytest.raises(netguard.Refused, match=r"10\.1\.2\.3"):
        netguard.safe_request("GET", "http://mixed.test/")


def test_operator_connections_belong_to_the_projects_they_name(live_server, team, settings):
    settings.SQL_CONNECTIONS = netguard.operator_connections(
        {"finance": {"dsn": "postgresql://reader@db.example.invalid/finance", "projects": [team.project.pk]}}
    )
    mine = Remote(live_server.url, team.editor).post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "f", "connection": "finance", "query": "SELECT 1"},
    )
    other = Remote(live_server.url, team.outsider).post(
        "/api/v1/datasets/",
        {"project": team.other_project.pk, "name": "f", "connection": "finance", "query": "SELECT 1"},
    )
    assert mine.status_code == 202, mine.text
    assert other.status_code == 400 and "connection" in other.json()["errors"]
    assert not Dataset.objects.filter(project=team.other_project).exists()
    # Nor is it offered on the other project's data page.
    from django.test import Client

    from tests.factories import PASSWORD

    option = '<option value="finance">'
    for user, project, offered in ((team.editor, team.project, True), (team.outsider, team.other_project, False)):
        client = Client()
        client.login(username=user.username, password=PASSWORD)
        assert (option in client.get(f"/projects/{project.pk}/datasets/").content.decode()) is offered


def _settings_check(sql_connections: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SQL_CONNECTIONS": sql_connections}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"warehouse": "postgresql://u@db.example.com/x"}', "belong to the projects you name"),
        ('{"warehouse": {"dsn": "postgresql://u@db.example.com/x"}}', '"projects" must be'),
        ('{"warehouse": {"dsn": "postgresql://u@db.example.com/x", "projects": ["all"]}}', '"projects" must be'),
        ('{"warehouse": {"dsn": "host=/var/run/postgresql user=u", "projects": [1]}}', "unix sockets"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_a_bad_sql_connections_setting_stops_the_start(value, says):
    result = _settings_check(value)
    assert result.returncode != 0
    assert "SQL_CONNECTIONS" in result.stderr and says in result.stderr


@pytest.mark.worker
def test_a_stored_dsn_that_breaks_the_policy_is_never_used(api, team, worker, settings):
    # Saved before the policy existed (straight into the table, as the old code allowed).
    settings.URL_FETCH_ALLOWED_HOSTS = []
    db = _platform_db()
    SqlConnection.objects.create(
        project=team.project,
        name="loopback",
        dsn_encrypted=encrypt(f"postgresql://{db['user']}@127.0.0.1:{db['port']}/other"),
        created_by=team.owner,
    )
    SqlConnection.objects.create(
        project=team.project,
        name="socket",
        dsn_encrypted=encrypt("postgresql://postgres@/x?host=/var/run/postgresql"),
        created_by=team.owner,
    )
    r = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "s", "connection": "socket", "query": "SELECT 1"},
        format="json",
    )
    assert r.status_code == 400 and "not allowed any more" in r.data["errors"]["connection"][0]
    r = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "l", "connection": "loopback", "query": "SELECT 1"},
        format="json",
    )
    assert r.status_code == 202
    v = wait_version(r.data["latest_version"]["id"], profiled=False)
    assert v.status == "failed" and "127.0.0.1" in v.error and "private, loopback" in v.error


def test_psycopg_connects_to_the_checked_address_in_a_read_only_session(warehouse_db, fake_dns, settings):
    fake_dns["warehouse.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["warehouse.test"]
    dsn = f"postgresql://{warehouse_db['user']}@warehouse.test:{warehouse_db['port']}/{warehouse_db['dbname']}"
    with netguard.pg_connect(netguard.pg_parse(dsn)) as conn:
        assert conn.info.hostaddr == "127.0.0.1" and conn.info.host == "warehouse.test"
        params = conn.info.get_parameters()
        assert "passfile" not in params or params["passfile"] == os.devnull
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE pwned (x int)")
