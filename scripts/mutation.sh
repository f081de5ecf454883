#!/usr/bin/env bash
# Mutation testing of the modules that decide values (docs/testing.md): installs the pinned
# mutmut (the `mutation` extra) and runs scripts/mutation.py, one module at a time against its
# unit tests, under nice. Not part of the test command: all modules take about an hour here.
#   scripts/mutation.sh                      # every module of scripts/mutation.py MODULES
#   scripts/mutation.sh exporter/api/budget.py [MODULE=TEST,TEST ...]
#   scripts/mutation.sh --table              # the table of the last runs (build/mutation/)
# MUTATION_NICE (default 15) and --max-children (default 2) keep it off a shared machine's back.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q -e '.[test,mutation]'
exec nice -n "${MUTATION_NICE:-15}" .venv/bin/python scripts/mutation.py "$@"
