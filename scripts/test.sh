#!/usr/bin/env bash
# Install everything the test suite needs and run it: lint, types, unit and end-to-end tests
# (Debian's prometheus for promtool and the real-server tests, prometheus-alertmanager for
# amtool and the Alertmanager tests, chromium for the status page, curl and openssl for the
# README's commands).
# Works on a fresh Debian machine with Python 3.11 (uses sudo for apt-get when not root).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 ||
  need_apt+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The README walk (tests/e2e/test_readme_walk.py) runs its curl and openssl commands.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c "import ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy -p exporter
echo "== import layers"; .venv/bin/lint-imports --no-cache
if [ "$#" -eq 0 ]; then
  # The whole suite, with the coverage floor of pyproject.toml ([tool.coverage.report]).
  echo "== pytest (with coverage)"; .venv/bin/python -m pytest --cov --cov-report=term
else
  echo "== pytest $*"; .venv/bin/python -m pytest "$@"
fi
