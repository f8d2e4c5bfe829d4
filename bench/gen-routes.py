#!/usr/bin/env python3
"""Writes a config with N prefix routes (/svc0 ... /svcN-1) to the echo upstream.

usage: gen-routes.py N PORT ADMIN_PORT OUT.yaml [VARIANT]
VARIANT changes a response header on every route, so two variants differ everywhere.
"""
import sys

n, port, admin_port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
variant = sys.argv[5] if len(sys.argv) > 5 else "a"
lines = [
    "workers: 2",
    f"listeners: [{{address: 127.0.0.1:{port}}}]",
    f"admin: {{address: 127.0.0.1:{admin_port}}}",
    'access_log: {path: "off"}',
    "upstreams:",
    "  echo: {builtin: echo}",
    "routes:",
]
for i in range(n):
    lines.append(
        f"  - {{name: r{i}, match: {{path_prefix: /svc{i}}}, upstream: echo, auth: public, "
        f"headers: {{response: {{set: {{X-Variant: {variant}}}}}}}}}"
    )
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
