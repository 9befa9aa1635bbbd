#!/usr/bin/env bash
# `make run` after `make up`: feed the sample attempts and show what comes out.
source "$(dirname "$0")/lib.sh"
cd "$BG_ROOT"
export BOUNCEGUARD_KAFKA="${BOUNCEGUARD_KAFKA:-127.0.0.1:${KAFKA_PORT:-9092}}"
.venv/bin/python deploy/demo.py
K="127.0.0.1:${KAFKA_PORT:-9092}"
cat <<MSG

Look further:
  kcat -b $K -C -t suppression.events -o beginning -e          # every suppression event
  kcat -b $K -C -t mta.log.raw.deadletter -o beginning -e       # unparseable log lines, with reasons
  kcat -b $K -C -t bounce.mail.raw.deadletter -o beginning -e  # bounce mails that are no usable DSN
  curl -s 127.0.0.1:${BOUNCEGUARD_WEB_PORT:-6066}/v1/addresses/nobody.here@gmail.com?tenant=acme  # one address
  curl -s 127.0.0.1:${BOUNCEGUARD_WEB_PORT:-6066}/metrics | grep ^bounceguard_            # counters
  tail -f var/worker-${BOUNCEGUARD_WEB_PORT:-6066}/worker.log                                 # worker log
Stop everything with: ${STOP_HINT:-make down}
MSG
