#!/usr/bin/env bash
# scripts/test.sh -- THE test command: bash scripts/test.sh [pytest arguments...]
#
# 1. installs the system packages (apt; skipped when all are installed) and the venv (pip; skipped
#    when pyproject.toml is unchanged),
# 2. starts libvirtd (unless qemu:///system already answers) and a private PostgreSQL 15 server,
# 3. runs ruff, mypy (the package, then bench/) and pytest (extra arguments go to pytest) with
#      FLIGHTDECK_TEST_LIBVIRT=qemu:///system
#      FLIGHTDECK_TEST_PG_URL=postgresql+psycopg://flightdeck:<pw>@127.0.0.1:<port>/flightdeck_test
# 4. stops what it started (also on failure or Ctrl-C) and exits non-zero if any check failed.
#
# Safe to run twice in a row and while a libvirtd is already running (it is then left alone).
# Logs: $FD_RUN_DIR/logs (default /var/tmp/flightdeck-ci/logs). See scripts/lib/common.sh for the
# other settings (FD_VENV, FD_PYTHON, FD_KEEP...).
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/common.sh"

fd_init
fd_lock

fd_banner "set-up: system packages"
fd_install_system
fd_banner "set-up: virtualenv"
fd_venv
fd_web_assets
fd_banner "set-up: libvirtd"
fd_start_libvirtd
fd_banner "set-up: PostgreSQL"
fd_start_postgres

export FLIGHTDECK_TEST_LIBVIRT=$FD_LIBVIRT_URI
export FLIGHTDECK_TEST_PG_URL
export PATH="$FD_VENV/bin:$PATH"
cd "$FD_REPO"

declare -a SUMMARY=()
FAILED=0

# run_check NAME COMMAND...: run one check, record its result and time, never abort the script.
run_check() {
    local name=$1 t0=$EPOCHREALTIME rc=0 secs
    shift
    fd_banner "check: $name"
    printf '$ %s\n' "$*"
    fd_nolock "$@" </dev/null || rc=$?
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if [[ $name == pytest && $rc == 5 ]]; then
        printf '\nFAILED: pytest collected no tests (exit code 5): the suite is empty or the ' >&2
        printf 'arguments select nothing.\n' >&2
    fi
    if ((rc == 0)); then
        SUMMARY+=("$(printf '%-8s ok      %6ss' "$name" "$secs")")
    else
        SUMMARY+=("$(printf '%-8s FAILED  %6ss  (exit code %s)' "$name" "$secs" "$rc")")
        FAILED=1
    fi
    return 0
}

# Paths that exist (git does not keep empty directories, so a fresh clone may lack some).
lint_paths=()
for p in src tests bench; do
    [[ -e $p ]] && lint_paths+=("$p")
done

run_check ruff "$FD_VENV/bin/ruff" check "${lint_paths[@]}"
run_check mypy "$FD_VENV/bin/mypy"
# The benchmarks too (they import the tests' helpers: vcluster, chromium, libvirt_purge).
[[ -d bench ]] && run_check mypy-bench env MYPYPATH=tests "$FD_VENV/bin/mypy" bench
run_check pytest "$FD_VENV/bin/pytest" "$@"

fd_banner "summary"
printf '%s\n' "${SUMMARY[@]}"
if ((FAILED)); then
    fd_log "test.sh: FAILED"
    exit 1
fi
fd_log "test.sh: all checks passed"
