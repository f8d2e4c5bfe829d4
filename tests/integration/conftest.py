"""Fixtures for the integration suite: the portico binary, gateways, recording upstreams.

Run: PORTICO_BIN=/abs/path/to/portico python3 -m pytest -q -p no:cacheprovider tests/integration
With PORTICO_SANITIZED=1 timings get more slack (and `make test` deselects `slow`).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import gateway as gw  # noqa: E402
from support.upstream import Upstream  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~10 s or moves hundreds of MiB")


@pytest.fixture(scope="session")
def portico_bin():
    path = os.environ.get("PORTICO_BIN") or os.path.join(REPO, "build", "portico")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"portico binary not found at {path} (set PORTICO_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def repo_dir():
    return REPO


def _tmpdir_maker(tmp_path_factory, base):
    counter = [0]

    def make():
        counter[0] += 1
        return str(tmp_path_factory.mktemp(f"{base}{counter[0]}"))
    return make


def _finish(factory):
    problems = factory.close()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def gateway(portico_bin, tmp_path_factory):
    """Factory: gateway(cfg, subs={...}, admin=True, env={...}) -> support.gateway.Gateway."""
    factory = gw.GatewayFactory(portico_bin, _tmpdir_maker(tmp_path_factory, "gw"))
    yield factory
    _finish(factory)


@pytest.fixture(scope="module")
def module_gateway(portico_bin, tmp_path_factory):
    """Module-scoped gateway factory, for gateways shared by the tests of one file."""
    factory = gw.GatewayFactory(portico_bin, _tmpdir_maker(tmp_path_factory, "mgw"))
    yield factory
    _finish(factory)


class _UpstreamFactory:
    def __init__(self):
        self.upstreams = []

    def __call__(self, name="up"):
        u = Upstream(name)
        self.upstreams.append(u)
        return u

    def close(self):
        for u in self.upstreams:
            u.stop()


@pytest.fixture
def upstreams():
    """Factory: upstreams("name") -> a recording support.upstream.Upstream."""
    f = _UpstreamFactory()
    yield f
    f.close()


@pytest.fixture
def upstream(upstreams):
    return upstreams("up")


@pytest.fixture(scope="module")
def module_upstreams():
    f = _UpstreamFactory()
    yield f
    f.close()
