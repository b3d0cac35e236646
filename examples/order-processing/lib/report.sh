# The report (sourced by ../run). Every figure is read from the databases or from Kafka.

checked=0; violated=0
# check NAME OK(t|f) DETAIL
check() {
  checked=$((checked + 1))
  if [ "$2" = t ]; then printf '  ok    %s%s\n' "$1" "${3:+ ($3)}"
  else violated=$((violated + 1)); printf '  FAIL  %s%s\n' "$1" "${3:+ ($3)}"; fi
}
eq() { if [ "$1" = "$2" ]; then echo t; else echo f; fi; }
kafka_count() {
  kcat -C -b "$broker" -t "$1" -e -q -X isolation.level=read_committed -f '%o\n' 2>/dev/null | wc -l
}

report() {
  echo
  echo "================================ report ================================"
  echo "orders by final status (orders database):"
  q orders "SELECT format('  %-10s %6s  %s', status, sum(n), coalesce(string_agg(why || ' ' || n, ', ' ORDER BY why), ''))
              FROM (SELECT status, CASE split_part(reason, ':', 1) WHEN 'reserve_inventory' THEN 'out of stock'
                                    WHEN 'process_payment' THEN 'payment declined' WHEN 'create_shipment' THEN 'shipping timeout'
                                    ELSE split_part(reason, ':', 1) END AS why, count(*) n
                      FROM orders.orders GROUP BY 1, 2) s GROUP BY status ORDER BY status"
  echo "  (reasons: $(q orders "SELECT string_agg(DISTINCT left(reason, 70), ' | ') FROM orders.orders WHERE reason IS NOT NULL"))"
  echo "submissions: $(q orders "SELECT count(*) || ' (' || count(*) FILTER (WHERE duplicate) || ' duplicates with the same idempotency key)' FROM orders.submissions")"
  echo
  echo "compensations run:"
  if [ "$style" = orchestrated ]; then
    q orders "SELECT format('  %-18s %5s undone', e.data->>'step', count(*))
                FROM consistency.sagas s, consistency.read_stream('saga-' || s.id) e
               WHERE s.status IN ('compensated', 'failed') AND e.type = 'CompensationSucceeded'
               GROUP BY e.data->>'step' ORDER BY e.data->>'step'"
  fi
  echo "  inventory released: $(q inventory "SELECT count(*) FROM inventory.reservations WHERE status = 'released' AND sku IS NOT NULL"), refunds: $(q payment "SELECT count(*) FROM payment.refunds"), shipments cancelled: $(q shipping "SELECT count(*) FROM shipping.shipments WHERE status = 'cancelled' AND region IS NOT NULL")"
  echo
  local t c n ok detail
  echo "Kafka messages per topic (read_committed, kcat) vs what the outboxes accepted:"
  local kafka_ok=t kafka_detail=""
  for t in "${topics[@]}"; do
    n=$(kafka_count "$t")
    local acc=0 a
    for c in "${services[@]}"; do
      a=$(q "$c" "SELECT coalesce(sum(messages), 0) FROM ops.outbox_accepted WHERE topic = '$t'"); acc=$((acc + a))
    done
    printf '  %-20s kafka %6s   outboxes %6s\n' "$t" "$n" "$acc"
    [ "$n" = "$acc" ] || { kafka_ok=f; kafka_detail+="$t: $n vs $acc; "; }
  done
  echo
  echo "stock per SKU (inventory): initial = on hand + reserved + shipped"
  q inventory "SELECT format('  %-8s %6s = %6s + %4s + %5s', sku, initial, on_hand, reserved, shipped) FROM inventory.stock ORDER BY sku"
  echo "warehouses (2PC participants), per SKU east + west:"
  for t in book lamp mug pen tea; do
    printf '  %-8s %s + %s\n' "$t" "$(q east "SELECT qty FROM bins WHERE sku = '$t'")" "$(q west "SELECT qty FROM bins WHERE sku = '$t'")"
  done
  echo "  transfers committed: $(q inventory "SELECT count(*) FROM inventory.transfers"), failed (errors): $(cat "$work/transfers.err" 2>/dev/null | grep -c ERROR)"
  echo
  local charged refunded revenue
  charged=$(q payment "SELECT coalesce(sum(amount), 0) FROM payment.payments WHERE status = 'charged'")
  refunded=$(q payment "SELECT coalesce(sum(amount), 0) FROM payment.refunds")
  revenue=$(q orders "SELECT coalesce(sum(amount), 0) FROM orders.orders WHERE status = 'completed'")
  echo "money: charged $charged - refunded $refunded = $(q payment "SELECT $charged - $refunded"); revenue of completed orders $revenue"
  echo
  echo "throughput and latency (orders database, placement to final status):"
  q orders "SELECT format('  %s orders in %s s: %s orders/s; completed orders p50 %s ms, p99 %s ms; all p99 %s ms',
                  count(*), round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 1),
                  round(count(*) / nullif(extract(epoch FROM max(finished_at) - min(created_at)), 0)::numeric, 1),
                  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
                         FILTER (WHERE status = 'completed') * 1000)::numeric),
                  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
                         FILTER (WHERE status = 'completed') * 1000)::numeric),
                  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)) * 1000)::numeric))
              FROM orders.orders"
  if [ "$style" = orchestrated ]; then
    local sid
    sid=$(q orders "SELECT s.id FROM consistency.sagas s JOIN orders.orders o ON o.saga_id = s.id
                    WHERE s.status = 'compensated' ORDER BY o.reason LIKE 'create_shipment%' DESC, o.reason LIKE 'process_payment%' DESC, o.id LIMIT 1")
    if [ -n "$sid" ]; then
      echo
      echo "one compensated saga ($sid, order $(q orders "SELECT id || ': ' || coalesce(reason, '') FROM orders.orders WHERE saga_id = '$sid'")):"
      echo '```mermaid'
      q orders "SELECT consistency.saga_diagram('$sid')"
      echo '```'
    fi
  fi

  echo
  echo "invariants:"
  local norders
  norders=$(q orders "SELECT count(*) FROM orders.orders")
  check "every order placed reached a final status" \
    "$(q orders "SELECT count(*) = 0 FROM orders.orders WHERE status NOT IN ('completed', 'cancelled')")" \
    "$(q orders "SELECT count(*) || ' of ' || $norders || ' completed or cancelled' FROM orders.orders WHERE status IN ('completed', 'cancelled')")"
  if [ "$style" = orchestrated ]; then
    check "every saga terminal (completed or compensated), one per order" \
      "$(q orders "SELECT count(*) FILTER (WHERE status NOT IN ('completed', 'compensated')) = 0 AND count(*) = $norders FROM consistency.sagas")" \
      "$(q orders "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM consistency.sagas GROUP BY 1) s")"
    check "saga outcome agrees with the order's status" \
      "$(q orders "SELECT count(*) = 0 FROM orders.orders o JOIN consistency.sagas s ON s.id = o.saga_id
                   WHERE (o.status = 'completed') <> (s.status = 'completed')")"
  fi
  check "one order per idempotency key; duplicates got the same order" \
    "$(q orders "SELECT count(*) = 0 FROM (SELECT idempotency_key FROM orders.submissions GROUP BY 1 HAVING count(DISTINCT order_id) > 1) d")" \
    "$(q orders "SELECT count(DISTINCT idempotency_key) || ' keys, ' || count(*) || ' submissions' FROM orders.submissions")"
  check "read-your-writes through PgBouncer: every order read back from the projection after its token" \
    "$(q orders "SELECT count(*) FILTER (WHERE NOT (reached AND seen)) = 0 AND count(DISTINCT order_id) = $norders FROM orders.read_checks")" \
    "$(q orders "SELECT count(*) FILTER (WHERE reached AND seen) || ' of ' || count(*) || ' reads' FROM orders.read_checks")"
  check "projection (subscription order-view) agrees with every order" \
    "$(q orders "SELECT count(*) = 0 FROM orders.orders o LEFT JOIN orders.order_view v ON v.order_id = o.id
                 WHERE v.status IS DISTINCT FROM o.status OR v.amount <> o.amount")"
  check "order aggregate (event store) agrees with every order" \
    "$(q orders "SELECT count(*) = 0 FROM orders.orders o, consistency.aggregate_state('order-' || o.id) a
                 WHERE a.state->>'status' IS DISTINCT FROM o.status")"
  check "schema-1 OrderCreated events read upcast (amount, currency)" \
    "$(q orders "SELECT count(*) = 3 FROM orders.order_view WHERE order_id LIKE 'legacy%' AND currency = 'EUR'
                   AND amount = (1990 + substr(order_id, 7)::int) / 100.0")"
  check "stock conserved per SKU: on hand + reserved + shipped = initial, none negative" \
    "$(q inventory "SELECT bool_and(on_hand + reserved + shipped = initial AND on_hand >= 0) FROM inventory.stock")"
  check "no stock left reserved once every order ended" "$(q inventory "SELECT sum(reserved) = 0 FROM inventory.stock")"
  check "shipped stock per SKU = quantities of the completed orders" \
    "$(eq "$(q inventory "SELECT string_agg(sku || ':' || shipped, ',' ORDER BY sku) FROM inventory.stock WHERE shipped > 0")" \
          "$(q orders "SELECT string_agg(sku || ':' || n, ',' ORDER BY sku) FROM (SELECT sku, sum(qty) n FROM orders.orders WHERE status = 'completed' GROUP BY 1) s")")"
  local completed_md5
  completed_md5=$(q orders "SELECT md5(coalesce(string_agg(id, ',' ORDER BY id), '')) FROM orders.orders WHERE status = 'completed'")
  check "inventory shipped exactly the completed orders" \
    "$(eq "$(q inventory "SELECT md5(coalesce(string_agg(order_id, ',' ORDER BY order_id), '')) FROM inventory.reservations WHERE status = 'shipped'")" "$completed_md5")"
  check "money conserved: charged - refunded = revenue of completed orders" \
    "$(q payment "SELECT $charged - $refunded = $revenue")" "$charged - $refunded vs $revenue"
  check "every balance = initial - charged + refunded" \
    "$(q payment "SELECT bool_and(a.balance = a.initial - coalesce(c.v, 0) + coalesce(r.v, 0)) FROM payment.accounts a
                  LEFT JOIN (SELECT customer, sum(amount) v FROM payment.payments WHERE status = 'charged' GROUP BY 1) c USING (customer)
                  LEFT JOIN (SELECT p.customer, sum(r.amount) v FROM payment.refunds r JOIN payment.payments p USING (order_id) GROUP BY 1) r USING (customer)")"
  check "charged at most once and refunded at most once per order; net charges = exactly the completed orders" \
    "$(eq "$(q payment "SELECT md5(coalesce(string_agg(order_id, ',' ORDER BY order_id), '')) FROM payment.payments p
                        WHERE status = 'charged' AND NOT EXISTS (SELECT 1 FROM payment.refunds r WHERE r.order_id = p.order_id)")" "$completed_md5")"
  check "shipping scheduled exactly the completed orders" \
    "$(eq "$(q shipping "SELECT md5(coalesce(string_agg(order_id, ',' ORDER BY order_id), '')) FROM shipping.shipments WHERE status = 'scheduled'")" "$completed_md5")"
  check "Kafka holds exactly what the outboxes accepted, per topic" "$kafka_ok" "${kafka_detail%; }"
  for c in "${services[@]}"; do
    check "$c: outbox drained, relay delivered every accepted message, nothing dead-lettered" \
      "$(q "$c" "SELECT (SELECT count(*) FROM consistency.outbox) = 0
                    AND (SELECT delivered_total FROM consistency.outbox_status) = (SELECT coalesce(sum(messages), 0) FROM ops.outbox_accepted)
                    AND (SELECT count(*) FROM consistency.dead_letters) = 0
                    AND (SELECT count(*) FROM consistency.consumer_dead_letters) = 0")" \
      "$(q "$c" "SELECT 'delivered ' || (SELECT delivered_total FROM consistency.outbox_status) || ', accepted ' || (SELECT coalesce(sum(messages), 0) FROM ops.outbox_accepted) || ', consumer dead letters ' || (SELECT count(*) FROM consistency.consumer_dead_letters)")"
  done
  local a b ok2=t
  for t in book lamp mug pen tea; do
    a=$(q east "SELECT qty FROM bins WHERE sku = '$t'"); b=$(q west "SELECT qty FROM bins WHERE sku = '$t'")
    [ $((a + b)) = 2000 ] || ok2=f
    # Each committed transfer is recorded locally in the same distributed transaction.
    [ "$a" = "$(q inventory "SELECT 1000 - coalesce(sum(qty) FILTER (WHERE from_wh = 'east'), 0) + coalesce(sum(qty) FILTER (WHERE to_wh = 'east'), 0) FROM inventory.transfers WHERE sku = '$t'")" ] || ok2=f
  done
  check "2PC transfers atomic: east + west conserved, and both match the coordinator's record" "$ok2"
  local prepared=0
  for c in "${services[@]}" "${warehouses[@]}"; do prepared=$((prepared + $(q "$c" "SELECT count(*) FROM pg_prepared_xacts"))); done
  check "no prepared transaction left on any of the six clusters" "$(eq "$prepared" 0)" "$prepared"
  check "no transaction in doubt (consistency.in_doubt)" "$(q inventory "SELECT count(*) = 0 FROM consistency.in_doubt")"
  for c in "${services[@]}"; do
    check "$c: check_integrity()" "$(q "$c" "SELECT bool_and(ok) FROM consistency.check_integrity()")" \
      "$(q "$c" "SELECT coalesce(string_agg(check_name || ': ' || detail, '; '), 'all checks ok') FROM consistency.check_integrity() WHERE NOT ok")"
  done
  check "no subscription or consumer parked" \
    "$(eq "$(for c in "${services[@]}"; do q "$c" "SELECT count(*) FROM consistency.subscriptions WHERE status <> 'active'"; done | paste -sd+ | bc)" 0)"
  echo
  echo "invariants: $checked checked, $violated violated"
  [ "$violated" = 0 ]
}
