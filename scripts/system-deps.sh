#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo start as real peers:
# openssh-server and sudo (real Linux hosts for Fabric and Ansible), postgresql
# (the ledger's team backend), chromium and fonts-noto-cjk (the HTML reports),
# golang-go and golang-golang-x-mod-dev (Go's own sumdb/note and sumdb/tlog verify
# opskit's checkpoints and proofs). Skips what is already there; never fails the
# build when apt is unavailable, the tests then report what they skipped.
set -u
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# sudo: Fabric's sudo() and Ansible's become are tested on the sshd lab hosts.
command -v sudo >/dev/null 2>&1 || need+=(sudo)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# redis-server: the Celery broker of distributed runs (tests/fixtures/redis.py).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# iproute2: `ip netns` makes the segmented sites of tests/fixtures/sites.py.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ] || need+=(golang-golang-x-mod-dev)
# chromium: the HTML reports are checked in a real headless browser; fonts-noto-cjk:
# so that it draws their Chinese text (tests/reports).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: apt-get not found; missing: ${need[*]}" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
# policy-rc.d stops Debian from starting the stock services; opskit starts its own.
if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "system-deps: apt-get install ${need[*]} failed" >&2
exit 0
