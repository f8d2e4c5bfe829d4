"""JWT helpers for the auth tests: HS* tokens with the standard library, RS256 with the openssl CLI.

Nothing here validates tokens; it only builds them (good ones and deliberately broken ones).
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _part(value):
    """A JOSE part: dicts and lists become compact JSON, bytes are taken as they are."""
    if isinstance(value, (bytes, bytearray)):
        return b64url(bytes(value))
    return b64url(json.dumps(value, separators=(",", ":")))


def now():
    return int(time.time())


def claims(**overrides):
    """Claims that the test gateway accepts; a value of None removes the claim."""
    t = now()
    c = {"iss": "https://idp.test/", "aud": "api", "sub": "alice", "iat": t - 5, "exp": t + 600}
    for k, v in overrides.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hmac_sign(signing_input, secret, alg="HS256"):
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, signing_input.encode("ascii"), _HASHES[alg]).digest()


def hs(payload, secret, alg="HS256", header=None):
    """A compact JWS signed with HMAC. `header` replaces the default {"alg", "typ"} header;
    `payload` may be a dict, a list or raw bytes."""
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = _part(hdr) + "." + _part(payload)
    return signing_input + "." + b64url(hmac_sign(signing_input, secret, alg))


def unsigned(payload, alg="none", signature=""):
    """An `alg: none` style token (signature part empty unless given)."""
    return _part({"alg": alg, "typ": "JWT"}) + "." + _part(payload) + "." + signature


def tamper_signature(token):
    """The same token with one byte of the decoded signature flipped (re-encoded properly, so
    that it is not just a change of the unused low bits of the last base64url character)."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


class RsaKey:
    """A 2048-bit RSA key made by `openssl genpkey`, signing with `openssl dgst -sha256 -sign`."""

    def __init__(self, directory, name):
        self.pem = os.path.join(directory, f"{name}.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.pem],
                       check=True, capture_output=True, timeout=60)
        out = subprocess.run(["openssl", "rsa", "-in", self.pem, "-noout", "-modulus"],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        modulus_hex = out.strip().split("=", 1)[1]
        self.n = b64url(bytes.fromhex(modulus_hex))
        self.e = "AQAB"
        self.public_pem = subprocess.run(["openssl", "rsa", "-in", self.pem, "-pubout"],
                                         check=True, capture_output=True,
                                         timeout=30).stdout  # bytes, PEM text

    def jwk(self, kid):
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": self.n, "e": self.e}

    def sign(self, signing_input):
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.pem],
                              input=signing_input.encode("ascii"), check=True,
                              capture_output=True, timeout=30).stdout

    def rs256(self, payload, kid, header=None):
        hdr = header if header is not None else {"alg": "RS256", "typ": "JWT", "kid": kid}
        signing_input = _part(hdr) + "." + _part(payload)
        return signing_input + "." + b64url(self.sign(signing_input))


def jwks(*jwk_dicts):
    return {"keys": list(jwk_dicts)}
