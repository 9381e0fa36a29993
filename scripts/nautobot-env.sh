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
# A folder left by an interrupted build is rebuilt from scratch.
rm -rf "$venv"
python3 -m venv "$venv"
# The venv's own pip (not upgraded in place: an upgrade interrupted or raced
# leaves a pip that cannot import itself).
"$venv/bin/python" -m pip install -q "$spec" "psycopg2-binary>=2.9,<3"
