"""OAuth 2.0 token introspection (RFC 7662) as an auth provider.

    auth_providers:
      idp:
        type: oauth2_introspection
        endpoint: http://127.0.0.1:PORT/introspect
        client_id: gateway
        client_secret: s3cret
        timeout: 1s                # slower = unreachable
        cache_ttl: 5m              # active: cached until min(exp, now + cache_ttl)
        negative_cache_ttl: 1s     # inactive: cached this long

The bearer token is POSTed as `token=...` with HTTP Basic client authentication; an active answer
authenticates (its `sub` names a consumer through jwt_subjects, its `scope` feeds `authorize`),
an inactive one is 401 invalid_token; an IdP that is down, slow, failing or talking nonsense is
503 `unavailable`, never a pass. The IdP is support.introspection_idp.IntrospectionIdp.

Every token is new (uuid) unless a test says otherwise, so the shared gateway's cache never
carries one test's answer into another.
"""
import re
import subprocess
import threading
import time
import uuid

import pytest

from support import gateway as gw
from support import rawhttp
from support.introspection_idp import IntrospectionIdp
from support.rawhttp import request_bytes
from support.util import SLACK, SANITIZED, assert_error, wait_until

CLIENT_ID = "gateway"
CLIENT_SECRET = "s3cret"
TIMEOUT = 1.0          # the shared providers' `timeout`
NEG_TTL = 1.0          # the "idp" provider's `negative_cache_ttl`


# ----- tokens -------------------------------------------------------------------------------------
def now():
    return int(time.time())


def new_token(prefix="tok"):
    return f"{prefix}-{uuid.uuid4().hex}"


def align_to_fraction(lo, hi=None):
    """Sleeps until the wall clock's fraction of a second is in [lo, hi): a TTL counted in whole
    seconds would then end early, at the next second, and a test can see it."""
    hi = lo + 0.1 if hi is None else hi
    while not (lo <= time.time() % 1.0 < hi):
        time.sleep(0.005)


def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def active(sub="alice", scope="read", exp_in=600, **extra):
    d = {"active": True, "sub": sub, "scope": scope, "exp": now() + exp_in, "client_id": "app",
         "token_type": "Bearer"}
    for k, v in extra.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


# ----- fixtures -----------------------------------------------------------------------------------
def provider(url, **extra):
    p = {"type": "oauth2_introspection", "endpoint": url, "client_id": CLIENT_ID,
         "client_secret": CLIENT_SECRET, "timeout": "1s", "cache_ttl": "5m",
         "negative_cache_ttl": "1s"}
    p.update(extra)
    return p


def introspection_config(pub, main, idp_url):
    def r(name, prefix, upstream, auth, **kw):
        return gw.route(name, {"path_prefix": prefix}, upstream, auth=auth, **kw)

    routes = [
        r("public", "/public", "pub", "public"),
        r("api", "/api", "main", ["idp"]),
        r("write", "/write", "main", ["idp"], authorize={"scopes": ["write"]}),
        r("staff", "/staff", "main", ["idp"], authorize={"groups": ["staff"]}),
        r("short", "/short", "main", ["short"]),
        r("cookie", "/cookie", "main", ["cookie"]),
        r("badcreds", "/badcreds", "main", ["badcreds"]),
    ]
    providers = {
        "idp": provider(idp_url),
        "short": provider(idp_url, cache_ttl="1s"),
        "cookie": provider(idp_url, token_from=["cookie:access_token"]),
        "badcreds": provider(idp_url, client_secret="not-the-secret"),
    }
    consumers = [{"name": "alice", "groups": ["staff"], "jwt_subjects": ["alice"]},
                 {"name": "bob", "groups": ["dev"], "jwt_subjects": ["bob"]}]
    return gw.config(routes, {"pub": gw.up(pub), "main": gw.up(main)}, workers=1,
                     auth_providers=providers, consumers=consumers)


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_gateway, module_upstreams):
    e = Env()
    e.pub = module_upstreams("pub")
    e.main = module_upstreams("main")
    e.ups = [e.pub, e.main]
    e.idp = IntrospectionIdp(CLIENT_ID, CLIENT_SECRET, lifetime=600.0 * SLACK)
    try:
        e.g = module_gateway(introspection_config(e.pub, e.main, e.idp.url), name="introspect")
        yield e
    finally:
        e.idp.close()


@pytest.fixture(autouse=True)
def _idp_back_to_normal(request):
    """Whatever a test did to the shared IdP (slow, failing, stopped) is undone after it."""
    yield
    if "env" in request.fixturenames:
        e = request.getfixturevalue("env")
        e.idp.set_mode("normal")
        if not e.idp.running:
            e.idp.start()


# ----- requests -----------------------------------------------------------------------------------
def call(g, target, tok=None, headers=None, timeout=10.0):
    hdrs = list(headers or [])
    if tok is not None:
        hdrs.append(("Authorization", f"Bearer {tok}"))
    return rawhttp.exchange(g.port, request_bytes("GET", target, host="introspect.test",
                                                  headers=hdrs), timeout=timeout)


def passes(e, tok, target="/api/x", consumer="alice", headers=None):
    before = e.main.count()
    resp = call(e.g, target, tok, headers)
    assert resp.status == 200, resp
    assert e.main.count() == before + 1, "the accepted request did not reach the upstream once"
    rec = e.main.last()
    assert rec.path == target.split("?")[0], rec
    if consumer is None:
        assert rec.header_all("X-Consumer-Name") == [], rec.headers
    else:
        assert rec.header_all("X-Consumer-Name") == [consumer], rec.headers
    return rec


def _counts(e):
    return [u.count() for u in e.ups]


def refused(e, tok, target="/api/x", headers=None, invalid_token=True):
    """401 with a Bearer challenge (with error="invalid_token" when a token was sent)."""
    before = _counts(e)
    resp = call(e.g, target, tok, headers)
    assert_error(resp, 401, "unauthenticated")
    challenges = resp.header_all("WWW-Authenticate")
    bearer = [c for c in challenges if c.lower().startswith("bearer")
              and 'realm="portico"' in c]
    assert bearer, f'no Bearer realm="portico" challenge: {resp!r}'
    if invalid_token:
        assert any('error="invalid_token"' in c for c in bearer), resp
    else:
        assert not any("invalid_token" in c for c in bearer), resp
    assert _counts(e) == before, f"a refused request reached an upstream: {resp!r}"
    return resp


def unavailable(e, tok, target="/api/x", timeout=10.0):
    """503 `unavailable`; nothing reached an upstream."""
    before = _counts(e)
    resp = call(e.g, target, tok, timeout=timeout)
    assert_error(resp, 503, "unavailable")
    assert _counts(e) == before, f"a request the IdP could not vouch for went upstream: {resp!r}"
    return resp


# ----- config validation --------------------------------------------------------------------------
def _validate(portico_bin, tmp_path, cfg):
    text = gw.to_yaml(cfg).replace("@PORT@", "18080").replace("@ADMIN@", "19901")
    p = tmp_path / "portico.yaml"
    p.write_text(text)
    return subprocess.run([portico_bin, "validate", "-c", str(p)], capture_output=True, text=True,
                          timeout=20, cwd=str(tmp_path))


def _addr_config():
    return introspection_config("127.0.0.1:9001", "127.0.0.1:9002",
                                "http://127.0.0.1:9/introspect")


def test_validate_accepts_introspection_config(portico_bin, tmp_path):
    cfg = _addr_config()
    cfg["auth_providers"]["tls"] = provider("https://idp.example.com/oauth2/introspect")
    cfg["auth_providers"]["minimal"] = {"type": "oauth2_introspection",
                                        "endpoint": "http://127.0.0.1:9/introspect",
                                        "client_id": "gw", "client_secret": "x"}
    p = _validate(portico_bin, tmp_path, cfg)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "ok"


def _drop(key):
    def f(p):
        del p[key]
    return f


def _set(key, value):
    def f(p):
        p[key] = value
    return f


BAD_PROVIDERS = {
    "missing-endpoint": (_drop("endpoint"), ["endpoint"]),
    "endpoint-ftp": (_set("endpoint", "ftp://127.0.0.1/introspect"), ["endpoint", "http"]),
    "endpoint-no-scheme": (_set("endpoint", "127.0.0.1:9/introspect"), ["endpoint", "http"]),
    "endpoint-empty": (_set("endpoint", ""), ["endpoint"]),
    "missing-client-id": (_drop("client_id"), ["client_id"]),
    "unknown-key": (_set("secret", "x"), ["secret"]),
    "bad-timeout": (_set("timeout", "soon"), ["timeout", "soon"]),
}


@pytest.mark.parametrize("case", list(BAD_PROVIDERS))
def test_validate_refuses_bad_introspection_provider(portico_bin, tmp_path, case):
    change, keywords = BAD_PROVIDERS[case]
    cfg = _addr_config()
    change(cfg["auth_providers"]["idp"])
    p = _validate(portico_bin, tmp_path, cfg)
    out = p.stdout + p.stderr
    assert p.returncode != 0, f"validate accepted it: {out}"
    assert "not supported" not in out, f"refused only because the feature is missing: {out}"
    assert any(k in out for k in keywords), f"the error names none of {keywords}: {out}"


# ----- active tokens ------------------------------------------------------------------------------
def test_active_token_passes_as_consumer_and_idp_sees_a_proper_request(env):
    tok = new_token()
    env.idp.set_token(tok, active(sub="alice", scope="read write"))
    rec = passes(env, tok)
    assert rec.header_all("X-Consumer-Groups") == ["staff"], rec.headers
    assert env.idp.count(tok) == 1
    req = env.idp.last(tok)
    assert req.method == "POST" and req.target == "/introspect", req
    assert req.client == (CLIENT_ID, CLIENT_SECRET), req
    assert req.authorized, req
    assert req.status == 200, req
    ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ctype == "application/x-www-form-urlencoded", req.headers
    assert req.form["token"] == [tok], req.form
    assert set(req.form) <= {"token", "token_type_hint"}, req.form
    if "token_type_hint" in req.form:
        assert req.form["token_type_hint"] == ["access_token"], req.form


def test_token_with_form_special_characters_is_encoded(env):
    """token68 allows + / = which mean something in a form body: they must arrive intact."""
    tok = "a+b/c=d" + uuid.uuid4().hex + "=="
    env.idp.set_token(tok, active())
    passes(env, tok)
    assert env.idp.count(tok) == 1, [r.form for r in env.idp.snapshot()[-3:]]


def test_unmapped_subject_passes_without_consumer(env):
    tok = new_token()
    env.idp.set_token(tok, active(sub="carol"))
    rec = passes(env, tok, consumer=None)
    assert rec.header_all("X-Consumer-Groups") == [], rec.headers


def test_token_from_cookie(env):
    tok = new_token()
    env.idp.set_token(tok, active())
    passes(env, None, target="/cookie/x", headers=[("Cookie", f"a=1; access_token={tok}")])
    assert env.idp.count(tok) == 1
    # That provider reads only the cookie: a Bearer header is no credential there.
    before = env.idp.count()
    refused(env, tok, target="/cookie/x", invalid_token=False)
    assert env.idp.count() == before


def test_spoofed_identity_headers_are_replaced(env):
    tok = new_token()
    env.idp.set_token(tok, active(sub="bob"))
    rec = passes(env, tok, consumer="bob",
                 headers=[("X-Consumer-Name", "alice"), ("X-Consumer-Groups", "staff")])
    assert rec.header_all("X-Consumer-Groups") == ["dev"], rec.headers


# ----- refusals -----------------------------------------------------------------------------------
def test_unknown_token_is_401_invalid_token(env):
    tok = new_token("unknown")
    refused(env, tok)
    assert env.idp.count(tok) == 1


def test_inactive_token_is_401_invalid_token(env):
    tok = new_token()
    env.idp.set_token(tok, {"active": False})
    refused(env, tok)
    assert env.idp.count(tok) == 1


def test_cached_inactive_answer_keeps_the_invalid_token_challenge(env):
    """The second refusal comes from the negative cache; it must look like the first
    (RFC 6750 §3.1: a token was sent, so error="invalid_token")."""
    tok = new_token()
    first = refused(env, tok)
    second = refused(env, tok)
    assert env.idp.count(tok) == 1, "the second request was not answered from the cache"

    def without_description(resp):   # the human-readable text may differ
        return [re.sub(r',\s*error_description="[^"]*"', "", c)
                for c in resp.header_all("WWW-Authenticate")]
    assert without_description(second) == without_description(first)


def test_no_token_is_401_plain_bearer_challenge(env):
    before = env.idp.count()
    refused(env, None, invalid_token=False)
    refused(env, None, headers=[("Authorization", "Basic YWxpY2U6c2VjcmV0")],
            invalid_token=False)
    assert env.idp.count() == before, "the IdP was asked without a token"


@pytest.mark.parametrize("answer", [
    {"active": "true", "sub": "alice"},
    {"active": 1, "sub": "alice"},
    {"sub": "alice", "scope": "read"},
    [{"active": True, "sub": "alice"}],
    b"true",
], ids=["active-string", "active-number", "active-missing", "json-array", "json-true"])
def test_answer_without_boolean_active_true_never_passes(env, answer):
    tok = new_token()
    env.idp.set_token(tok, answer)
    before = _counts(env)
    resp = call(env.g, "/api/x", tok)
    assert resp.status in (401, 503), resp
    assert_error(resp, resp.status, {401: "unauthenticated", 503: "unavailable"}[resp.status])
    assert _counts(env) == before, resp


# ----- authorize ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["read", "", "writer", "read,write", "rewrite"])
def test_scope_without_write_is_403(env, scope):
    tok = new_token()
    env.idp.set_token(tok, active(scope=scope))
    before = _counts(env)
    resp = call(env.g, "/write/x", tok)
    assert_error(resp, 403, "forbidden")
    assert _counts(env) == before, resp


def test_no_scope_claim_is_403(env):
    tok = new_token()
    env.idp.set_token(tok, active(scope=None))
    resp = call(env.g, "/write/x", tok)
    assert_error(resp, 403, "forbidden")


@pytest.mark.parametrize("scope", ["write", "read write", "write read admin"])
def test_scope_with_write_passes(env, scope):
    tok = new_token()
    env.idp.set_token(tok, active(scope=scope))
    passes(env, tok, target="/write/x")


def test_authorize_groups_from_mapped_subject(env):
    tok_alice, tok_bob = new_token(), new_token()
    env.idp.set_token(tok_alice, active(sub="alice"))
    env.idp.set_token(tok_bob, active(sub="bob"))
    passes(env, tok_alice, target="/staff/x")
    resp = call(env.g, "/staff/x", tok_bob)
    assert_error(resp, 403, "forbidden")


# ----- caching ------------------------------------------------------------------------------------
def test_active_result_is_cached(env):
    tok = new_token()
    env.idp.set_token(tok, active())
    for _ in range(10):
        passes(env, tok)
    assert env.idp.count(tok) == 1, "each request asked the IdP again"


def test_active_result_is_cached_only_until_exp(env):
    tok = new_token()
    exp = now() + 2
    env.idp.set_token(tok, active(exp=exp))
    passes(env, tok)
    passes(env, tok)
    assert env.idp.count(tok) == 1
    # The IdP now says what an IdP says about an expired token.
    env.idp.set_token(tok, {"active": False})
    wait_until(lambda: time.time() > exp + 0.3, 5.0, message="the token's exp to pass")
    refused(env, tok)
    assert env.idp.count(tok) == 2, "the cached answer outlived the token's exp"


def test_active_result_is_cached_only_for_cache_ttl(env):
    """Provider "short" has cache_ttl 1s: the answer is used for that long (not until the next
    whole second), then a token revoked at the IdP stops working."""
    tok = new_token()
    env.idp.set_token(tok, active(exp_in=600))
    align_to_fraction(0.6)
    t0 = time.monotonic()
    passes(env, tok, target="/short/x")
    sleep_until(t0 + 0.5)
    passes(env, tok, target="/short/x")
    if time.monotonic() - t0 < 0.9:
        assert env.idp.count(tok) == 1, "an active answer was not used for cache_ttl (1 s)"
    env.idp.set_token(tok, {"active": False})   # revoked
    sleep_until(t0 + 1.5)
    refused(env, tok, target="/short/x")
    assert env.idp.count(tok) == 2


def test_inactive_result_is_cached_for_negative_cache_ttl(env):
    """negative_cache_ttl 1s: a second request 0.5 s later is answered from the cache (also when
    a whole second starts in between); one 1.5 s later asks the IdP again."""
    tok = new_token()
    align_to_fraction(0.6)
    t0 = time.monotonic()
    refused(env, tok)
    assert env.idp.count(tok) == 1
    sleep_until(t0 + 0.5)
    refused(env, tok)
    if time.monotonic() - t0 < NEG_TTL * 0.9:
        assert env.idp.count(tok) == 1, \
            "an inactive answer was not cached for negative_cache_ttl (1 s): asked again at 0.5 s"
    # The token becomes active at the IdP; after the negative TTL the gateway asks again.
    env.idp.set_token(tok, active())
    sleep_until(t0 + NEG_TTL + 0.5)
    passes(env, tok)
    assert env.idp.count(tok) == 2


def test_each_token_is_introspected_separately(env):
    tok_a, tok_b = new_token(), new_token()
    env.idp.set_token(tok_a, active(sub="alice"))
    env.idp.set_token(tok_b, active(sub="bob"))
    passes(env, tok_a, consumer="alice")
    passes(env, tok_b, consumer="bob")
    passes(env, tok_a, consumer="alice")
    assert (env.idp.count(tok_a), env.idp.count(tok_b)) == (1, 1)


# ----- the IdP failing ----------------------------------------------------------------------------
def test_idp_down_is_503_but_cached_token_keeps_working(env):
    cached = new_token()
    env.idp.set_token(cached, active())
    passes(env, cached)
    fresh = new_token()
    env.idp.set_token(fresh, active())
    env.idp.stop()
    unavailable(env, fresh)
    unavailable(env, new_token("unknown"))
    passes(env, cached)
    passes(env, cached)
    env.idp.start()
    # Back up: the token that got 503 passes now (an error is not cached as an answer, or only
    # briefly).
    wait_until(lambda: call(env.g, "/api/x", fresh).status == 200, 5.0 * SLACK, interval=0.2,
               message="the token to pass once the IdP is back")
    assert env.idp.count(fresh) >= 1


def test_idp_slow_is_503_after_timeout_and_does_not_block(env):
    tok = new_token()
    env.idp.set_token(tok, active())
    env.idp.set_mode("slow", delay=4.0)
    result = {}

    def slow_call():
        t0 = time.monotonic()
        try:
            result["resp"] = call(env.g, "/api/x", tok, timeout=15.0)
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = repr(exc)
        result["elapsed"] = time.monotonic() - t0

    before = _counts(env)
    t = threading.Thread(target=slow_call, daemon=True)
    t.start()
    env.idp.wait_for_requests(1, token=tok, timeout=5.0 * SLACK)
    latencies = []
    for _ in range(3):
        t0 = time.monotonic()
        resp = call(env.g, "/public/x", timeout=10.0)
        latencies.append(time.monotonic() - t0)
        assert resp.status == 200, resp
    t.join(timeout=20)
    assert "error" not in result, result
    assert_error(result["resp"], 503, "unavailable")
    assert _counts(env)[1] == before[1], "the request went upstream without an answer"
    assert TIMEOUT * 0.8 <= result["elapsed"] <= TIMEOUT + 1.5 * SLACK, \
        f"503 after {result['elapsed']:.2f} s with timeout {TIMEOUT} s"
    bound = 0.2 if not SANITIZED else 0.2 * SLACK
    assert max(latencies) < bound, (f"a public request took {max(latencies):.3f} s while the IdP "
                                    f"was slow: {[round(x, 3) for x in latencies]}")
    # Normal again: the same token passes (the timeout was not cached as an answer).
    env.idp.set_mode("normal")
    wait_until(lambda: call(env.g, "/api/x", tok).status == 200, 5.0 * SLACK, interval=0.2,
               message="the token to pass once the IdP is fast again")


@pytest.mark.parametrize("mode", ["status500", "garbage"])
def test_idp_error_or_garbage_is_503(env, mode):
    tok = new_token()
    env.idp.set_token(tok, active())
    env.idp.set_mode(mode)
    unavailable(env, tok)
    assert env.idp.count(tok) >= 1
    env.idp.set_mode("normal")
    wait_until(lambda: call(env.g, "/api/x", tok).status == 200, 5.0 * SLACK, interval=0.2,
               message="the token to pass once the IdP answers properly")


def test_idp_refusing_the_gateways_credentials_is_503(env):
    """Provider "badcreds" has the wrong client_secret: the IdP answers 401 to the gateway.
    That is the gateway's problem, not the client's: 503, never a pass."""
    tok = new_token()
    env.idp.set_token(tok, active())
    unavailable(env, tok, target="/badcreds/x")
    req = env.idp.last(tok)
    assert req is not None and req.status == 401 and not req.authorized, req
    assert req.client == (CLIENT_ID, "not-the-secret"), req


def test_idp_slow_many_concurrent_tokens_all_503_after_about_timeout(env):
    """8 clients with 8 different tokens while the IdP hangs: each gets its 503 about `timeout`
    after asking, not after waiting for the others' IdP calls to time out first."""
    toks = [new_token() for _ in range(8)]
    for t in toks:
        env.idp.set_token(t, active())
    env.idp.set_mode("slow", delay=5.0)
    results = [None] * len(toks)

    def one(i):
        t0 = time.monotonic()
        try:
            resp = call(env.g, "/api/x", toks[i], timeout=20.0)
            results[i] = (resp.status, time.monotonic() - t0, resp)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = ("error", time.monotonic() - t0, repr(exc))

    before = _counts(env)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(toks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    statuses = [r[0] for r in results]
    elapsed = [round(r[1], 2) for r in results]
    assert statuses == [503] * len(toks), results
    for r in results:
        assert_error(r[2], 503, "unavailable")
    assert _counts(env) == before
    bound = TIMEOUT + 0.5 + 0.5 * SLACK
    assert max(elapsed) <= bound, (f"503s came after {sorted(elapsed)} s with timeout {TIMEOUT} s: "
                                   "the IdP calls wait for each other")


def test_client_gone_while_its_token_is_checked(env):
    """Clients that close their connection while the IdP is being asked (each closes once its
    call has reached the IdP): the late answers must find nobody (no crash, no sanitizer
    report), nothing of theirs is forwarded, and the gateway goes on serving."""
    env.idp.set_mode("slow", delay=0.4)
    toks = [new_token() for _ in range(6)]
    for t in toks:
        env.idp.set_token(t, active())
    forwarded_before = env.main.count()
    conns = []
    for t in toks:
        c = rawhttp.RawConn(env.g.port, timeout=5.0)
        c.send(request_bytes("GET", "/api/gone", host="introspect.test",
                             headers=[("Authorization", f"Bearer {t}")]))
        conns.append((t, c))
    for t, c in conns:
        wait_until(lambda t=t: env.idp.count(t) >= 1, 5.0 * SLACK, message="its IdP call")
        c.close()
    time.sleep(2.0 * TIMEOUT + 0.5)   # every check finished (answered or timed out)
    env.idp.set_mode("normal")
    env.g.assert_healthy()
    # Each client left while its check ran: its request was abandoned, not forwarded.
    assert [r.path for r in env.main.snapshot()[forwarded_before:]
            if r.path == "/api/gone"] == []
    tok = new_token()
    env.idp.set_token(tok, active())
    passes(env, tok)
    env.g.assert_healthy()
