#!/usr/bin/env bash
# Run the test suite against a real PostgreSQL and a real broker: the ones running on this machine,
# or ones started for the run (see scripts/services.py). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --browser
exec .venv/bin/python scripts/services.py --tests --exec -- .venv/bin/python -m pytest "$@"
