#!/usr/bin/env bash
# Installs what the tests need from Debian: Chromium (browser tests), PostgreSQL 15
# (database tests against a real server), libgomp1 (OpenMP, which LightGBM's learned
# ranker loads; most Debian systems have it) and gcc (compiles a learned ranker's trees to
# machine code; without it the ranker predicts with LightGBM, slower). Needs root and apt;
# without them it says so, and those tests skip with a message naming what is missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1' || need+=(libgomp1)
command -v gcc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})." >&2
  echo "system-deps: the browser and PostgreSQL tests will be skipped; without libgomp1 the learned-ranker" >&2
  echo "system-deps: tests fail (LightGBM cannot load)." >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
