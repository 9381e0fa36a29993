#!/usr/bin/env bash
# Creates the isolated virtual environment that the Nautobot test fixture runs
# the real Nautobot server from (tests/fixtures/nautobot.py). Nautobot pins its
# own Django/DRF/celery versions, so it never goes into opskit's own venv.
# Usage: scripts/nautobot-env.sh [VENV_DIR]   (default: .venv-nautobot)
# Idempotent: exits quickly when nautobot-server is already installed.
set -eu
venv="${1:-.venv-nautobot}"
spec="${NAUTOBOT_SPEC:-nautobot>=3.2,<3.3}"
if [ -x "$venv/bin/nautobot-server" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
"$venv/bin/pip" install -q "$spec" "psycopg2-binary>=2.9,<3"
