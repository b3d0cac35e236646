# The run's background activity and its faults (sourced by ../run).

# wait_for CLUSTER SQL EXPECTED TIMEOUT_S: polls until SQL returns EXPECTED.
wait_for() {
  local c="$1" sql="$2" want="$3" deadline=$(( $(date +%s) + $4 )) got=""
  while [ "$(date +%s)" -lt "$deadline" ]; do
    got=$(q "$c" "$sql" 2>/dev/null) && [ "$got" = "$want" ] && return 0
    sleep 0.3
  done
  return 1
}

# Quiet: no outbox row pending, no consumer or subscription behind, twice in a row a
# second apart (cancellations travel on after the order ended).
settle() {
  local quiet=0 deadline=$(( $(date +%s) + 180 )) c busy
  while [ "$(date +%s)" -lt "$deadline" ]; do
    busy=0
    for c in "${services[@]}"; do
      n=$(q "$c" "SELECT (SELECT count(*) FROM consistency.outbox)
                       + (SELECT coalesce(sum(lag), 0) FROM consistency.consumers)
                       + (SELECT coalesce(sum(lag), 0) FROM consistency.subscriptions)" 2>/dev/null) || n=1
      [ "$n" = 0 ] || busy=1
    done
    if [ $busy = 0 ]; then quiet=$((quiet + 1)); [ $quiet -ge 3 ] && return 0; else quiet=0; fi
    sleep 1
  done
  say "not settled after 180 s"
  return 1
}

# Stock moves between the warehouses by two-phase commit (inventory is the coordinator),
# a few a second, seeded, until the run says stop.
transfer_loop() {
  RANDOM=$seed
  local skus=(book lamp mug pen tea) from to
  while [ ! -e "$work/transfers.stop" ]; do
    if [ $((RANDOM % 2)) = 0 ]; then from=east; to=west; else from=west; to=east; fi
    q inventory "SELECT inventory.transfer('${skus[RANDOM % 5]}', $((1 + RANDOM % 5)), '$from', '$to')" \
      >/dev/null 2>>"$work/transfers.err"
    sleep 0.2
  done
}

# SIGSTOP / SIGCONT of a cluster's postmaster and every process it started: to its
# clients the server is there (connections stay open) but answers nothing.
cluster_pids() {
  local pm; pm=$(head -n 1 "$work/$1/data/postmaster.pid")
  echo "$pm"; ps -o pid= --ppid "$pm"
}
stop_cluster() { local p; for p in $(cluster_pids "$1"); do kill -STOP "$p"; done; }
cont_cluster() { local p; for p in $(cluster_pids "$1"); do kill -CONT "$p"; done; }

# The faults, one after another over the placing of the orders (about $1 seconds).
inject_faults() {
  local span="$1" gap pid
  # The four faults take about 30 s themselves; the rest of the span separates them.
  gap=$(( (span - 30) / 4 )); [ "$gap" -ge 2 ] || gap=2
  sleep "$gap"
  say "FAULT 1: Kafka broker stopped for 6 s"
  "$root/scripts/kafka/kafka" stop "$kafka_dir" >/dev/null 2>&1
  sleep 6
  "$root/scripts/kafka/kafka" start "$kafka_dir" >/dev/null 2>&1 || say "broker did not restart"
  say "FAULT 1 over: broker back at $broker"

  sleep "$gap"
  pid=$(q inventory "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer' LIMIT 1")
  say "FAULT 2: kill -9 of the inventory service's consumer process (pid $pid): its PostgreSQL restarts from a crash"
  [ -n "$pid" ] && kill -9 "$pid"
  wait_for inventory "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'pg_consistency consumer'" t 60
  say "FAULT 2 over: inventory consumers back"

  sleep "$gap"
  say "FAULT 3: the payment service's PostgreSQL stopped immediately (pg_ctl -m immediate), down for 3 s"
  as_pg_user pg_ctl -D "$work/payment/data" -m immediate -w stop >/dev/null 2>&1
  sleep 3
  "$root/scripts/pg-cluster" start "$work/payment" >/dev/null 2>&1 || say "payment did not restart"
  say "FAULT 3 over: payment restarted (crash recovery)"

  sleep "$gap"
  local before; before=$(q inventory "SELECT count(*) FROM inventory.transfers")
  say "FAULT 4: warehouse east (a 2PC participant) stalled with SIGSTOP for 4 s during transfers"
  stop_cluster east
  sleep 4
  cont_cluster east
  say "FAULT 4 over: SIGCONT; transfers committed during the stall and since: $(( $(q inventory "SELECT count(*) FROM inventory.transfers") - before ))"
}
