#!/usr/bin/env bash
# What reached Kafka: the order events, read with isolation.level=read_committed
set -euo pipefail
for _ in $(seq 1 50); do
  n=$(kcat -C -b "$PGC_DEMO_BROKER" -t orders.events -o beginning -e -q -X isolation.level=read_committed -f '%k\n' 2>/dev/null | grep -c . || true)
  [ "${n:-0}" -ge 5 ] && break
  sleep 0.2
done
kcat -C -b "$PGC_DEMO_BROKER" -t orders.events -o beginning -e -q -X isolation.level=read_committed \
  -f '   partition %p offset %o key %k  %h\n' 2>/dev/null | sed -E 's/ce_source=[^,]*,?//; s/content-type=[^,]*,?//' | cut -c1-200
