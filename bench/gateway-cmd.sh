#!/usr/bin/env bash
# GATEWAY_CMD for ../shared/bench/compare and instr: renders the config, then execs portico so
# the gateway is the harness's own process.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sed -e "s/@PORT@/$GATEWAY_PORT/" -e "s/@UPSTREAM@/$UPSTREAM_PORT/" -e "s/@WORKERS@/$GATEWAY_WORKERS/" \
  "$here/portico.yaml.in" > "$BENCH_RUN_DIR/portico.yaml"
exec "$here/../build/portico" run -c "$BENCH_RUN_DIR/portico.yaml" --workers "$GATEWAY_WORKERS" --log-level warn
