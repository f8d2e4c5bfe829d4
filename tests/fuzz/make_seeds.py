#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small, meaningful inputs: valid messages, and the near misses a strict parser exists to
refuse (request smuggling material, path tricks, forged tokens). Each target's input format (the
control bytes in front) is described at the top of tests/fuzz/<target>.cpp. Files this script
does not write (crash-* reproducers, inputs kept from fuzzing runs) are left alone.

Run from the repository root: /usr/bin/python3 tests/fuzz/make_seeds.py
"""

import base64
import json
import os
import struct
import sys

from hpack import Encoder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- HTTP/1.1 request heads: control bytes (limits, findHeadEnd step), then the connection ----

def request_heads():
    seeds = {
        "get": "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "get-query": "GET /search?q=portico&page=2 HTTP/1.1\r\nHost: example.com:8080\r\n"
                     "User-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        "post-length-then-get": "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                                "GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        "post-chunked-then-get": "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "absolute-form": "GET http://backend.example:8080/p/a?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        "absolute-form-no-path": "GET https://backend.example HTTP/1.1\r\nHost: x\r\n\r\n",
        "options-star": "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "http10-no-host": "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "connect": "CONNECT backend.example:443 HTTP/1.1\r\nHost: backend.example:443\r\n\r\n",
        "expect-continue": "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "websocket": "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "leading-crlf": "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "length-zero": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "connection-lists": "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
        # Smuggling material: every one of these must be refused.
        "smuggle-cl-te": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        "smuggle-te-cl": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        "smuggle-double-cl": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
        "smuggle-cl-list": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n",
        "smuggle-cl-plus": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n",
        "smuggle-te-list": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "smuggle-te-twice": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "smuggle-te-space-colon": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        "smuggle-te-xchunked": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "smuggle-te-http10": "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "smuggle-obs-fold": "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
        "smuggle-bare-lf": "GET / HTTP/1.1\nHost: a\nContent-Length: 5\n\n",
        "smuggle-bare-cr": "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        "smuggle-nul-value": "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
        "double-host": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "host-userinfo": "GET http://user@evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "host-bad": "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "target-fragment": "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        "target-space": "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        "version-2": "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "method-bad": "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "many-headers": "GET / HTTP/1.1\r\nHost: a\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(12)) + "\r\n",
        "long-uri": "GET /" + "a" * 80 + " HTTP/1.1\r\nHost: a\r\n\r\n",
    }
    for name, text in seeds.items():
        write("http1_request_head", name, b"\x00\xff" + text.encode("latin-1"))
    # The same requests under the small limits, arriving a few bytes at a time.
    for name in ("many-headers", "long-uri", "post-chunked-then-get"):
        write("http1_request_head", name + "-small-limits", b"\x01\x06" + seeds[name].encode())


# ---- chunked bodies: four piece sizes, then the body ----

def chunked_bodies():
    seeds = {
        "simple": "5\r\nhello\r\n0\r\n\r\n",
        "two-chunks": "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "uppercase-hex": "A\r\n0123456789\r\n0\r\n\r\n",
        "extensions": "5;name=value;quoted=\"a b\"\r\nhello\r\n0;last\r\n\r\n",
        "trailers": "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        "then-next-request": "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "empty": "0\r\n\r\n",
        "size-overflow": "fffffffffffffffff\r\n",
        "size-leading-zeros": "0000000000000005\r\nhello\r\n0\r\n\r\n",
        "bare-lf": "5\nhello\n0\n\n",
        "missing-crlf-after-data": "5\r\nhelloX\r\n0\r\n\r\n",
        "space-after-size": "5 \r\nhello\r\n0\r\n\r\n",
        "negative": "-5\r\nhello\r\n0\r\n\r\n",
        "obs-fold-trailer": "0\r\nX: a\r\n b\r\n\r\n",
        "control-in-ext": "5;a=\x01\r\nhello\r\n0\r\n\r\n",
        "incomplete": "10\r\n0123456789",
    }
    for name, text in seeds.items():
        write("http1_chunked", name, b"\x00\x01\x07\xff" + text.encode("latin-1"))


# ---- HTTP/1.1 response heads: control bytes (method, step), then the upstream's bytes ----

def response_heads():
    get, head, post = 0, 1, 2
    seeds = {
        "200-length": (get, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"),
        "200-chunked": (get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "200-until-close": (get, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"),
        "head-length": (head, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        "204-length": (get, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
        "304": (get, "HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\n\r\n"),
        "100-continue": (post, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        "101-websocket": (get, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        "http10-keep-alive": (get, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        "no-reason": (get, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
        "empty-reason": (get, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"),
        "bad-status-short": (get, "HTTP/1.1 99 Low\r\n\r\n"),
        "bad-status-600": (get, "HTTP/1.1 600 High\r\n\r\n"),
        "bad-version": (get, "HTTP/2 200 OK\r\n\r\n"),
        "double-length": (get, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        "length-and-chunked": (get, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        "obs-fold": (get, "HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\n\r\n"),
        "set-cookies": (get, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"),
    }
    for name, (method, text) in seeds.items():
        write("http1_response_head", name, bytes([method, 0xFF]) + text.encode("latin-1"))


# ---- paths ----

def paths():
    seeds = {
        "root": "/", "plain": "/users/42/orders", "trailing-slash": "/a/b/",
        "dot-dot": "/a/b/../c", "dot-dot-above-root": "/../../etc/passwd",
        "encoded-dot-dot": "/a/%2e%2E/%2e/b", "dots-only": "/./././", "dot-dot-last": "/a/b/..",
        "double-slash": "/a//b///c", "encoded-slash": "/a%2Fb", "encoded-backslash": "/a%5cb",
        "encoded-nul": "/a%00b", "unreserved-escapes": "/%41%7e%2D%5f", "reserved-escapes": "/%3b%3D%40",
        "utf8": "/caf%c3%a9", "bad-percent": "/%zz", "short-percent": "/a%4", "space": "/a b",
        "query": "/a?b=c", "relative": "a/b", "sub-delims": "/a;b=c,d:e@f!$&'()*+",
        "template": "/users/{id}", "backslash": "/a\\b", "non-ascii": "/\xc3\xa9",
        "dot-segment-names": "/.hidden/..x/...",
        "parameter": "/admin;jsessionid=1", "parameter-dot-dot": "/public/..;/admin",
        "parameter-only": "/a/;x/b", "upper-case": "/API/V1/Users%41%3b",
    }
    for name, text in seeds.items():
        write("path_normalize", name, text)


# ---- JWTs: control byte, then a token or "<header JSON>\n<claims JSON>" ----

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


RFC_TOKENS = {
    # RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256), A.4 (ES512), RFC 8037 A.4 (EdDSA)
    "rfc7515-a1-hs256":
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "rfc7515-a2-rs256":
        "eyJhbGciOiJSUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
        "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1"
        "L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUip"
        "UTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
    "rfc7515-a3-es256":
        "eyJhbGciOiJFUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    "rfc7515-a4-es512":
        "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
        "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwF"
        "KdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
    "rfc8037-a4-eddsa":
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
}


def jwts():
    for name, token in RFC_TOKENS.items():
        write("jwt", name, b"\x00" + token.encode())  # policy 0, RFC clock
        write("jwt", name + "-policy1", b"\x02" + token.encode())  # issuer "joe", exp required
    a1 = RFC_TOKENS["rfc7515-a1-hs256"]
    raw = {
        "alg-none": b64url(b'{"alg":"none"}') + "." + b64url(b'{"iss":"joe"}') + ".",
        "two-parts": "eyJhbGciOiJIUzI1NiJ9.e30",
        "four-parts": a1 + ".x",
        "padded-base64": a1.replace(".", "==.", 1),
        "forged-payload": a1[:60] + "X" + a1[61:],
        "rs256-as-hs256": b64url(b'{"alg":"HS256"}') + "." + b64url(b'{"iss":"joe"}') + "." + b64url(b"\0" * 32),
        "empty": "",
    }
    for name, token in raw.items():
        write("jwt", name, b"\x00" + token.encode())
    # Signed here (control bit 0), so the claims checks are reached.
    signed = {
        "hs256-claims": (0x00, {"alg": "HS256", "typ": "JWT"}, {"iss": "joe", "exp": 1300819380}),
        "hs256-kid": (0x02, {"alg": "HS256", "kid": "fuzz"}, {"iss": "joe", "exp": 1300819390.5}),
        "hs512-policy1": (0x22 | 0x2, {"alg": "HS512"}, {"iss": "joe", "exp": 1300819380, "nbf": 1300818000}),
        "aud-array": (0x04, {"alg": "HS256"}, {"iss": "https://issuer.example", "aud": ["web", "x"], "exp": 1400000000}),
        "aud-string": (0x14, {"alg": "HS384"}, {"iss": "https://issuer.example", "aud": "api", "exp": 1400000000}),
        "wrong-aud": (0x04, {"alg": "HS256"}, {"iss": "https://issuer.example", "aud": ["other"], "exp": 1400000000}),
        "expired": (0x0A, {"alg": "HS256"}, {"iss": "joe", "exp": 1300819380}),
        "not-yet-valid": (0x02, {"alg": "HS256"}, {"iss": "joe", "exp": 1400000000, "nbf": 1350000000}),
        "issued-in-future": (0x02, {"alg": "HS256"}, {"iss": "joe", "exp": 1400000000, "iat": 1350000000}),
        "exp-string": (0x02, {"alg": "HS256"}, {"iss": "joe", "exp": "1400000000"}),
        "missing-exp": (0x02, {"alg": "HS256"}, {"iss": "joe"}),
        "crit": (0x00, {"alg": "HS256", "crit": ["exp"], "exp": 1}, {}),
        "unknown-kid": (0x00, {"alg": "HS256", "kid": "nope"}, {}),
        "jku-header": (0x00, {"alg": "HS256", "jku": "https://evil.example/jwks", "kid": "x"}, {}),
        "alg-none-signed": (0x00, {"alg": "none"}, {}),
        "alg-rs256-hmac": (0x00, {"alg": "RS256"}, {"iss": "joe"}),
        "wrong-secret": (0x30, {"alg": "HS256"}, {"iss": "joe"}),
        "claims-array": (0x00, {"alg": "HS256"}, [1, 2]),
        "huge-exp": (0x02, {"alg": "HS256"}, {"iss": "joe", "exp": 1e308}),
    }
    for name, (control, header, claims) in signed.items():
        text = json.dumps(header, separators=(",", ":")) + "\n" + json.dumps(claims, separators=(",", ":"))
        write("jwt", name, bytes([control | 1]) + text.encode())
    write("jwt", "duplicate-alg", b"\x01" + b'{"alg":"none","alg":"HS256"}\n{"iss":"joe"}')
    write("jwt", "bad-json", b"\x01" + b'{"alg":"HS256",}\n{"iss":"joe"}')
    write("jwt", "bad-utf8", b"\x01" + b'{"alg":"HS256","x":"\xff"}\n{}')


# ---- JWKs ----

def jwks():
    rsa = {"kty": "RSA", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}
    p256 = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    p521 = {"kty": "EC", "crv": "P-521", "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk", "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}
    okp = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    oct_ = {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}
    seeds = {
        "rfc-set": {"keys": [dict(oct_, kid="hs"), dict(rsa, kid="rs", alg="RS256", use="sig"),
                             dict(p256, kid="es"), p521, dict(okp, key_ops=["verify"])]},
        "rsa": rsa, "p256": p256, "p521": p521, "okp": okp, "oct": oct_,
        "rsa-small-modulus": {"kty": "RSA", "e": "AQAB", "n": b64url(b"\xc1" + b"\x01" * 63)},
        "rsa-even-exponent": dict(rsa, e="Ag"),
        "ec-not-on-curve": dict(p256, y="x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1"),
        "ec-short-x": dict(p256, x="f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE"),
        "ec-crv-mismatch": dict(p521, crv="P-384"),
        "okp-x448": {"kty": "OKP", "crv": "X448", "x": b64url(b"\x01" * 56)},
        "oct-empty": {"kty": "oct", "k": ""},
        "use-enc": {"keys": [dict(p256, use="enc"), dict(rsa, key_ops=["sign"]), dict(okp, alg="ES256")]},
        "alg-mismatch": {"keys": [dict(rsa, alg="ES256"), dict(oct_, alg="none")]},
        "wrong-types": {"keys": [dict(rsa, kid=7), dict(p256, use=["sig"]), dict(okp, key_ops="verify"), "x", None]},
        "private-members": {"keys": [dict(p256, d="AAAA"), dict(rsa, x5c=["MIIB"], p="AAAA")]},
        "keys-not-array": {"keys": {"kty": "RSA"}},
        "no-keys": {"jwks": []},
    }
    for name, doc in seeds.items():
        write("jwk", name, json.dumps(doc))
    write("jwk", "bad-json", '{"keys":[{"kty":"RSA",}]}')
    write("jwk", "duplicate-members", '{"keys":[{"kty":"oct","k":"AAAA","kty":"RSA"}]}')


# ---- configs ----

def configs():
    sources = ["examples/quickstart.yaml"]
    for sub in ("good", "broken"):
        folder = os.path.join(ROOT, "tests", "configs", sub)
        sources += [os.path.join("tests", "configs", sub, f) for f in sorted(os.listdir(folder))]
    for path in sources:
        with open(os.path.join(ROOT, path), "rb") as f:
            text = f.read()
        write("config_loader", path.replace("/", "_"), text)
    # Files the fake readWholeFile (config_loader.cpp) serves: TLS and a JWKS file.
    write("config_loader", "files-tls-jwks.yaml", """\
listeners:
  - name: tls
    address: "0.0.0.0:${PORT}"
    http2: true
    tls:
      certificates:
        - {cert: certs/api.pem, key: certs/api.key, sni: [api.example.com, "*.example.org"]}
        - {cert: /etc/portico/other.crt, key: other.key}
      min_version: "1.3"
      client_auth: optional
      client_ca: clients.pem
upstreams:
  users:
    endpoints: ["${USERS_HOST}:9443"]
    tls: {verify: true, ca: ca.pem, sni: users.internal, cert: client.pem, key: client.key}
auth_providers:
  idp:
    type: jwt
    issuer: https://idp.example.com/
    audiences: [api]
    algorithms: [RS256, ES256, EdDSA]
    jwks_file: keys/jwks.json
  remote:
    type: jwt
    algorithms: [RS256]
    jwks_url: https://idp.example.com/jwks
    jwks_ca: idp-ca.pem
    refresh: 10m
  introspect:
    type: introspection
    endpoint: https://idp.example.com/introspect
    endpoint_ca: missing-ca.txt
    client_id: portico
    client_secret: ${EMPTY}
    timeout: ${TIMEOUT}
routes:
  - name: users
    match: {path_prefix: /users}
    upstream: users
    auth: [idp, remote, introspect]
""")


# ---- HTTP/2: control byte, then the client's bytes ----

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def request_block(method="GET", path="/", extra=(), authority="fuzz.example"):
    fields = [(":method", method), (":scheme", "http"), (":authority", authority)]
    if path is not None:
        fields.insert(2, (":path", path))
    return Encoder().encode(fields + list(extra), huffman=False)


def http2():
    start = PREFACE + settings((4, 65535), (2, 0)) + frame(SETTINGS, ACK, 0)
    get = frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block())
    post_chunked = (frame(HEADERS, END_HEADERS, 1, request_block("POST", "/upload", [("content-type", "text/plain")]))
                    + frame(DATA, 0, 1, b"hello ") + frame(DATA, END_STREAM, 1, b"world"))
    post_length = (frame(HEADERS, END_HEADERS, 3, request_block("POST", "/items", [("content-length", "5")]))
                   + frame(DATA, END_STREAM, 3, b"hello"))
    trailers = (frame(HEADERS, END_HEADERS, 5, request_block("PUT", "/t"))
                + frame(DATA, 0, 5, b"abc")
                + frame(HEADERS, END_STREAM | END_HEADERS, 5, Encoder().encode([("x-checksum", "1")], huffman=False)))
    block = request_block("GET", "/continued", [("cookie", "a=1"), ("cookie", "b=2"), ("accept", "*/*")])
    continuation = (frame(HEADERS, END_STREAM, 7, block[:10]) + frame(CONTINUATION, 0, 7, block[10:20])
                    + frame(CONTINUATION, END_HEADERS, 7, block[20:]))
    big_header = frame(HEADERS, END_STREAM | END_HEADERS, 9,
                       request_block("GET", "/big", [("x-big", "v" * 5000)]))
    control = (frame(PING, 0, 0, b"12345678") + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
               + frame(PRIORITY, 0, 11, struct.pack(">IB", 0, 16)))
    reset = frame(HEADERS, END_HEADERS, 13, request_block("POST", "/r")) + frame(RST_STREAM, 0, 13, struct.pack(">I", 8))
    goaway = frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0))
    window = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 30))
    padded = frame(HEADERS, PADDED | END_STREAM | END_HEADERS, 15, b"\x04" + request_block("HEAD", "/p") + b"\0" * 4)
    connect = frame(HEADERS, END_HEADERS, 17, request_block("CONNECT", None, authority="backend.example:443"))
    te = frame(HEADERS, END_STREAM | END_HEADERS, 19, request_block("GET", "/te", [("te", "trailers"), ("transfer-encoding", "chunked")]))

    answers = {"length": 0, "chunked": 1, "until-close": 2, "interim": 3, "echo": 4, "large": 5,
               "malformed": 6, "give-up": 7}
    for name, answer in answers.items():
        write("http2_server", "get-" + name, bytes([answer]) + start + get)
        write("http2_server", "post-chunked-" + name, bytes([answer]) + start + post_chunked)
    write("http2_server", "post-length-echo-early", bytes([4 | 8]) + start + post_length)
    write("http2_server", "large-with-window", bytes([5]) + start + get + window)
    write("http2_server", "many-streams", bytes([0]) + start + get + post_length + trailers + continuation + control + padded)
    write("http2_server", "many-streams-pieces", bytes([0x10 | 1]) + start + get + post_chunked.replace(b"\x00\x00\x00\x01", b"\x00\x00\x00\x03") + trailers)
    write("http2_server", "big-header-431", bytes([0]) + start + big_header)
    write("http2_server", "reset-stream", bytes([4 | 8 | 0x20]) + start + reset + get)
    write("http2_server", "goaway", bytes([0]) + start + get + goaway)
    write("http2_server", "shutdown", bytes([0x80]) + start + get + post_length)
    write("http2_server", "connect", bytes([0]) + start + connect)
    write("http2_server", "te-transfer-encoding", bytes([0]) + start + te)
    write("http2_server", "upgrade", bytes([0x40]) + start)
    write("http2_server", "upgrade-large", bytes([0x40 | 5]) + start + window)
    write("http2_server", "settings-flood", bytes([0]) + PREFACE + settings((3, 100)) * 40 + frame(PING, 0, 0, b"\0" * 8) * 20)
    write("http2_server", "bad-preface", bytes([0]) + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")


def main():
    if not os.path.isdir(os.path.join(ROOT, "src")):
        sys.exit("run from a Portico checkout")
    request_heads()
    chunked_bodies()
    response_heads()
    paths()
    jwts()
    jwks()
    configs()
    http2()


if __name__ == "__main__":
    main()
