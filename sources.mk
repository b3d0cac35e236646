# The one list of C++ sources, read by the Makefile (PGXS) and by CMakeLists.txt.
# CORE_SRCS never include PostgreSQL headers: they are also built into the unit tests.
# PG_SRCS form the PostgreSQL boundary and everything that uses it.
# One file per line, `CORE_SRCS += path` or `PG_SRCS += path`.

CORE_SRCS += src/common/backoff.cpp

PG_SRCS += src/pg/catching.cpp
PG_SRCS += src/pg/component.cpp
PG_SRCS += src/pg/guard.cpp
PG_SRCS += src/pg/module.cpp
PG_SRCS += src/pg/roles.cpp
PG_SRCS += src/pg/run_as.cpp
PG_SRCS += src/pg/spi.cpp
PG_SRCS += src/pg/text.cpp
PG_SRCS += src/pg/version.cpp
PG_SRCS += src/worker/bgworker.cpp
PG_SRCS += src/worker/databases.cpp
PG_SRCS += src/worker/drop_database.cpp
PG_SRCS += src/worker/function_refs.cpp
PG_SRCS += src/worker/hard_stop.cpp
PG_SRCS += src/worker/launcher.cpp
PG_SRCS += src/worker/loop.cpp
PG_SRCS += src/worker/processes.cpp
PG_SRCS += src/worker/settings.cpp
PG_SRCS += src/worker/shared_state.cpp
PG_SRCS += src/worker/status.cpp
PG_SRCS += src/worker/wake.cpp
PG_SRCS += src/worker/worker_main.cpp

# --- event store ---------------------------------------------------------------
CORE_SRCS += src/eventstore/core.cpp
PG_SRCS += src/eventstore/aggregates.cpp
PG_SRCS += src/eventstore/append.cpp
PG_SRCS += src/eventstore/catalog.cpp
PG_SRCS += src/eventstore/read.cpp
PG_SRCS += src/eventstore/settings.cpp
PG_SRCS += src/eventstore/state.cpp
PG_SRCS += src/eventstore/subscription_functions.cpp
PG_SRCS += src/eventstore/subscriptions.cpp


# --- outbox and Kafka relay ----------------------------------------------------
CORE_SRCS += src/outbox/names.cpp
CORE_SRCS += src/relay/batch.cpp
CORE_SRCS += src/relay/circuit_breaker.cpp
CORE_SRCS += src/relay/kafka.cpp
CORE_SRCS += src/relay/murmur2.cpp
CORE_SRCS += src/relay/properties.cpp
PG_SRCS += src/outbox/publish.cpp
PG_SRCS += src/relay/outbox_store.cpp
PG_SRCS += src/relay/relay.cpp
PG_SRCS += src/relay/settings.cpp
PG_SRCS += src/relay/status.cpp


# --- sagas ---------------------------------------------------------------------
CORE_SRCS += src/saga/json.cpp
CORE_SRCS += src/saga/definition.cpp
CORE_SRCS += src/saga/duration.cpp
CORE_SRCS += src/saga/machine.cpp
CORE_SRCS += src/saga/diagram.cpp
PG_SRCS += src/saga/api.cpp
PG_SRCS += src/saga/advance.cpp
PG_SRCS += src/saga/diagram_functions.cpp
PG_SRCS += src/saga/hard_stops.cpp
PG_SRCS += src/saga/observe.cpp
PG_SRCS += src/saga/pg_saga.cpp
PG_SRCS += src/saga/settings.cpp
PG_SRCS += src/saga/steps.cpp
PG_SRCS += src/saga/workers.cpp


# --- two-phase commit ----------------------------------------------------------
CORE_SRCS += src/twopc/decision.cpp
CORE_SRCS += src/twopc/gid.cpp
CORE_SRCS += src/twopc/savepoints.cpp
CORE_SRCS += src/twopc/statement.cpp
PG_SRCS += src/twopc/coordinator.cpp
PG_SRCS += src/twopc/functions.cpp
PG_SRCS += src/twopc/ops.cpp
PG_SRCS += src/twopc/recovery.cpp
PG_SRCS += src/twopc/remote.cpp
PG_SRCS += src/twopc/row_json.cpp
PG_SRCS += src/twopc/settings.cpp
PG_SRCS += src/twopc/state.cpp


# --- operations ----------------------------------------------------------------
CORE_SRCS += src/metrics/collect.cpp
CORE_SRCS += src/metrics/histogram.cpp
CORE_SRCS += src/metrics/pending.cpp
CORE_SRCS += src/metrics/saga_events.cpp
CORE_SRCS += src/metrics/series.cpp
PG_SRCS += src/metrics/component.cpp
PG_SRCS += src/metrics/functions.cpp



# --- inbox (Kafka into PostgreSQL) -----------------------------------------------
CORE_SRCS += src/inbox/hard_stop_label.cpp
CORE_SRCS += src/inbox/kafka_consumer.cpp
CORE_SRCS += src/inbox/message.cpp
CORE_SRCS += src/inbox/wake_pipe.cpp
PG_SRCS += src/inbox/api.cpp
PG_SRCS += src/inbox/apply.cpp
PG_SRCS += src/inbox/batch.cpp
PG_SRCS += src/inbox/hard_stops.cpp
PG_SRCS += src/inbox/settings.cpp
PG_SRCS += src/inbox/worker.cpp


# --- correlation and causation ids ---------------------------------------------
CORE_SRCS += src/correlation/ids.cpp
PG_SRCS += src/correlation/context.cpp
# --- consistency levels (tokens, waits, the read horizon in WAL) ------------------
CORE_SRCS += src/consistency/token.cpp
PG_SRCS += src/consistency/functions.cpp
PG_SRCS += src/consistency/horizon.cpp
PG_SRCS += src/consistency/settings.cpp
PG_SRCS += src/consistency/wait.cpp
