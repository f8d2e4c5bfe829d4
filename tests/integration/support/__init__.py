"""Helpers for Portico's integration tests: a gateway launcher, a recording upstream, raw HTTP."""
