# shellcheck shell=bash
# scripts/lib/common.sh -- helpers sourced by scripts/test.sh and scripts/demo.sh.
#
# Target: Debian 12, run as root, WITHOUT systemd (no socket activation, no D-Bus), as described in
# /work/shared/reference/feasibility.md. Every helper is idempotent: calling it twice, or running a
# script twice in a row, is safe and the second time is fast.
#
#   fd_init                 traps (cleanup on exit, failure, Ctrl-C) + the run directory
#   fd_lock                 serialise scripts that share libvirtd / the run directory (flock)
#   fd_install_system       apt packages (skipped when all installed), libvirt-qemu user, qemu.conf
#   fd_venv                 $FD_VENV with `pip install -e .[server,dev]` (skipped when unchanged)
#   fd_web_assets           web/node_modules (noVNC, xterm.js) with `npm ci` (skipped when unchanged)
#   fd_start_libvirtd       virtlogd + libvirtd, unless qemu:///system already answers
#   fd_stop_libvirtd        stops them again, only if WE started them
#   fd_start_postgres       private throwaway PostgreSQL 15 on 127.0.0.1:<free port>, exports
#                           FLIGHTDECK_TEST_PG_URL
#   fd_stop_postgres        `pg_ctl stop -m fast` + removes its data directory
#
# Settings (environment):
#   FD_RUN_DIR   run directory: logs, pid files, PostgreSQL data   (default /var/tmp/flightdeck-ci)
#   FD_VENV      virtualenv                                        (default <repo>/.venv)
#   FD_PYTHON    interpreter that creates the venv, >= 3.11        (default python3)
#   FD_KEEP      1 = leave the daemons we started running at exit  (default 0)
#   FD_LOCK_FILE lock shared by all scripts of this repo           (default /var/tmp/flightdeck-scripts.lock)
#
# PostgreSQL authentication: the private server accepts only TCP on 127.0.0.1 with a password
# (scram-sha-256) for role `flightdeck` (random password per run, CREATEDB, owner of database
# `flightdeck_test`); the superuser `postgres` is reachable only through the unix socket inside the
# run directory (peer authentication). The data directory is fsync=off: it is thrown away anyway.

if [[ -n "${FD_COMMON_SOURCED:-}" ]]; then
    return 0
fi
FD_COMMON_SOURCED=1

FD_REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
: "${FD_RUN_DIR:=/var/tmp/flightdeck-ci}"
: "${FD_VENV:=$FD_REPO/.venv}"
: "${FD_PYTHON:=python3}"
: "${FD_KEEP:=0}"
: "${FD_LOCK_FILE:=/var/tmp/flightdeck-scripts.lock}"
: "${FD_PG_BIN:=/usr/lib/postgresql/15/bin}"
: "${FD_LIBVIRT_URI:=qemu:///system}"
FD_LOG_DIR=$FD_RUN_DIR/logs

# The packages of feasibility.md (no recommends), plus PostgreSQL and the build/runtime bits the
# scripts themselves use. python3-venv / python3-dev are added by fd_install_system when the
# interpreter in FD_PYTHON needs them (Debian's /usr/bin/python3 does; pyenv's does not).
FD_SYSTEM_PACKAGES=(
    qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    libvirt-dev pkg-config dnsmasq-base ipxe-qemu bridge-utils iproute2
    postgresql
    gcc python3 procps util-linux
    chromium
    # The frontend image (rocks create frontend image) and the owner's ssh tunnel to the Airboss.
    mmdebstrap syslinux syslinux-common mtools dosfstools fdisk e2fsprogs
    openssh-server openssh-client
)

FD_T0=${EPOCHREALTIME}
FD_CLEANUPS=()
FD_CLEANING=0
FD_LOCK_FD=
FD_STARTED_LIBVIRTD=0
FD_STARTED_VIRTLOGD=0
FD_PG_DIR=
FD_PG_PORT=
FD_APT_UPDATED=0
FD_POLICY_RCD_CREATED=0

# ------------------------------------------------------------------------------ output
fd__elapsed() { awk -v a="$FD_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1f", b - a }'; }
fd_log() { printf '[%ss] %s\n' "$(fd__elapsed)" "$*"; }
fd_warn() { printf '[%ss] WARNING: %s\n' "$(fd__elapsed)" "$*" >&2; }
fd_die() {
    printf '[%ss] ERROR: %s\n' "$(fd__elapsed)" "$*" >&2
    exit 1
}
fd_banner() {
    printf '\n======================================== %s\n' "$*"
}
# Show the end of a log file (on failure).
fd__tail() {
    local file=$1 n=${2:-40}
    if [[ -s $file ]]; then
        printf -- '----- last %s lines of %s\n' "$n" "$file" >&2
        tail -n "$n" -- "$file" >&2
        printf -- '-----\n' >&2
    fi
}

# ------------------------------------------------------------------------------ traps / cleanup
# Register a function to run at exit (once; run in reverse order of registration).
fd_add_cleanup() {
    local f
    for f in "${FD_CLEANUPS[@]}"; do
        [[ $f == "$1" ]] && return 0
    done
    FD_CLEANUPS+=("$1")
}

fd__run_cleanups() {
    local rc=$? i
    if [[ $FD_CLEANING == 1 ]]; then
        return 0
    fi
    FD_CLEANING=1
    set +e
    trap - ERR
    trap '' INT TERM HUP # finish stopping what we started, even on a second Ctrl-C
    for ((i = ${#FD_CLEANUPS[@]} - 1; i >= 0; i--)); do
        "${FD_CLEANUPS[i]}"
    done
    fd__wait_reaped_all
    return "$rc"
}

fd__on_signal() {
    printf '\n' >&2
    fd_warn "interrupted (SIG$1): stopping what this script started"
    exit "$2"
}

fd__on_err() {
    local rc=$1 line=$2 src=$3 cmd=$4
    printf '[%ss] ERROR: command failed with exit status %s (%s:%s): %s\n' \
        "$(fd__elapsed)" "$rc" "${src##*/}" "$line" "$cmd" >&2
}

# Call once, first thing, from a script that sources this file (with `set -Eeuo pipefail`).
fd_init() {
    trap fd__run_cleanups EXIT
    trap 'fd__on_signal INT 130' INT
    trap 'fd__on_signal TERM 143' TERM
    trap 'fd__on_signal HUP 129' HUP
    trap 'fd__on_err "$?" "$LINENO" "${BASH_SOURCE[0]:-?}" "$BASH_COMMAND"' ERR
    if [[ $(id -u) != 0 ]]; then
        fd_die "run this as root (it installs packages and starts libvirtd)"
    fi
    fd__mkrundir
}

fd__mkrundir() {
    mkdir -p -- "$FD_RUN_DIR" "$FD_LOG_DIR"
    # The private PostgreSQL runs as user postgres below this directory: it must be traversable.
    chmod 755 -- "$FD_RUN_DIR"
}

# Serialise the scripts of this repository: they share the one libvirtd of the machine, the run
# directory and the demo state. Children never inherit the lock (see fd_nolock), so a process left
# behind by a test cannot keep it.
fd_lock() {
    [[ -n $FD_LOCK_FD ]] && return 0
    exec {FD_LOCK_FD}>>"$FD_LOCK_FILE"
    if ! flock -n "$FD_LOCK_FD"; then
        fd_log "another Flightdeck script holds $FD_LOCK_FILE; waiting for it (up to 1 h)"
        flock -w 3600 "$FD_LOCK_FD" || fd_die "could not get the lock $FD_LOCK_FILE"
    fi
}

# Run a command without the lock file descriptor (daemons, test tools).
fd_nolock() {
    if [[ -n $FD_LOCK_FD ]]; then
        "$@" {FD_LOCK_FD}>&-
    else
        "$@"
    fi
}

# ------------------------------------------------------------------------------ processes
# True if the process exists and is not a zombie (PID 1 here is not an init that always reaps).
fd__pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# True if a live (non-zombie) process has exactly this name.
fd__proc_running() {
    local pid
    for pid in $(pgrep -x -- "$1" || true); do
        fd__pid_alive "$pid" && return 0
    done
    return 1
}

# A daemon we stopped was re-parented to PID 1, which on these machines reaps orphans only every
# ~2 s. fd__wait_reaped PID notes it; fd__wait_reaped_all waits (at most 5 s in all) until all noted
# processes are gone, so no <defunct> entry outlives the script. During the exit cleanup the wait
# happens once, after every stop function has run.
FD_REAP_PIDS=()
fd__wait_reaped() {
    FD_REAP_PIDS+=("$1")
    [[ $FD_CLEANING == 1 ]] || fd__wait_reaped_all
}
fd__wait_reaped_all() {
    local pid i busy
    for ((i = 0; i < 50; i++)); do
        busy=0
        for pid in "${FD_REAP_PIDS[@]}"; do
            [[ -e /proc/$pid ]] && busy=1
        done
        ((busy)) || break
        sleep 0.1
    done
    FD_REAP_PIDS=()
}

# fd__stop_pidfile NAME PIDFILE [TIMEOUT_S]: SIGTERM the process named NAME whose pid is in PIDFILE,
# wait for it to exit, SIGKILL after the timeout. Checks the process name, so a stale pid file can
# never make us kill something else.
fd__stop_pidfile() {
    local name=$1 pidfile=$2 timeout=${3:-30} pid comm i
    [[ -f $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if fd__pid_alive "$pid"; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [[ $comm != "$name" ]]; then
            fd_warn "$pidfile names pid $pid, which is '$comm', not $name: not killing it"
            rm -f -- "$pidfile"
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < timeout * 10; i++)); do
            fd__pid_alive "$pid" || break
            sleep 0.1
        done
        if fd__pid_alive "$pid"; then
            fd_warn "$name (pid $pid) still running after ${timeout}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                fd__pid_alive "$pid" || break
                sleep 0.1
            done
        fi
        fd__wait_reaped "$pid"
    fi
    rm -f -- "$pidfile"
}

# ------------------------------------------------------------------------------ system packages
fd__pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

fd__apt_update_once() {
    [[ $FD_APT_UPDATED == 1 ]] && return 0
    local try
    for try in 1 2 3; do
        if apt-get -o DPkg::Lock::Timeout=300 update -q >>"$FD_LOG_DIR/apt.log" 2>&1; then
            FD_APT_UPDATED=1
            return 0
        fi
        fd_warn "apt-get update failed (attempt $try); see $FD_LOG_DIR/apt.log"
        sleep $((try * 3))
    done
    fd__tail "$FD_LOG_DIR/apt.log"
    fd_die "apt-get update failed"
}

# Without systemd, a package's init script would really start its service (postgresql would start
# cluster "main" on port 5432). Docker-style images ship a policy-rc.d that forbids it; when there is
# none, put one there for the duration of the install.
fd__policy_rcd_on() {
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# flightdeck: temporary, do not start services from apt\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        FD_POLICY_RCD_CREATED=1
        fd_add_cleanup fd__policy_rcd_off
    fi
}
fd__policy_rcd_off() {
    if [[ $FD_POLICY_RCD_CREATED == 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
        FD_POLICY_RCD_CREATED=0
    fi
}

fd__apt_install() {
    local try
    export DEBIAN_FRONTEND=noninteractive
    fd__apt_update_once
    fd__policy_rcd_on
    for try in 1 2; do
        # --force-confold: keep our /etc/libvirt/qemu.conf if a package upgrade ships a new one
        # (feasibility.md, failure 7: otherwise dpkg stops at a conffile prompt and exits 100).
        if apt-get -o DPkg::Lock::Timeout=300 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            install -y -q --no-install-recommends "$@" >>"$FD_LOG_DIR/apt.log" 2>&1; then
            fd__policy_rcd_off
            return 0
        fi
        fd_warn "apt-get install failed (attempt $try); see $FD_LOG_DIR/apt.log"
        FD_APT_UPDATED=0
        fd__apt_update_once
    done
    fd__policy_rcd_off
    fd__tail "$FD_LOG_DIR/apt.log"
    fd_die "apt-get install failed"
}

fd_install_system() {
    local pkgs=("${FD_SYSTEM_PACKAGES[@]}") missing=() p py
    # What the venv interpreter needs: ensurepip (python3-venv) and Python.h to build libvirt-python
    # (it has no wheels on PyPI). Only Debian's own python3 lacks them; pyenv's has both.
    py=$(command -v "$FD_PYTHON" || true)
    if [[ -z $py ]] || ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    if [[ -z $py ]] || ! "$py" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        >/dev/null 2>&1; then
        pkgs+=(python3-dev)
    fi
    for p in "${pkgs[@]}"; do
        fd__pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        fd_log "system packages: all ${#pkgs[@]} already installed (apt skipped)"
    else
        : >"$FD_LOG_DIR/apt.log"
        fd_log "system packages: installing ${missing[*]} (log: $FD_LOG_DIR/apt.log)"
        fd__apt_install "${missing[@]}"
        for p in "${missing[@]}"; do
            fd__pkg_installed "$p" || fd_die "package $p is still not installed after apt-get install"
        done
        fd_log "system packages: done"
    fi

    # What libvirt-daemon-system would do (we do not install it: feasibility.md, failures 1 and 7).
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null ||
        useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
    mkdir -p /etc/libvirt /var/lib/libvirt/images /var/log/libvirt/qemu

    # QEMU as root and no security driver: no /dev/kvm permission re-probe loop, no file permission
    # trouble with kernels, initrds and serial logs (feasibility.md, failure 4 / recommendation 3).
    local want
    want=$(mktemp)
    cat >"$want" <<'EOF'
# Written by flightdeck scripts/lib/common.sh (CI / dev machines without systemd).
# QEMU runs as root; there is no AppArmor/SELinux here. See shared/reference/feasibility.md.
user = "root"
group = "root"
security_driver = "none"
EOF
    if ! cmp -s "$want" /etc/libvirt/qemu.conf; then
        if [[ -f /etc/libvirt/qemu.conf && ! -f /etc/libvirt/qemu.conf.flightdeck-orig ]]; then
            cp -p /etc/libvirt/qemu.conf /etc/libvirt/qemu.conf.flightdeck-orig
        fi
        install -m 0600 "$want" /etc/libvirt/qemu.conf
        fd_log "wrote /etc/libvirt/qemu.conf (user/group root, security_driver none)"
        if fd_libvirtd_answers; then
            fd_warn "a libvirtd is already running: it reads the new qemu.conf only when restarted"
        fi
    fi
    rm -f -- "$want"
}

# ------------------------------------------------------------------------------ virtualenv
fd_venv() {
    local py=$FD_VENV/bin/python stamp=$FD_VENV/.flightdeck-install.sha256 want base
    if [[ -e $py ]] && ! "$py" -c 'import sys' >/dev/null 2>&1; then
        fd_warn "$FD_VENV is broken (its python does not run): recreating it"
        rm -rf -- "$FD_VENV"
    fi
    if [[ ! -x $py ]]; then
        base=$(command -v "$FD_PYTHON") || fd_die "no '$FD_PYTHON' interpreter (set FD_PYTHON)"
        "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            fd_die "$base is $("$base" -V 2>&1); Flightdeck needs Python >= 3.11 (set FD_PYTHON)"
        fd_log "venv: creating $FD_VENV with $base ($("$base" -V 2>&1))"
        "$base" -m venv -- "$FD_VENV" || fd_die "could not create the venv $FD_VENV"
    fi
    want=$({
        sha256sum <"$FD_REPO/pyproject.toml"
        printf '%s\n' "$FD_REPO"
        "$py" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]] &&
        "$py" - "$FD_REPO/src" <<'EOF' >/dev/null 2>&1; then
import pathlib, sys
import flightdeck
sys.exit(not pathlib.Path(flightdeck.__file__).resolve().is_relative_to(pathlib.Path(sys.argv[1]).resolve()))
EOF
        fd_log "venv: $FD_VENV is up to date with pyproject.toml (pip skipped)"
        return 0
    fi
    rm -f -- "$stamp"
    : >"$FD_LOG_DIR/pip.log"
    fd_log "venv: pip install -e '.[server,dev]' into $FD_VENV (log: $FD_LOG_DIR/pip.log)"
    if ! (cd "$FD_REPO" && "$py" -m pip install --disable-pip-version-check --no-input \
        -e ".[server,dev]") >>"$FD_LOG_DIR/pip.log" 2>&1; then
        fd__tail "$FD_LOG_DIR/pip.log"
        fd_die "pip install -e '.[server,dev]' failed"
    fi
    printf '%s\n' "$want" >"$stamp"
    fd_log "venv: done"
}

# ------------------------------------------------------------------------------ browser console
# web/node_modules: the upstream noVNC and xterm.js packages the Airboss's console page uses, from
# the npm registry exactly as web/package-lock.json pins them (`npm ci`). Skipped when the lock file
# is unchanged since the last install and node_modules is there. Needs node >= 18 and npm (this
# machine has node 20 and npm; Debian 12's own nodejs is 18 and would do).
fd_web_assets() {
    local dir=$FD_REPO/web want stamp
    stamp=$dir/node_modules/.flightdeck-lock.sha256
    [[ -f $dir/package-lock.json ]] || fd_die "$dir/package-lock.json is missing"
    command -v npm >/dev/null ||
        fd_die "npm not found: install Node.js >= 18 with npm (the browser console's assets)"
    want=$(sha256sum <"$dir/package-lock.json" | cut -d' ' -f1)
    if [[ -d $dir/node_modules && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        fd_log "web assets: $dir/node_modules is up to date with package-lock.json (npm skipped)"
        return 0
    fi
    : >"$FD_LOG_DIR/npm.log"
    fd_log "web assets: npm ci in $dir (log: $FD_LOG_DIR/npm.log)"
    if ! (cd "$dir" && fd_nolock npm ci --no-audit --no-fund) >>"$FD_LOG_DIR/npm.log" 2>&1; then
        fd__tail "$FD_LOG_DIR/npm.log"
        fd_die "npm ci in $dir failed"
    fi
    printf '%s\n' "$want" >"$stamp"
    fd_log "web assets: done"
}

# ------------------------------------------------------------------------------ libvirtd
fd_libvirtd_answers() {
    timeout 15 virsh -c "$FD_LIBVIRT_URI" version >/dev/null 2>&1
}

fd_start_libvirtd() {
    local i pid
    if fd_libvirtd_answers; then
        if [[ $FD_STARTED_LIBVIRTD != 1 ]]; then
            fd_log "libvirtd: $FD_LIBVIRT_URI already answers; using it and leaving it alone"
        fi
        return 0
    fi
    if ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null; then
        fd_die "libvirtd/virtlogd not found: run fd_install_system first"
    fi
    fd__mkrundir
    fd_add_cleanup fd_stop_libvirtd
    # No systemd socket activation: virtlogd must run before libvirtd starts any domain.
    if fd__proc_running virtlogd; then
        fd_log "libvirtd: virtlogd already running; using it"
    else
        rm -f -- "$FD_RUN_DIR/virtlogd.pid"
        (cd / && fd_nolock env LIBVIRT_LOG_OUTPUTS="3:file:$FD_LOG_DIR/virtlogd.log" \
            setsid -w virtlogd -d -p "$FD_RUN_DIR/virtlogd.pid" \
            </dev/null >>"$FD_LOG_DIR/virtlogd.out" 2>&1) ||
            fd_die "virtlogd did not start; see $FD_LOG_DIR/virtlogd.out"
        FD_STARTED_VIRTLOGD=1
    fi
    rm -f -- "$FD_RUN_DIR/libvirtd.pid"
    fd_log "libvirtd: starting (the first start on a machine probes QEMU for ~8 s; log: $FD_LOG_DIR/libvirtd.log)"
    # dbus / udev / dmidecode errors in libvirtd.log are harmless on this machine (feasibility.md).
    : >"$FD_LOG_DIR/libvirtd.log"
    (cd / && fd_nolock env LIBVIRT_LOG_OUTPUTS="3:file:$FD_LOG_DIR/libvirtd.log" \
        setsid -w libvirtd -d -p "$FD_RUN_DIR/libvirtd.pid" \
        </dev/null >>"$FD_LOG_DIR/libvirtd.out" 2>&1) || {
        fd__tail "$FD_LOG_DIR/libvirtd.out"
        fd__tail "$FD_LOG_DIR/libvirtd.log"
        fd_die "libvirtd did not start"
    }
    FD_STARTED_LIBVIRTD=1
    for ((i = 0; i < 1200; i++)); do # 120 s
        fd_libvirtd_answers && break
        if ((i > 20)) && [[ -f $FD_RUN_DIR/libvirtd.pid ]]; then
            pid=$(tr -dc '0-9' <"$FD_RUN_DIR/libvirtd.pid")
            if ! fd__pid_alive "$pid"; then
                fd__tail "$FD_LOG_DIR/libvirtd.log"
                fd_die "libvirtd (pid $pid) exited during start-up"
            fi
        fi
        sleep 0.1
    done
    if ! fd_libvirtd_answers; then
        fd__tail "$FD_LOG_DIR/libvirtd.log"
        fd_die "libvirtd does not answer on $FD_LIBVIRT_URI after 120 s"
    fi
    fd_log "libvirtd: answers ($(virsh -c "$FD_LIBVIRT_URI" version 2>/dev/null |
        sed -n 's/^Running hypervisor: *//p'))"
}

fd_stop_libvirtd() {
    local doms
    if [[ $FD_KEEP == 1 && ($FD_STARTED_LIBVIRTD == 1 || $FD_STARTED_VIRTLOGD == 1) ]]; then
        fd_log "libvirtd: FD_KEEP=1, leaving it running (pid files in $FD_RUN_DIR)"
        return 0
    fi
    if [[ $FD_STARTED_LIBVIRTD == 1 ]]; then
        doms=$(timeout 15 virsh -c "$FD_LIBVIRT_URI" list --name 2>/dev/null | sed '/^$/d' |
            tr '\n' ' ' || true)
        if [[ -n $doms ]]; then
            fd_warn "domains still running (qemu keeps running without libvirtd): $doms"
        fi
        fd_log "libvirtd: stopping the libvirtd we started"
        fd__stop_pidfile libvirtd "$FD_RUN_DIR/libvirtd.pid" 30
        FD_STARTED_LIBVIRTD=0
        fd_log "libvirtd: stopped"
    fi
    if [[ $FD_STARTED_VIRTLOGD == 1 ]]; then
        fd__stop_pidfile virtlogd "$FD_RUN_DIR/virtlogd.pid" 15
        FD_STARTED_VIRTLOGD=0
        fd_log "virtlogd: stopped"
    fi
}

# ------------------------------------------------------------------------------ PostgreSQL
fd__as_postgres() {
    (cd / && fd_nolock setsid -w runuser -u postgres -- "$@")
}

fd__free_port() {
    local py
    py=$(command -v "$FD_VENV/bin/python" || command -v python3)
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# A private server from an earlier run that was killed with SIGKILL: stop it and remove it.
# Only done while holding the lock, so it never touches the server of a concurrent run.
fd__reap_stale_postgres() {
    local d pid
    [[ -n $FD_LOCK_FD ]] || return 0
    for d in "$FD_RUN_DIR"/pg.*; do
        [[ -d $d && $d != "$FD_PG_DIR" ]] || continue
        if [[ -f $d/data/postmaster.pid ]]; then
            pid=$(head -n 1 "$d/data/postmaster.pid" | tr -dc '0-9')
            if fd__pid_alive "$pid"; then
                fd_log "postgres: stopping a leftover private server in $d (pid $pid)"
                fd__as_postgres "$FD_PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop \
                    >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null || true
                fd__wait_reaped "$pid"
            fi
        fi
        rm -rf -- "$d"
    done
}

fd_start_postgres() {
    local pw try started=0 log
    if [[ -n $FD_PG_DIR ]]; then
        return 0
    fi
    [[ -x $FD_PG_BIN/initdb && -x $FD_PG_BIN/pg_ctl ]] ||
        fd_die "PostgreSQL 15 not found in $FD_PG_BIN: run fd_install_system first"
    getent passwd postgres >/dev/null || fd_die "there is no 'postgres' user"
    fd__mkrundir
    fd__reap_stale_postgres
    FD_PG_DIR=$(mktemp -d "$FD_RUN_DIR/pg.XXXXXX")
    fd_add_cleanup fd_stop_postgres
    log=$FD_PG_DIR/postgres.log
    mkdir -p -- "$FD_PG_DIR/sock"
    chmod 700 -- "$FD_PG_DIR"
    chown -R postgres:postgres -- "$FD_PG_DIR"
    fd_log "postgres: initdb in $FD_PG_DIR/data"
    if ! fd__as_postgres "$FD_PG_BIN/initdb" -D "$FD_PG_DIR/data" -U postgres -E UTF8 --locale=C \
        --auth-local=peer --auth-host=scram-sha-256 >"$FD_LOG_DIR/initdb.log" 2>&1; then
        fd__tail "$FD_LOG_DIR/initdb.log"
        fd_die "initdb failed"
    fi
    cat >>"$FD_PG_DIR/data/postgresql.conf" <<EOF

# flightdeck scripts/lib/common.sh: private throwaway test server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$FD_PG_DIR/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    for try in 1 2 3; do
        FD_PG_PORT=$(fd__free_port)
        if fd__as_postgres "$FD_PG_BIN/pg_ctl" -D "$FD_PG_DIR/data" -l "$log" -w -t 60 \
            -o "-p $FD_PG_PORT" start >>"$FD_LOG_DIR/pg_ctl.log" 2>&1; then
            started=1
            break
        fi
        fd_warn "postgres did not start on port $FD_PG_PORT (attempt $try)"
        fd__tail "$log" 10
    done
    ((started)) || fd_die "the private PostgreSQL server did not start; see $log"
    pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    if ! fd__as_postgres "$FD_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$FD_PG_DIR/sock" \
        -p "$FD_PG_PORT" -U postgres -d postgres >>"$FD_LOG_DIR/pg_ctl.log" 2>&1 <<EOF; then
CREATE ROLE flightdeck LOGIN CREATEDB PASSWORD '$pw';
CREATE DATABASE flightdeck_test OWNER flightdeck;
EOF
        fd__tail "$FD_LOG_DIR/pg_ctl.log"
        fd_die "could not create role/database in the private PostgreSQL server"
    fi
    export FLIGHTDECK_TEST_PG_URL="postgresql+psycopg://flightdeck:$pw@127.0.0.1:$FD_PG_PORT/flightdeck_test"
    fd_log "postgres: $("$FD_PG_BIN/postgres" -V | sed 's/.*) //') on 127.0.0.1:$FD_PG_PORT," \
        "database flightdeck_test, role flightdeck (password auth)"
}

fd_stop_postgres() {
    [[ -n $FD_PG_DIR ]] || return 0
    if [[ $FD_KEEP == 1 ]]; then
        fd_log "postgres: FD_KEEP=1, leaving it running in $FD_PG_DIR (the next run removes it):"
        fd_log "  export FLIGHTDECK_TEST_PG_URL='$FLIGHTDECK_TEST_PG_URL'"
        return 0
    fi
    local pid=
    if [[ -f $FD_PG_DIR/data/postmaster.pid ]]; then
        pid=$(head -n 1 "$FD_PG_DIR/data/postmaster.pid" | tr -dc '0-9')
    fi
    if fd__pid_alive "$pid"; then
        fd_log "postgres: stopping the private server (pid $pid)"
        if ! fd__as_postgres "$FD_PG_BIN/pg_ctl" -D "$FD_PG_DIR/data" -m fast -w -t 60 stop \
            >>"$FD_LOG_DIR/pg_ctl.log" 2>&1; then
            fd_warn "pg_ctl stop failed; killing postmaster $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        fd__wait_reaped "$pid"
        fd_log "postgres: stopped"
    fi
    [[ -f $FD_PG_DIR/postgres.log ]] && cp -f -- "$FD_PG_DIR/postgres.log" "$FD_LOG_DIR/postgres.log"
    rm -rf -- "$FD_PG_DIR"
    FD_PG_DIR=
    unset FLIGHTDECK_TEST_PG_URL
}
