"""Snippets safe to paste: a model whose column names and category values are shell and Python
payloads. The curl example is taken from the deployment page exactly as the Copy button takes it
(Chromium, `textContent.trim()`), run through bash with `curl` replaced by a function that records
its arguments: no payload runs, and the arguments are the intended request. The Python usage
snippet is parsed, then run with a stub skops: nothing but the intended code runs, and the row it
builds is the sample row."""

from __future__ import annotations

import ast
import hashlib
import html
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployments.ml.schema import sample_instance
from deployments.rollout.selectors import curl_example
from tests.conftest import login
from tests.security.world import build_world


def hostile_names(marker: Path) -> list[str]:
    """Every way out of a quoted string we know, each creating `marker` if it escapes."""
    m = str(marker)
    return [
        f"'; touch {m}_sq; '",
        f"$(touch {m}_dollar)",
        f"`touch {m}_backtick`",
        f'"; touch {m}_dq; "',
        f"a\ntouch {m}_newline\n",
        f"\\'; touch {m}_backslash; #",
        f"'''\nopen('{m}_pytriple', 'w')\n'''",
        f'"""\nopen("{m}_pydq", "w")\n"""',
        f"\\\nopen('{m}_pycont', 'w')#",
        "${IFS}$HOME;!!\u2028end",
    ]


def hostile_schema(marker: Path) -> list[dict]:
    names = hostile_names(marker)
    schema = [{"name": n, "type": "numeric", "min": 0.0, "max": 10.0, "nullable": False} for n in names[:5]]
    for i, n in enumerate(names[5:]):
        schema.append({"name": n, "type": "categorical", "categories": [names[i], n], "nullable": False})
    schema.append({"name": "flag", "type": "boolean", "dtype": "bool", "nullable": False})
    return schema


def _hostile_world(team, tmp_path: Path):
    marker = tmp_path / "pwned"
    world = build_world(team.project, team.owner)
    version = world["model_version"]
    version.input_schema = hostile_schema(marker)
    version.save(update_fields=["input_schema"])
    return world, marker


def _no_marker(tmp_path: Path) -> None:
    created = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned"))
    assert created == [], f"a payload ran: {created}"


def run_curl_in_bash(snippet: str, cwd: Path) -> list[str]:
    """The snippet as a user pastes it into bash, with `curl` a function writing its argv."""
    script = 'curl() { for a in "$@"; do printf "%s\\0" "$a"; done > argv.bin; }\nAPI_KEY=secret-key\n' + snippet
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return (cwd / "argv.bin").read_bytes().decode().split("\0")[:-1]


def intended_argv(url: str, schema: list[dict]) -> list[str]:
    return [
        "-s",
        "-X",
        "POST",
        url,
        "-H",
        "Authorization: Api-Key secret-key",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"instances": [sample_instance(schema)]}),
    ]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_curl_example_copied_from_the_page_runs_only_curl(page, live_server, team, tmp_path):
    world, _marker = _hostile_world(team, tmp_path)
    deployment = world["deployment"]
    login(page, "olivia")
    page.goto(f"/deployments/{deployment.pk}/")
    copied = page.evaluate("document.getElementById('curl-example').textContent.trim()")
    argv = run_curl_in_bash(copied, tmp_path)
    _no_marker(tmp_path)
    url = f"{live_server.url}/api/v1/deployments/{deployment.pk}/predict/"
    assert argv == intended_argv(url, deployment.model_version.input_schema)
    body = json.loads(argv[-1])
    assert set(body["instances"][0]) == {f["name"] for f in deployment.model_version.input_schema}


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", ["http://testserver", "http://h'$(touch x)`id`:80"])
def test_curl_example_quotes_the_url_too(team, tmp_path, base_url):
    world, _marker = _hostile_world(team, tmp_path)
    deployment = world["deployment"]
    argv = run_curl_in_bash(curl_example(deployment, base_url), tmp_path)
    _no_marker(tmp_path)
    assert not (tmp_path / "x").exists()
    url = f"{base_url}/api/v1/deployments/{deployment.pk}/predict/"
    assert argv == intended_argv(url, deployment.model_version.input_schema)


STUB_SKOPS = """
import json


class Model:
    def predict(self, X):
        with open("predicted.json", "w") as fh:
            json.dump({"columns": list(X.columns), "rows": X.to_dict("records")}, fh)
        return ["x"] * len(X)

    predict_proba = predict


def get_untrusted_types(data):
    return []


def loads(data, trusted):
    return Model()
"""


def run_python_snippet(snippet: str, cwd: Path, model_bytes: bytes, filename: str) -> dict:
    (cwd / "skops").mkdir()
    (cwd / "skops" / "__init__.py").write_text("")
    (cwd / "skops" / "io.py").write_text(textwrap.dedent(STUB_SKOPS))
    (cwd / filename).write_bytes(model_bytes)
    (cwd / "snippet.py").write_text(snippet)
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=cwd, capture_output=True, text=True, timeout=60, env={"PYTHONPATH": "."}
    )
    assert done.returncode == 0, done.stderr
    return json.loads((cwd / "predicted.json").read_text())


def _snippet_from_page(client, version) -> str:
    page = client.get(f"/models/{version.pk}/").content.decode()
    found = re.search(r'<pre[^>]*id="usage-snippet"[^>]*>(.*?)</pre>', page, re.S)
    assert found, "no usage snippet on the model page"
    return html.unescape(found.group(1)).strip()


@pytest.mark.django_db
def test_python_usage_snippet_runs_only_itself(client, api, team, tmp_path):
    world, _marker = _hostile_world(team, tmp_path)
    version = world["model_version"]
    model_bytes = b"stand-in model bytes"
    version.sha256 = hashlib.sha256(model_bytes).hexdigest()
    version.save(update_fields=["sha256"])
    client.force_login(team.viewer)
    from_page = _snippet_from_page(client, version)
    from_api = api("viewer").get(f"/api/v1/models/{version.pk}/usage/").json()["snippet"]
    assert from_page == from_api.strip()
    tree = ast.parse(from_api)
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert calls <= {
        "open",
        "fh.read",
        "hashlib.sha256",
        "hashlib.sha256(data).hexdigest",
        "print",
        "sio.get_untrusted_types",
        "sio.loads",
        "pd.DataFrame",
        "json.loads",
        "model.predict",
        "model.predict_proba",
    }, calls
    opened = [n.args[0] for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "open"]
    assert [ast.unparse(a) for a in opened] == ["path"]
    predicted = run_python_snippet(from_api, tmp_path, model_bytes, f"model-v{version.version}.skops")
    _no_marker(tmp_path)
    instance = sample_instance(version.input_schema)
    assert predicted["columns"] == list(instance)
    assert predicted["rows"] == [instance]


@pytest.mark.django_db
def test_python_usage_snippet_refuses_a_changed_file(api, team, tmp_path):
    world, _marker = _hostile_world(team, tmp_path)
    version = world["model_version"]
    snippet = api("viewer").get(f"/api/v1/models/{version.pk}/usage/").json()["snippet"]
    with pytest.raises(AssertionError, match="file changed since registration"):
        run_python_snippet(snippet, tmp_path, b"tampered", f"model-v{version.version}.skops")
