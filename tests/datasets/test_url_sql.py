"""URL import through netguard (a local server allowed by setting) and SQL connections."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from django.test import override_settings

from datasets.models import Dataset, DatasetVersion, SqlConnection
from datasets.services import sql_connection_create
from mlplatform.netguard import FetchFailed, UnsafeURL, check_url, safe_request
from tests.datasets.helpers import messy_frame, wait_version

CSV = messy_frame(40).to_csv(index=False).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.server_address[1]
        routes = {
            "/data.csv": (200, CSV, {}),
            "/to-loopback": (302, b"", {"Location": f"http://127.0.0.1:{port}/data.csv"}),
            "/to-metadata": (302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}),
            "/big": (200, b"a,b\n" + b"1,2\n" * 5000, {}),
            "/missing": (404, b"no", {}),
        }
        status, body, headers = routes.get(self.path.split("?", 1)[0], (404, b"", {}))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://017700000001/",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/",
        "http://metadata.google.internal/",
        "http://0.0.0.0/",
        "http://192.168.1.1/",
        "http://[fe80::1]/",
    ],
)
def test_check_url_refuses_internal_addresses_in_every_spelling(url, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = []
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_allowed_host_works_but_redirects_to_private_addresses_are_refused(server, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    assert safe_request("GET", f"{server}/data.csv").body == CSV
    with pytest.raises(UnsafeURL, match=r"127\.0\.0\.1"):
        safe_request("GET", f"{server}/to-loopback")
    with pytest.raises(UnsafeURL):
        safe_request("GET", f"{server}/to-metadata")
    with pytest.raises(FetchFailed, match="limit"):
        safe_request("GET", f"{server}/big", max_bytes=1000)


@pytest.mark.worker
def test_url_import_as_a_job(api, team, worker, server):
    with override_settings(URL_FETCH_ALLOWED_HOSTS=["localhost"]):
        r = api("editor").post(
            "/api/v1/datasets/",
            {"project": team.project.pk, "name": "web", "source_url": f"{server}/data.csv"},
            format="json",
        )
        assert r.status_code == 202, r.data
        v = wait_version(r.data["latest_version"]["id"])
        assert v.status == "ready" and v.row_count == 52 and v.source == "url"
        r2 = api("editor").post(
            f"/api/v1/datasets/{v.dataset_id}/versions/", {"source_url": f"{server}/to-loopback"}, format="json"
        )
        assert r2.status_code == 202
        v2 = wait_version(r2.data["id"], profiled=False)
        assert v2.status == "failed" and "127.0.0.1" in v2.error
        r3 = api("editor").post(
            f"/api/v1/datasets/{v.dataset_id}/versions/", {"source_url": f"{server}/missing"}, format="json"
        )
        v3 = wait_version(r3.data["id"], profiled=False)
        assert v3.status == "failed" and "404" in v3.error
    v.refresh_from_db()
    assert v.status == "ready"


def _warehouse_dsn(wh: dict, host: str = "warehouse.test") -> str:
    return f"postgresql://{wh['user']}@{host}:{wh['port']}/{wh['dbname']}"


@pytest.mark.worker
def test_sql_connection_dsn_is_encrypted_never_shown_and_queries_are_read_only(
    api, team, worker, warehouse_db, fake_dns, settings
):
    # The warehouse is allowed by name; only our resolver knows the name, so every query that
    # works went to the address that was checked (libpq never resolves it).
    fake_dns["warehouse.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["warehouse.test"]
    dsn = _warehouse_dsn(warehouse_db)
    r = api("owner").post(
        "/api/v1/sql-connections/", {"project": team.project.pk, "name": "warehouse", "dsn": dsn}, format="json"
    )
    assert r.status_code == 201, r.data
    assert "dsn" not in r.data
    stored = SqlConnection.objects.get(pk=r.data["id"])
    assert dsn not in stored.dsn_encrypted and "postgres" not in stored.dsn_encrypted
    listing = api("viewer").get(f"/api/v1/sql-connections/?project={team.project.pk}")
    assert dsn not in listing.content.decode()
    # editors may not register connections
    assert (
        api("editor")
        .post("/api/v1/sql-connections/", {"project": team.project.pk, "name": "x", "dsn": dsn}, format="json")
        .status_code
        == 403
    )
    q = api("editor").post(
        "/api/v1/datasets/",
        {
            "project": team.project.pk,
            "name": "sales",
            "connection": "warehouse",
            "query": "SELECT * FROM sales WHERE id <= 60",
        },
        format="json",
    )
    assert q.status_code == 202, q.data
    v = wait_version(q.data["latest_version"]["id"])
    assert v.status == "ready", v.error
    assert v.row_count == 60 and [c["name"] for c in v.schema] == ["id", "amount", "region"]
    # A data-modifying CTE passes the SELECT/WITH check but the read-only transaction refuses it.
    w = api("editor").post(
        f"/api/v1/datasets/{v.dataset_id}/versions/",
        {"connection": "warehouse", "query": "WITH d AS (DELETE FROM sales RETURNING *) SELECT * FROM d"},
        format="json",
    )
    assert w.status_code == 202
    vw = wait_version(w.data["id"], profiled=False)
    assert vw.status == "failed" and "read-only" in vw.error.lower()
    with psycopg.connect(**warehouse_db) as wh:
        assert wh.execute("SELECT count(*) FROM sales").fetchone()[0] == 80


@pytest.mark.worker
def test_sql_row_and_column_limits_fail_the_version(api, team, worker, warehouse_db, fake_dns, settings):
    fake_dns["warehouse.test"] = ["127.0.0.1"]
    settings.URL_FETCH_ALLOWED_HOSTS = ["warehouse.test"]
    settings.MAX_ROWS, settings.MAX_COLUMNS = 50, 3
    sql_connection_create(project=team.project, name="wh", dsn=_warehouse_dsn(warehouse_db), actor=team.owner)
    rows = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "all", "connection": "wh", "query": "SELECT * FROM sales"},
        format="json",
    )
    wide = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "wide", "connection": "wh", "query": "SELECT *, 1 AS extra FROM sales"},
        format="json",
    )
    v_rows = wait_version(rows.data["latest_version"]["id"], profiled=False)
    v_wide = wait_version(wide.data["latest_version"]["id"], profiled=False)
    assert v_rows.status == "failed" and "MAX_ROWS" in v_rows.error
    assert v_wide.status == "failed" and "4 columns" in v_wide.error and "MAX_COLUMNS" in v_wide.error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"connection": "warehouse", "query": "DELETE FROM x"}, "query"),
        ({"connection": "warehouse", "query": "SELECT 1; DROP TABLE x"}, "query"),
        ({"connection": "nope", "query": "SELECT 1"}, "connection"),
        ({"query": "SELECT 1"}, "connection"),
    ],
)
def test_bad_sql_requests_are_400(api, team, body, field):
    # A host that does not resolve here is accepted when saved: it is checked when a query runs.
    sql_connection_create(
        project=team.project, name="warehouse", dsn="postgresql://u:p@db.example.invalid/x", actor=team.owner
    )
    r = api("editor").post("/api/v1/datasets/", {"project": team.project.pk, "name": "q", **body}, format="json")
    assert r.status_code == 400, r.data
    assert field in r.data["errors"]
    assert not Dataset.objects.filter(name="q").exists()
    assert not DatasetVersion.objects.exists()


@pytest.mark.parametrize("dsn", ["sqlite:////etc/passwd", "not a url", "file:///etc/passwd", "mysql://u@h/db"])
def test_file_based_or_invalid_dsn_is_400(api, team, dsn):
    r = api("owner").post(
        "/api/v1/sql-connections/", {"project": team.project.pk, "name": "x", "dsn": dsn}, format="json"
    )
    assert r.status_code == 400 and "dsn" in r.data["errors"]
    assert not SqlConnection.objects.exists()


class SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        import time

        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_a_trickling_server_cannot_outlast_the_time_limit(settings):
    import time

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    started = time.monotonic()
    try:
        with pytest.raises(FetchFailed, match="longer than"):
            safe_request("GET", f"http://localhost:{httpd.server_address[1]}/", timeout=1.0)
    finally:
        httpd.shutdown()
    assert time.monotonic() - started < 5


def test_a_token_in_the_source_url_is_shown_to_no_one(api, team, worker, server):
    """A signed link pasted by an editor (`?token=...`) fetches the data; the version's API
    answer, lineage and pages show the address with its query values masked, to every role."""
    secret = "s3cr3t-download-token"
    with override_settings(URL_FETCH_ALLOWED_HOSTS=["localhost"]):
        r = api("editor").post(
            "/api/v1/datasets/",
            {"project": team.project.pk, "name": "signed", "source_url": f"{server}/data.csv?token={secret}&x=1"},
            format="json",
        )
        assert r.status_code == 202, r.data
        v = wait_version(r.data["latest_version"]["id"])
    assert v.status == "ready" and v.row_count == 52  # the full URL was used to fetch
    for role in ("viewer", "reviewer", "owner"):
        body = api(role).get(f"/api/v1/dataset-versions/{v.pk}/").content.decode()
        assert secret not in body
        data = api(role).get(f"/api/v1/dataset-versions/{v.pk}/").data
        assert data["source_detail"]["url"].endswith("/data.csv?token=…&x=…")
        assert data["lineage"]["detail"]["url"] == data["source_detail"]["url"]
    from django.test import Client

    page = Client()
    page.force_login(team.user("viewer"))
    for url in (f"/dataset-versions/{v.pk}/", f"/datasets/{v.dataset_id}/"):
        html = page.get(url).content.decode()
        assert secret not in html and "token=…" in html
