"""Password guessing against a running copy: the login page, the token endpoint and the admin.

Counters live in Redis (shared by every process): the attacks rotate forged X-Forwarded-For
headers, spread guesses over two server processes, spray many accounts from one address, and
try the right password while locked out.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test import RequestFactory

from accounts import throttle
from mlplatform.clientip import client_address
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_lock(settings):
    """A lock long enough that no assertion races its expiry on a busy machine."""
    settings.LOGIN_FREE_FAILURES = 5
    settings.LOGIN_ADDRESS_FREE_FAILURES = 1000
    settings.LOGIN_BACKOFF_BASE_SECONDS = 30
    settings.LOGIN_BACKOFF_MAX_SECONDS = 900
    settings.TRUSTED_PROXIES = []
    return settings


def token_attempt(base: str, username: str, password: str, xff: str | None = None) -> requests.Response:
    headers = {"X-Forwarded-For": xff, "X-Real-IP": xff.split(",")[0]} if xff else {}
    return requests.post(
        f"{base}/api/v1/auth/token/", json={"username": username, "password": password}, headers=headers, timeout=30
    )


def page_attempt(base: str, username: str, password: str) -> requests.Response:
    session = requests.Session()
    form = session.get(f"{base}/login/", timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    return session.post(
        f"{base}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
        allow_redirects=False,
        timeout=30,
    )


def test_fifty_guesses_with_forged_forwarded_for_headers_are_throttled(live_server, team, slow_lock):
    statuses = []
    for i in range(50):
        forged = f"{(i * 37) % 223 + 1}.{i}.{i * 3 % 256}.{i % 250 + 1}"
        r = token_attempt(live_server.url, "olivia", f"guess-{i}", xff=forged)
        statuses.append(r.status_code)
    assert statuses[:6] == [400] * 6  # 5 free failures; the 6th fails and starts the lock
    assert statuses[6:] == [429] * 44
    right = token_attempt(live_server.url, "olivia", PASSWORD, xff="198.51.100.1")
    assert right.status_code == 429 and "token" not in right.json()
    assert right.json()["detail"].startswith("Too many failed attempts; try again in ")
    assert 25 <= int(right.headers["Retry-After"]) <= 30


def test_the_right_password_during_back_off_is_refused_on_the_page_and_in_the_api(live_server, team, slow_lock):
    for i in range(6):
        r = page_attempt(live_server.url, "olivia", f"wrong-{i}")
        assert r.status_code == 200 and "sessionid" not in r.cookies  # the form again, with its error
    page = page_attempt(live_server.url, "olivia", PASSWORD)
    assert page.status_code == 429 and "sessionid" not in page.cookies
    assert "Too many failed attempts; try again in " in page.text and int(page.headers["Retry-After"]) >= 25
    api = token_attempt(live_server.url, "olivia", PASSWORD)
    assert api.status_code == 429 and int(api.headers["Retry-After"]) >= 25
    # Another account is not locked by this one's failures.
    assert token_attempt(live_server.url, "eddie", PASSWORD).status_code == 200


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def second_server(live_server):
    """Another server process (gunicorn) on the same database and Redis as the live server."""
    db = connection.settings_dict
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "LOGIN_FREE_FAILURES": "5",
        "LOGIN_ADDRESS_FREE_FAILURES": "1000",
        "LOGIN_BACKOFF_BASE_SECONDS": "30",
        "TRUSTED_PROXIES": "",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mlplatform.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{base}/healthz/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("the second server did not start")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_server_processes_share_one_counter(live_server, team, slow_lock, second_server):
    servers = [live_server.url, second_server]
    statuses = [token_attempt(servers[i % 2], "olivia", f"wrong-{i}").status_code for i in range(6)]
    assert statuses == [400] * 6  # three failures on each: six in all, the lock starts
    for base in servers:
        r = token_attempt(base, "olivia", PASSWORD)
        assert r.status_code == 429, (base, r.text)
    assert page_attempt(second_server, "olivia", PASSWORD).status_code == 429


def test_forwarded_for_counts_only_from_trusted_proxies_right_most_untrusted_hop(live_server, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]
    settings.LOGIN_FREE_FAILURES = 1000
    settings.LOGIN_ADDRESS_FREE_FAILURES = 3
    settings.LOGIN_BACKOFF_BASE_SECONDS = 30
    # One client behind our two proxies, spraying accounts; it forges the left part each time.
    statuses = [
        token_attempt(live_server.url, f"user{i}", "x", xff=f"{i}.{i}.{i}.{i}, 203.0.113.7, 10.1.2.3").status_code
        for i in range(1, 6)
    ]
    assert statuses == [400, 400, 400, 400, 429]
    # Its neighbour (another client address) is not affected.
    assert token_attempt(live_server.url, "user9", "x", xff="203.0.113.8").status_code == 400
    # Without trusted proxies the header means nothing: everyone is the direct peer.
    settings.TRUSTED_PROXIES = []
    statuses = [token_attempt(live_server.url, f"other{i}", "x", xff=f"198.51.100.{i}").status_code for i in range(5)]
    assert statuses == [400, 400, 400, 400, 429]


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # not from a proxy: ignored
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the forged left part is ignored
        ("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.9", "1.2.3.4"),  # through two of our proxies
        ("127.0.0.1", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # only proxies: the left-most is the best we know
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_client_address(settings, peer, header, client):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header)
    assert client_address(request) == client


def test_a_success_clears_the_account_not_the_address(team, settings):
    settings.LOGIN_FREE_FAILURES, settings.LOGIN_ADDRESS_FREE_FAILURES = 3, 5
    settings.LOGIN_BACKOFF_BASE_SECONDS = 30
    for _ in range(3):
        assert throttle.login_failed(username="olivia", bucket="192.0.2.1") == 0
    throttle.login_succeeded(username="olivia")
    for _ in range(2):
        assert throttle.login_failed(username="olivia", bucket="192.0.2.1") == 0
    assert throttle.login_wait(username="olivia", bucket="192.0.2.9") == 0
    # The address has now failed 5 times: its sixth failure locks it, for every account.
    assert throttle.login_failed(username="eddie", bucket="192.0.2.1") == 30
    assert throttle.login_wait(username="victor", bucket="192.0.2.1") >= 29


def test_the_wait_doubles_and_is_capped(settings):
    settings.LOGIN_FREE_FAILURES, settings.LOGIN_ADDRESS_FREE_FAILURES = 5, 1000
    settings.LOGIN_BACKOFF_BASE_SECONDS, settings.LOGIN_BACKOFF_MAX_SECONDS = 1, 16
    waits = [throttle.login_failed(username="target", bucket="192.0.2.50") for _ in range(11)]
    assert waits == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 16]


def test_admin_login_is_behind_the_same_throttle(live_server, slow_lock):
    UserFactory(username="root-admin", is_staff=True, is_superuser=True)
    session = requests.Session()

    def admin_login(password: str) -> requests.Response:
        form = session.get(f"{live_server.url}/admin/login/", timeout=30).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        return session.post(
            f"{live_server.url}/admin/login/?next=/admin/",
            data={"username": "root-admin", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{live_server.url}/admin/login/"},
            allow_redirects=False,
            timeout=30,
        )

    for i in range(6):
        assert admin_login(f"wrong-{i}").status_code == 200
    locked = admin_login(PASSWORD)
    assert locked.status_code == 200 and "sessionid" not in session.cookies  # refused, no session
    assert token_attempt(live_server.url, "root-admin", PASSWORD).status_code == 429


def test_an_unreachable_redis_lets_attempts_through_and_logs_it(settings, caplog, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    import redis

    from mlplatform import redis as platform_redis

    monkeypatch.setattr(throttle, "_store", throttle._RedisStore())
    unreachable = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1)
    with platform_redis.use(unreachable):
        assert throttle.login_wait(username="olivia", bucket="192.0.2.1") == 0
        assert throttle.login_failed(username="olivia", bucket="192.0.2.1") == 0
    assert "login throttle unavailable" in caplog.text


@pytest.mark.browser
def test_the_login_page_says_how_long_to_wait(page, team, slow_lock):
    from tests.conftest import screenshots

    for i in range(6):
        page.goto("/login/")
        page.fill("#id_username", "olivia")
        page.fill("#id_password", f"wrong-{i}")
        page.click("button[type=submit]")
    page.goto("/login/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/login/") and r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 429
    assert "Too many failed attempts; try again in" in page.text_content(".errorlist")
    assert "/login/" in page.url  # not logged in
    screenshots(page, "login-throttled")
