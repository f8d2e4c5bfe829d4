"""The Prometheus text exposition (format 0.0.4): scraping /metrics, a strict parser, histogram
buckets and Prometheus's histogram_quantile, and `promtool check metrics`.

    status, ctype, text = scrape(g)                # GET /metrics on the admin address
    m = parse(text)                                # raises ValueError on any malformed line
    m.types["portico_requests_total"]              # "counter"
    m.value("portico_requests_total", route="api", method="GET", status="200")   # exact labels
    m.total("portico_requests_total", route="api")                 # sum over matching series
    m.series("portico_requests_total")             # {(("method","GET"),...): value}
    h = m.histogram("portico_request_duration_seconds", route="api")
    histogram_quantile(0.99, h.buckets)            # linear interpolation, like PromQL's
"""
import http.client
import math
import re
import shutil
import subprocess

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def scrape(g, token=None, path="/metrics", timeout=5.0):
    """GET path on the admin address: (status, Content-Type, body text). token=None sends the
    gateway's admin_token (if any); token="" sends no Authorization."""
    token = g.admin_token if token is None else token
    c = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read().decode("utf-8")
    finally:
        c.close()


def scrape_parsed(g, token=None):
    status, ctype, text = scrape(g, token)
    assert status == 200, (status, text[:500])
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return parse(text)


def _unescape_label(s, i, line):
    """Reads a quoted label value starting after the opening quote at s[i]; returns (value, i
    just past the closing quote)."""
    out = []
    while True:
        if i >= len(s):
            raise ValueError(f"unterminated label value: {line!r}")
        ch = s[i]
        if ch == "\\":
            if i + 1 >= len(s):
                raise ValueError(f"dangling backslash: {line!r}")
            nxt = s[i + 1]
            if nxt == "\\":
                out.append("\\")
            elif nxt == '"':
                out.append('"')
            elif nxt == "n":
                out.append("\n")
            else:
                raise ValueError(f"bad escape \\{nxt} in a label value: {line!r}")
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        elif ch == "\n":
            raise ValueError(f"newline in a label value: {line!r}")
        else:
            out.append(ch)
            i += 1


def parse_sample(line):
    """`name{a="x",b="y\\"z"} 1.5 [timestamp]` -> (name, {labels}, float)."""
    m = _NAME.match(line)
    if not m:
        raise ValueError(f"no metric name: {line!r}")
    name = m.group(0)
    i = m.end()
    labels = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            while i < len(line) and line[i] == " ":
                i += 1
            if i < len(line) and line[i] == "}":
                i += 1
                break
            lm = _LABEL.match(line, i)
            if not lm:
                raise ValueError(f"bad label name at {i}: {line!r}")
            lname = lm.group(0)
            i = lm.end()
            if line[i:i + 2] != '="':
                raise ValueError(f"expected =\" after {lname}: {line!r}")
            value, i = _unescape_label(line, i + 2, line)
            if lname in labels:
                raise ValueError(f"label {lname} twice: {line!r}")
            labels[lname] = value
            if i < len(line) and line[i] == ",":
                i += 1
                continue
            if i < len(line) and line[i] == "}":
                i += 1
                break
            raise ValueError(f"expected , or }} at {i}: {line!r}")
    rest = line[i:]
    if not rest.startswith(" "):
        raise ValueError(f"expected a space before the value: {line!r}")
    parts = rest.split()
    if len(parts) not in (1, 2):
        raise ValueError(f"expected a value and maybe a timestamp: {line!r}")
    return name, labels, _float(parts[0], line)


def _float(text, line):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad value {text!r}: {line!r}") from None


class Histogram:
    def __init__(self, buckets, sum_, count):
        self.buckets = buckets  # [(le, cumulative count)] sorted by le, +Inf last
        self.sum = sum_
        self.count = count


class Exposition:
    def __init__(self):
        self.types = {}    # family -> type
        self.helps = {}    # family -> help text
        self.samples = []  # (name, labels, value) in order

    # ----- families -----
    def family_of(self, sample_name):
        """The family a sample belongs to (histogram/summary suffixes stripped when typed so)."""
        if sample_name in self.types:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count"):
            if sample_name.endswith(suffix):
                base = sample_name[:-len(suffix)]
                if self.types.get(base) in ("histogram", "summary"):
                    return base
        return sample_name

    def family_samples(self, family):
        return [s for s in self.samples if self.family_of(s[0]) == family]

    def label_names(self, family):
        """The set of label-name sets used by the family's samples (le excluded for buckets)."""
        out = set()
        for name, labels, _ in self.family_samples(family):
            names = set(labels)
            if name == family + "_bucket":
                names.discard("le")
            out.add(frozenset(names))
        return out

    # ----- values -----
    def series(self, name):
        """{frozenset(labels.items()): value} of the samples with exactly this name."""
        return {frozenset(lb.items()): v for n, lb, v in self.samples if n == name}

    def value(self, name, **labels):
        """The value of the one sample with exactly these labels, or None."""
        want = {k: str(v) for k, v in labels.items()}
        found = [v for n, lb, v in self.samples if n == name and lb == want]
        assert len(found) <= 1, f"{name}{want} appears {len(found)} times"
        return found[0] if found else None

    def total(self, name, **labels):
        """The sum over the samples of this name whose labels include these."""
        want = {k: str(v) for k, v in labels.items()}
        return sum(v for n, lb, v in self.samples
                   if n == name and all(lb.get(k) == x for k, x in want.items()))

    def matching(self, name, **labels):
        want = {k: str(v) for k, v in labels.items()}
        return [(lb, v) for n, lb, v in self.samples
                if n == name and all(lb.get(k) == x for k, x in want.items())]

    def histogram(self, family, **labels):
        want = {k: str(v) for k, v in labels.items()}
        buckets = []
        for n, lb, v in self.samples:
            if n == family + "_bucket" and {k: x for k, x in lb.items() if k != "le"} == want:
                buckets.append((_float(lb["le"], n), v))
        buckets.sort(key=lambda b: b[0])
        assert buckets, f"no {family}_bucket{want}"
        s = self.value(family + "_sum", **labels)
        c = self.value(family + "_count", **labels)
        assert s is not None and c is not None, f"{family}{want}: _sum {s}, _count {c}"
        return Histogram(buckets, s, c)


def parse(text):
    """Parses the whole exposition strictly: HELP/TYPE lines once per family and before its
    samples, every sample line well-formed, no series twice, a trailing newline."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    m = Exposition()
    seen = set()
    sampled_families = set()
    for line in text.split("\n")[:-1]:
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                if not _NAME.fullmatch(fam):
                    raise ValueError(f"bad family name: {line!r}")
                rest = parts[3] if len(parts) == 4 else ""
                if parts[1] == "HELP":
                    if fam in m.helps:
                        raise ValueError(f"second HELP for {fam}")
                    m.helps[fam] = rest
                else:
                    if fam in m.types:
                        raise ValueError(f"second TYPE for {fam}")
                    if fam in sampled_families:
                        raise ValueError(f"TYPE for {fam} after its samples")
                    if rest not in _TYPES:
                        raise ValueError(f"bad type: {line!r}")
                    m.types[fam] = rest
            continue
        name, labels, value = parse_sample(line)
        key = (name, frozenset(labels.items()))
        if key in seen:
            raise ValueError(f"series twice: {line!r}")
        seen.add(key)
        sampled_families.add(m.family_of(name))
        m.samples.append((name, labels, value))
    return m


# ----- histograms -------------------------------------------------------------------------------
def histogram_quantile(q, buckets):
    """Prometheus's histogram_quantile over [(le, cumulative count)] sorted by le, +Inf last:
    the rank q*count is found in the first bucket reaching it and interpolated linearly inside
    it (the lowest bucket starts at 0; a rank in +Inf gives the highest finite bound)."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start = 0.0 if b == 0 else buckets[b - 1][0]
    end = buckets[b][0]
    prev = 0.0 if b == 0 else buckets[b - 1][1]
    count = buckets[b][1] - prev
    return start + (end - start) * ((rank - prev) / count)


def check_buckets(h, what=""):
    """SPEC §8: bounds from under 1 ms to at least 2 s, at most x4 apart; cumulative counts never
    go down; the +Inf bucket equals _count."""
    bounds = [le for le, _ in h.buckets]
    assert math.isinf(bounds[-1]) and bounds[-1] > 0, (what, bounds)
    finite = bounds[:-1]
    assert finite[0] < 0.001, (what, bounds)
    assert finite[-1] >= 2, (what, bounds)
    for a, b in zip(finite, finite[1:]):
        assert a < b <= 4 * a, (what, a, b)
    counts = [c for _, c in h.buckets]
    assert all(x <= y for x, y in zip(counts, counts[1:])), (what, h.buckets)
    assert counts[-1] == h.count, (what, h.buckets, h.count)


# ----- promtool ---------------------------------------------------------------------------------
def promtool():
    return shutil.which("promtool")


def promtool_check(text, timeout=30):
    """`promtool check metrics` with the exposition on stdin: (exit code, its output)."""
    p = subprocess.run([promtool(), "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
