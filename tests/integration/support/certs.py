"""A small test PKI made with the `openssl` command line (OpenSSL 3.0), EC P-256 keys throughout.

    pki = make_pki("/some/dir")      # cached per directory (and so per pytest session)
    pki.ca.cert                      # "Portico Test CA" (PEM)
    pki.other_ca.cert                # an unrelated CA ("Portico Other CA")
    pki.default / pki.api / pki.wild # server certs (see SERVERS)
    pki.client_a                     # client cert by the CA: CN client-a, SAN DNS client-a.example.com
    pki.wild                         # signed by pki.intermediate; its file is leaf + intermediate
    pki.client_other                 # client cert by the other CA (same names as client-a)
    issue_server(pki, dir, "api.example.com", org="Portico Reloaded")   # another cert, same name

Each certificate is a `Cert` with .cert and .key (absolute paths), .subject_cn, .sans, .org and
.serial (hex, upper case, as `openssl x509 -serial` and Python's getpeercert() print it).
"""
import os
import secrets
import subprocess
import threading

OPENSSL = "openssl"
TIMEOUT = 30  # seconds for any one openssl command

CA_NAME = "Portico Test CA"
OTHER_CA_NAME = "Portico Other CA"

# name -> (CN, [DNS SANs]); the first is the listener's default certificate in the tests.
SERVERS = {
    "default": ("default.example.com", ["default.example.com"]),
    "api": ("api.example.com", ["api.example.com"]),
    "wild": ("*.wild.example.com", ["*.wild.example.com"]),
}


class Cert:
    def __init__(self, cert, key, subject_cn, sans, org, serial, issuer_cn):
        self.cert = cert
        self.key = key
        self.subject_cn = subject_cn
        self.sans = list(sans)
        self.org = org
        self.serial = serial
        self.issuer_cn = issuer_cn

    def __repr__(self):
        return f"<Cert CN={self.subject_cn} O={self.org} serial={self.serial} {self.cert}>"


class PKI:
    def __init__(self, directory):
        self.dir = directory
        self.ca = None
        self.other_ca = None
        self.default = None
        self.api = None
        self.wild = None
        self.client_a = None
        self.client_other = None
        self.client_b = None      # by the CA: CN client-b, SAN DNS client-b.example.com
        self.client_uri = None    # by the CA: CN client-uri, SAN URI spiffe://portico.test/partner-u
        self.client_email = None  # by the CA: CN client-email, SAN email ops@partner-e.example.com
        self.client_evil = None   # by the CA: names that merely contain client-a.example.com
        self.intermediate = None  # "Portico Test Intermediate CA", signed by the CA


def _run(args, cwd=None):
    p = subprocess.run([OPENSSL] + args, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def _serial():
    # 16 random bytes, top bit clear (a positive INTEGER), never starting with 00.
    b = bytearray(secrets.token_bytes(16))
    b[0] = (b[0] & 0x7F) | 0x10
    return b.hex().upper()


def _key(path):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path])
    os.chmod(path, 0o600)


def _subject(cn, org):
    parts = []
    if org:
        parts.append(f"/O={org}")
    parts.append(f"/CN={cn}")
    return "".join(parts)


def make_ca(directory, name, cn, org="Portico Tests"):
    """A self-signed root CA: DIR/NAME.pem and DIR/NAME.key."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    _key(key)
    serial = _serial()
    _run(["req", "-x509", "-new", "-key", key, "-out", cert, "-days", "3650", "-sha256",
          "-subj", _subject(cn, org), "-set_serial", "0x" + serial,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-addext", "subjectKeyIdentifier=hash"])
    return Cert(cert, key, cn, [], org, serial, cn)


def issue(ca, directory, name, cn, dns=(), uris=(), emails=(), org="Portico Tests",
          usage="server", days=365, key=None, chain=()):
    """A leaf signed by `ca` (a Cert): DIR/NAME.pem and DIR/NAME.key.

    usage: "server" (serverAuth), "client" (clientAuth), "both", or "ca" (an intermediate CA).
    key: reuse this key file. chain: Certs whose PEM is appended after the leaf (leaf first).
    """
    cert_path = os.path.join(directory, f"{name}.pem")
    key_path = key or os.path.join(directory, f"{name}.key")
    csr = os.path.join(directory, f"{name}.csr")
    ext = os.path.join(directory, f"{name}.ext")
    if key is None:
        _key(key_path)
    _run(["req", "-new", "-key", key_path, "-out", csr, "-subj", _subject(cn, org)])
    sans = [f"DNS:{d}" for d in dns] + [f"URI:{u}" for u in uris] + [f"email:{e}" for e in emails]
    if usage == "ca":
        lines = ["[v3]", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "keyUsage=critical,keyCertSign,cRLSign"]
    else:
        eku = {"server": "serverAuth", "client": "clientAuth",
               "both": "serverAuth,clientAuth"}[usage]
        lines = ["[v3]", "basicConstraints=critical,CA:FALSE",
                 "keyUsage=critical,digitalSignature", f"extendedKeyUsage={eku}"]
    lines += ["subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    with open(ext, "w") as f:
        f.write("\n".join(lines) + "\n")
    serial = _serial()
    _run(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial",
          "0x" + serial, "-days", str(days), "-sha256", "-extfile", ext, "-extensions", "v3",
          "-out", cert_path])
    os.unlink(csr)
    os.unlink(ext)
    if chain:
        with open(cert_path, "a") as out:
            for c in chain:
                with open(c.cert) as f:
                    out.write(f.read())
    return Cert(cert_path, key_path, cn, dns, org, serial, ca.subject_cn)


def issue_server(pki, directory, server="api", org="Portico Reloaded", name=None):
    """Another certificate for the same names as pki.<server>, with a new key, serial and O=org."""
    base = getattr(pki, server)
    os.makedirs(directory, exist_ok=True)
    return issue(pki.ca, directory, name or f"{server}-{_serial()[:8].lower()}", base.subject_cn,
                 dns=base.sans, org=org, usage="server")


_cache = {}
_lock = threading.Lock()


def make_pki(directory):
    """The whole test PKI in `directory` (created if missing); made once per directory."""
    directory = os.path.abspath(directory)
    with _lock:
        if directory in _cache:
            return _cache[directory]
        os.makedirs(directory, exist_ok=True)
        pki = PKI(directory)
        pki.ca = make_ca(directory, "ca", CA_NAME)
        pki.other_ca = make_ca(directory, "other-ca", OTHER_CA_NAME, org="Somebody Else")
        pki.intermediate = issue(pki.ca, directory, "intermediate", "Portico Test Intermediate CA",
                                 usage="ca")
        for name, (cn, dns) in SERVERS.items():
            if name == "wild":  # signed by the intermediate; the file holds leaf + intermediate
                setattr(pki, name, issue(pki.intermediate, directory, name, cn, dns=dns,
                                         usage="server", chain=[pki.intermediate]))
            else:
                setattr(pki, name, issue(pki.ca, directory, name, cn, dns=dns, usage="server"))
        pki.client_a = issue(pki.ca, directory, "client-a", "client-a",
                             dns=["client-a.example.com"], usage="client")
        pki.client_b = issue(pki.ca, directory, "client-b", "client-b",
                             dns=["client-b.example.com"], usage="client")
        pki.client_uri = issue(pki.ca, directory, "client-uri", "client-uri",
                               uris=["spiffe://portico.test/partner-u"], usage="client")
        pki.client_email = issue(pki.ca, directory, "client-email", "client-email",
                                 emails=["ops@partner-e.example.com"], usage="client")
        pki.client_evil = issue(pki.ca, directory, "client-evil", "client-a.example.com.evil.test",
                                dns=["evil.client-a.example.com", "client-a.example.com.evil.test"],
                                usage="client")
        # Review M7: the CN of one consumer's DNS subject, with other SANs (must not match), and
        # without any SAN (the CN fallback of an untyped subject).
        pki.client_cn_spoof = issue(pki.ca, directory, "client-cn-spoof", "client-a.example.com",
                                    dns=["spoof.example.com"], usage="client")
        pki.client_cn_only = issue(pki.ca, directory, "client-cn-only", "client-a.example.com",
                                   usage="client")
        pki.client_email_spoof = issue(pki.ca, directory, "client-email-spoof", "spoof",
                                       emails=["client-a.example.com"], usage="client")
        pki.client_other = issue(pki.other_ca, directory, "client-other", "client-a",
                                 dns=["client-a.example.com"], usage="client")
        _cache[directory] = pki
        return pki


def describe(pem_or_der_path, der=False):
    """`openssl x509 -noout -subject -issuer -serial -ext subjectAltName` of a certificate."""
    args = ["x509", "-noout", "-subject", "-issuer", "-serial", "-ext", "subjectAltName",
            "-nameopt", "RFC2253", "-in", pem_or_der_path]
    if der:
        args += ["-inform", "DER"]
    return _run(args)


def describe_der(der_bytes):
    """The same for DER bytes (e.g. SSLSocket.getpeercert(binary_form=True))."""
    p = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", "-subject", "-issuer",
                        "-serial", "-ext", "subjectAltName", "-nameopt", "RFC2253"],
                       input=der_bytes, capture_output=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"openssl x509 failed: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode()
