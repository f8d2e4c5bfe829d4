"""The command line (validate, explain, version, run's failure modes) and the admin API."""
import os
import re
import subprocess

import pytest

from support import gateway as gw

GOOD = """# a good config
workers: 1
drain_timeout: 5s
listeners:
  - name: public
    address: 127.0.0.1:18080
    limits: { max_body_bytes: 1MiB, header_timeout: 5s }
admin:
  address: 127.0.0.1:19901
upstreams:
  users:
    endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]
    load_balancing: least_request
    timeouts: { connect: 250ms, request: 5s, idle: 1m }
  echo:
    builtin: echo
routes:
  - name: users-by-id
    match: { path: "/users/{id}", methods: [GET], hosts: [api.example.com] }
    upstream: users
    rewrite: { path: "/v2/users/{id}" }
    auth: public
    timeout: 2s
  - name: hello
    match: { path_prefix: /hello }
    upstream: echo
    auth: public
"""


def run(binary, *args, env=None, timeout=20):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def write(tmp_path):
    def w(text, name="c.yaml"):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    return w


def test_version(portico_bin):
    p = run(portico_bin, "version")
    assert p.returncode == 0
    assert re.search(r"\d+\.\d+", p.stdout), p.stdout
    assert "portico" in p.stdout.lower()


def test_validate_good(portico_bin, write):
    p = run(portico_bin, "validate", "-c", write(GOOD))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_validate_quickstart_example(portico_bin, repo_dir):
    p = run(portico_bin, "validate", "-c", f"{repo_dir}/examples/quickstart.yaml")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def error_lines(p, path):
    out = p.stdout + p.stderr
    return [ln for ln in out.splitlines() if ln.startswith(path + ":")]


@pytest.mark.parametrize("mutate,line,cols,words", [
    # (text replacement, expected line, acceptable columns (key or value), words in the message)
    (("    upstream: echo\n", "    upstram: echo\n"), 26, {5}, ["upstram", "upstream"]),
    (("timeout: 2s", "timeout: 2 parsecs"), 23, {5, 14}, ["2 parsecs"]),
    (("max_body_bytes: 1MiB", "max_body_bytes: 1 lot"), 7, {15, 31}, ["1 lot"]),
    (("load_balancing: least_request", "load_balancing: fastest"), 13, {5, 21}, ["fastest"]),
    (("    upstream: users\n", "    upstream: userz\n"), 20, {5, 15}, ["userz"]),
    (("workers: 1", "wrokers: 1"), 2, {1}, ["wrokers", "workers"]),
])
def test_validate_reports_file_line_col(portico_bin, write, mutate, line, cols, words):
    old, new = mutate
    assert old in GOOD
    path = write(GOOD.replace(old, new, 1))
    p = run(portico_bin, "validate", "-c", path)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "ok" not in p.stdout.split()
    lines = error_lines(p, path)
    assert lines, p.stdout + p.stderr
    assert any(re.match(rf"{re.escape(path)}:{line}:({'|'.join(map(str, cols))}): \S", ln)
               for ln in lines), lines
    for w in words:
        assert any(w in ln for ln in lines), (w, lines)


def test_validate_reports_every_error(portico_bin, write):
    text = GOOD.replace("workers: 1", "wrokers: 1").replace("timeout: 2s", "timeout: soon")
    text = text.replace("    upstream: echo\n", "    upstream: nowhere\n")
    path = write(text)
    p = run(portico_bin, "validate", "-c", path)
    assert p.returncode == 1
    lines = error_lines(p, path)
    assert len(lines) >= 3, lines
    assert {ln[len(path) + 1:].split(":")[0] for ln in lines} >= {"2", "23", "26"}, lines


def test_validate_yaml_syntax_error(portico_bin, write):
    path = write("listeners:\n  - name: a\n    address: [unclosed\n")
    p = run(portico_bin, "validate", "-c", path)
    assert p.returncode == 1
    assert error_lines(p, path), p.stdout + p.stderr


def test_validate_missing_file(portico_bin, tmp_path):
    p = run(portico_bin, "validate", "-c", str(tmp_path / "nope.yaml"))
    assert p.returncode != 0
    assert "nope.yaml" in p.stdout + p.stderr


def test_validate_route_without_auth_is_refused(portico_bin, write):
    text = GOOD.replace("    auth: public\n", "", 1)
    path = write(text)
    p = run(portico_bin, "validate", "-c", path)
    assert p.returncode == 1
    assert any("auth" in ln for ln in error_lines(p, path)), p.stdout + p.stderr


def test_env_substitution(portico_bin, write):
    text = GOOD.replace('"127.0.0.1:9001"', '"${USERS_HOST}:9001"').replace(
        "request: 5s", 'request: "${REQ_TIMEOUT:-5s}"')
    path = write(text)
    p = run(portico_bin, "validate", "-c", path, env={"USERS_HOST": "127.0.0.1"})
    assert p.returncode == 0, p.stderr
    env = dict(os.environ)
    env.pop("USERS_HOST", None)
    p = subprocess.run([portico_bin, "validate", "-c", path], capture_output=True, text=True,
                       timeout=20, env=env)
    assert p.returncode == 1
    lines = error_lines(p, path)
    assert any("USERS_HOST" in ln and ln.startswith(f"{path}:12:") for ln in lines), lines


def test_explain_route_and_upstream(portico_bin, write):
    path = write(GOOD)
    p = run(portico_bin, "explain", "-c", path, "GET", "http://api.example.com/users/7")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "users-by-id" in out
    assert "/v2/users/7" in out
    assert "users" in out and "127.0.0.1:9001" in out


def test_explain_no_route(portico_bin, write):
    path = write(GOOD)
    p = run(portico_bin, "explain", "-c", path, "GET", "http://other.example.com/users/7")
    assert p.returncode != 0
    assert "404" in p.stdout or "no_route" in p.stdout
    p = run(portico_bin, "explain", "-c", path, "DELETE", "http://api.example.com/users/7")
    assert "405" in p.stdout and "GET" in p.stdout


def test_explain_with_header_and_builtin(portico_bin, write):
    path = write(GOOD)
    p = run(portico_bin, "explain", "-c", path, "POST", "http://x/hello/world?a=1",
            "-H", "X-Test: 1")
    assert p.returncode == 0, p.stderr
    assert "hello" in p.stdout and "echo" in p.stdout
    assert "/hello/world?a=1" in p.stdout


def test_run_with_broken_config_exits_nonzero(portico_bin, write):
    path = write(GOOD.replace("workers: 1", "wrokers: 1"))
    p = run(portico_bin, "run", "-c", path, timeout=20)
    assert p.returncode != 0
    assert f"{path}:2:1" in p.stderr


def test_unknown_command_is_usage_error(portico_bin):
    p = run(portico_bin, "frobnicate", "-c", "x.yaml")
    assert p.returncode != 0
    assert "usage" in (p.stdout + p.stderr).lower()


# ----- admin API -------------------------------------------------------------------------
@pytest.fixture
def admin_gw(gateway, upstream):
    return gateway(gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)}))


def test_admin_healthz_readyz(admin_gw):
    code, body = admin_gw.admin("GET", "/healthz")
    assert code == 200
    code, body = admin_gw.admin("GET", "/readyz")
    assert code == 200


def test_admin_unknown_path_is_404(admin_gw):
    code, _ = admin_gw.admin("GET", "/no-such-admin-endpoint")
    assert code == 404


def test_admin_reload_requires_post(admin_gw):
    before = admin_gw.config_version()
    code, _ = admin_gw.admin("GET", "/admin/reload")
    assert code in (404, 405)
    assert admin_gw.config_version() == before


def test_admin_not_served_on_public_listener(admin_gw, upstream):
    status, _, body = admin_gw.request("GET", "/healthz")
    # The public listener proxies it like any other path.
    assert status == 200
    assert upstream.last().path == "/healthz"


def test_admin_token_required_except_healthz(gateway, upstream):
    cfg = gw.config([gw.route("all", {"path_prefix": "/"}, "u")], {"u": gw.up(upstream)})
    cfg["admin"]["token"] = "${ADMIN_TOKEN}"
    g = gateway(cfg, env={"ADMIN_TOKEN": "s3cret-t0ken"}, admin_token="s3cret-t0ken")
    assert g.admin("GET", "/healthz", token="")[0] == 200
    for token in ("", "wrong"):
        code, body = g.admin("GET", "/readyz", token=token)
        assert code == 401, body
        assert body["error"]["code"] == "unauthenticated"
        code, body = g.admin("POST", "/admin/reload", token=token)
        assert code == 401
    assert g.config_version() is not None
    code, body = g.admin("POST", "/admin/reload")
    assert code == 200 and body["version"] >= 2


EXPLAIN_AUTH = """\
listeners: [{address: 127.0.0.1:18301}]
upstreams: {e: {builtin: echo}}
auth_providers: {keys: {type: api_key}}
consumers: [{name: a, api_keys: [k-0123456789]}]
routes:
  - name: adm
    match: {path_prefix: /admin}
    upstream: e
    auth: [keys]
    authorize: {groups: [admins], scopes: [users:read]}
  - {name: pub, match: {path_prefix: /}, upstream: e, auth: public}
"""


def test_explain_shows_auth_and_authorize(portico_bin, write):
    path = write(EXPLAIN_AUTH)
    p = run(portico_bin, "explain", "-c", path, "GET", "http://x/admin/users")
    assert p.returncode == 0, p.stderr
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines()
             if ":" in ln}
    assert lines["route"].startswith("adm ")
    assert lines["auth"] == "any of keys"
    assert "groups [admins]" in lines["authorize"] and "scopes [users:read]" in lines["authorize"]
    p = run(portico_bin, "explain", "-c", path, "GET", "http://x/other")
    assert "auth:      public" in p.stdout
    assert "authorize" not in p.stdout
    assert "ip:" not in p.stdout


def test_explain_shows_ip_rules(portico_bin, write):
    path = write(EXPLAIN_AUTH.replace(
        "auth: public}", "auth: public, ip: {allow: [10.0.0.0/8], deny: [10.6.6.0/24, '::1']}}"))
    p = run(portico_bin, "explain", "-c", path, "GET", "http://x/other")
    assert p.returncode == 0, p.stderr
    assert "ip:        allow [10.0.0.0/8]; deny [10.6.6.0/24, ::1] (deny wins)" in p.stdout, \
        p.stdout


EXPLAIN_LIMITS = """\
listeners: [{address: 127.0.0.1:18302}]
upstreams: {e: {builtin: echo}}
auth_providers: {keys: {type: api_key}, tokens: {type: jwt, algorithms: [HS256], secret: 0123456789abcdef0123456789abcdef}}
consumers: [{name: a, api_keys: [k-0123456789]}]
routes:
  - name: api
    match: {path_prefix: /api}
    upstream: e
    auth: [keys, tokens]
    concurrency_limit: 7
    rate_limit:
      - {name: per-ip, limit: 10, window: 1s, key: ip}
      - {name: tenant, limit: 100, window: 1m, key: [consumer, "header:X-Tenant"]}
  - {name: pub, match: {path_prefix: /}, upstream: e, auth: public}
"""


def test_explain_shows_providers_and_limits(portico_bin, write):
    path = write(EXPLAIN_LIMITS)
    p = run(portico_bin, "explain", "-c", path, "GET", "http://x/api/users")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "provider:  keys (api_key)" in out and "provider:  tokens (jwt)" in out, out
    assert "limit:     per-ip: 10 per 1000 ms, per [ip] (local)" in out, out
    assert "limit:     tenant: 100 per 60000 ms, per [consumer, header:x-tenant] (local)" in out, out
    assert "concurrency: at most 7 in flight" in out, out
    assert "not in this version" not in out
    p = run(portico_bin, "explain", "-c", path, "GET", "http://x/other")
    assert "limits:    none" in p.stdout
