#!/usr/bin/env bash
# Make .venv ready: create it with python3 (3.11 or newer) if missing, and install
# requirements.txt only when the file changed since the last install. Safe to run again.
# --browser (test.sh): also Debian's chromium and chromium-driver for the review queue's browser test,
# when they are missing and apt-get can be used (root, or sudo without a password).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.requirements.sha256"

fail() {
    echo "bootstrap: $*" >&2
    exit 1
}

check_version() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
        || fail "Python 3.11 or newer is required, but $1 is $("$1" -V 2>&1 || echo 'not runnable'). Install a newer python3 or set PYTHON=/path/to/python3.11."
}

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found. Install Python 3.11 or newer, or set PYTHON=/path/to/python3."
    check_version "$PYTHON"
    echo "bootstrap: creating $VENV with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV" || fail "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
fi
check_version "$VENV/bin/python"

wanted="$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("requirements.txt", "rb").read()).hexdigest())')"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
    echo "bootstrap: installing requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt \
        || fail "pip install -r requirements.txt failed (see the messages above)"
    echo "$wanted" >"$STAMP"
fi

install_browser() {
    [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ] && return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null && sudo="sudo -n" || {
            echo "bootstrap: warning: the browser test needs Debian's chromium and chromium-driver; install them as root (apt-get install chromium chromium-driver)" >&2
            return 0
        }
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "bootstrap: warning: no apt-get here; install chromium and its chromedriver as /usr/bin/chromium and /usr/bin/chromedriver for the browser test" >&2
        return 0
    }
    echo "bootstrap: installing chromium and chromium-driver (the review queue's browser test)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null \
        || echo "bootstrap: warning: apt-get install chromium chromium-driver failed; the browser test will fail" >&2
}

if [ "${1:-}" = "--browser" ]; then
    install_browser
fi
