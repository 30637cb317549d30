#!/usr/bin/env bash
# Make sure the Redis the tests use answers on 127.0.0.1:6379 (GATEWAY_TEST_REDIS_URL); start
# the machine's server if it is down. Under CI an unreachable Redis then fails the tests that
# need it (tests/conftest.py, `redis_url`), never silently skips.
set -u
ping() { "$(dirname "$0")/../.venv/bin/python" - <<'PY' 2>/dev/null
import os, sys, redis
url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
try:
    redis.Redis.from_url(url, socket_connect_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}
if ping; then exit 0; fi
if command -v redis-server >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null || true
  for _ in $(seq 1 20); do
    ping && exit 0
    sleep 0.5
  done
fi
echo "Redis is not reachable on 127.0.0.1:6379" >&2
exit 0
