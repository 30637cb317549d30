#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers on 127.0.0.1:5432; start the
# machine's cluster if it is down. Under CI an unreachable PostgreSQL then fails
# the test run (tests/conftest.py), never silently skips.
#
# The suite runs in one process per core, and some tests start two gateway processes
# with 30 connections each: PostgreSQL's default of 100 connections is too few. A
# cluster of this machine allowing fewer than $WANT is raised to it, restarted only
# while no client is connected (a developer's server or another run keeps the old
# limit, with a warning, until it is idle).
set -u
WANT=300
PSQL=(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atq)

cluster_version() { ls /etc/postgresql 2>/dev/null | head -n 1; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(cluster_version)" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(cluster_version)" main start || true
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
  fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  exit 0
fi

have=$("${PSQL[@]}" -c "SHOW max_connections" 2>/dev/null || echo "$WANT")
if [ "$have" -lt "$WANT" ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(cluster_version)" ]; then
  others=$("${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
  if [ "$others" = "0" ]; then
    "${PSQL[@]}" -c "ALTER SYSTEM SET max_connections = $WANT" \
      && pg_ctlcluster --skip-systemctl-redirect "$(cluster_version)" main restart || true
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
  else
    echo "PostgreSQL allows $have connections, the suite wants $WANT; not restarting it under $others clients" >&2
  fi
fi
exit 0
