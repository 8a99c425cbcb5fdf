#!/usr/bin/env bash
# Run the whole platform on this machine: database, broker, web, worker, beat and sample data.
# Nothing to install by hand; Ctrl-C stops everything, and the next run reuses the data.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python scripts/run_platform.py "$@"
