#!/usr/bin/env bash
# `make run`: keel-psp-sim (the simulated PSPs cardco, altpay and bankco) beside keeld, on its embedded
# journal. Ctrl-C or SIGTERM stops both; keeld drains and syncs before it exits.
set -euo pipefail
BIN=${BIN:-build/release/src}
LISTEN=${LISTEN:-127.0.0.1:8080}
DATA=${DATA:-./data}
SIM_LISTEN=${SIM_LISTEN:-127.0.0.1:9090}
SEED=${SEED:-1}

"$BIN/psp_sim/keel-psp-sim" --listen "$SIM_LISTEN" --config config/psp-sim.toml --seed "$SEED" \
  > >(sed 's/^/keel-psp-sim: /') &
SIM_PID=$!
stop_sim() { kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
trap stop_sim EXIT

"$BIN/keeld/keeld" --config config/keeld.toml --listen "$LISTEN" --data "$DATA" &
KEELD_PID=$!
forward() { kill -TERM "$KEELD_PID" 2>/dev/null || true; }
trap forward INT TERM
status=0
wait "$KEELD_PID" || status=$?
# A signal interrupts the first wait; wait again for keeld's clean exit.
if kill -0 "$KEELD_PID" 2>/dev/null; then wait "$KEELD_PID" || status=$?; fi
exit "$status"
