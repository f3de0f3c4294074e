#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages when missing,
# a virtualenv with the project and its test extras), then runs ruff, mypy, lint-imports (the
# layering contract in pyproject.toml) and pytest, spread over worker processes (pytest-xdist:
# the tests mostly wait on brokers and timers, so more workers than cores pay off).
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k delivery`.
#   LP_WORKERS=N     pytest workers (default 6; 0 runs in this process, as before)
#   LP_STRESS=1      keep both cores busy while pytest runs (stress-ng --cpu 2, else a bounded
#                    Python busy loop), to prove no test depends on timing
#   LP_DATABASES=..  the databases the tests marked both_databases run on (default sqlite,postgresql:
#                    a representative set of tests/e2e, each PostgreSQL run on a fresh database of
#                    its own on 127.0.0.1:5432); without a reachable PostgreSQL those runs and the
#                    postgres tests are skipped, and this script says so before pytest starts
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: $* (run as root, or: sudo apt-get install $*)" >&2
    exit 1
  fi
  if [ -z "${LP_APT_UPDATED:-}" ]; then apt-get update -qq; LP_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
# the browser tests drive Debian's Chromium through Playwright (no Playwright browser download)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
# tests/ops/test_deploy.py checks and runs the nginx example of docs/deploy/ (skipped without nginx)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# the unit agent's tests play through a real user-space PulseAudio (null sinks) and read it with pactl
command -v pulseaudio >/dev/null 2>&1 || need+=(pulseaudio)
command -v pactl >/dev/null 2>&1 || need+=(pulseaudio-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt_install "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== lint-imports"; .venv/bin/lint-imports --no-cache

hog_pids=()
stop_hog() {
  for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hog_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  hog_pids=()
}
trap stop_hog EXIT
trap 'stop_hog; exit 130' INT TERM
if [ "${LP_STRESS:-}" = 1 ]; then
  # bounded either way (2 h), so a killed run cannot leave a hog behind for long
  if command -v stress-ng >/dev/null 2>&1; then
    stress-ng --cpu 2 --timeout 7200 --quiet & hog_pids+=($!)
  else
    for _ in 1 2; do
      python3 -c 'import time
end = time.monotonic() + 7200
while time.monotonic() < end: pass' & hog_pids+=($!)
    done
  fi
  echo "== LP_STRESS=1: CPU hog running (pids ${hog_pids[*]})"
fi

if ! .venv/bin/python -c 'import psycopg; psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3).close()' 2>/dev/null; then
  echo "== WARNING: PostgreSQL is not reachable on 127.0.0.1:5432 (db test, trust): its tests will be SKIPPED" >&2
fi

workers=${LP_WORKERS:-6}
xdist=()
if [ "$workers" != 0 ]; then xdist=(-n "$workers" --dist worksteal); fi
echo "== pytest"
.venv/bin/pytest -q -p no:cacheprovider "${xdist[@]}" "$@"
