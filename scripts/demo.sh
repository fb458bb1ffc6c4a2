#!/usr/bin/env bash
# scripts/demo.sh -- THE demo command: bash scripts/demo.sh
#
# Installs what Flightdeck needs (apt packages, the venv), starts libvirtd (unless qemu:///system
# already answers), then makes this machine a Flightdeck frontend with one VM container, echoing
# every command with a "$ " prefix. The demo state lives in FLIGHTDECK_HOME (default
# /var/lib/flightdeck-demo); it is wiped and recreated at the start, so running twice is safe.
# The libvirtd it started is stopped at exit; FD_KEEP=1 leaves it running.
#
# Extending it: add a section function below (demo_cmd for each command the audience should see,
# plain shell for waiting/checking) and list it in DEMO_SECTIONS.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/common.sh"

: "${FLIGHTDECK_HOME:=/var/lib/flightdeck-demo}"
export FLIGHTDECK_HOME
unset FLIGHTDECK_DB # the demo database always lives in FLIGHTDECK_HOME
DEMO_MARKER=.flightdeck-demo

# demo_cmd 'COMMAND LINE': show it as typed, then run it. The line is a fixed string of this
# script, evaluated by the shell so that quoting reads exactly as a user would type it.
demo_cmd() {
    printf '\n$ %s\n' "$1"
    if ! eval "$1"; then
        fd_die "demo step failed: $1"
    fi
}

demo_section() {
    fd_banner "demo: $*"
}

# Wipe the demo state, but only a directory that is empty or that this script made.
demo_reset_home() {
    case $FLIGHTDECK_HOME in
        "" | / | /root | /home | /var | /var/lib | /etc | /usr)
            fd_die "refusing to use FLIGHTDECK_HOME=$FLIGHTDECK_HOME as the demo state directory"
            ;;
    esac
    if [[ -d $FLIGHTDECK_HOME && -n $(ls -A -- "$FLIGHTDECK_HOME") &&
        ! -f $FLIGHTDECK_HOME/$DEMO_MARKER ]]; then
        fd_die "FLIGHTDECK_HOME=$FLIGHTDECK_HOME is not empty and was not made by demo.sh: not wiping it"
    fi
    rm -rf -- "$FLIGHTDECK_HOME"
    mkdir -p -- "$FLIGHTDECK_HOME"
    printf 'Demo state of scripts/demo.sh; wiped at every run.\n' >"$FLIGHTDECK_HOME/$DEMO_MARKER"
    fd_log "demo state: $FLIGHTDECK_HOME (fresh)"
}

# ------------------------------------------------------------------------------ demo sections
demo_frontend() {
    demo_section "this machine becomes the frontend"
    demo_cmd 'rocks init frontend name=flightdeck-demo.local public-ip=192.0.2.10 public-netmask=255.255.255.0 private-ip=10.1.1.1 private-netmask=255.255.0.0'
}

demo_vm_container() {
    demo_section "a VM container (this machine's libvirtd)"
    demo_cmd 'rocks add host vm-container-0-0 membership="VM Container" rack=0 rank=0 cpus=2'
    demo_cmd 'rocks set host attr vm-container-0-0 libvirt_uri qemu:///system'
    demo_cmd 'rocks add host interface vm-container-0-0 eth0 mac=52:54:00:fd:00:01 ip=10.1.255.254 subnet=private'
}

demo_listings() {
    demo_section "what the database now holds"
    demo_cmd 'rocks list host'
    demo_cmd 'rocks list host interface'
    demo_cmd 'rocks list cluster'
}

DEMO_SECTIONS=(
    demo_frontend
    demo_vm_container
    demo_listings
)

# ------------------------------------------------------------------------------ main
fd_init
fd_lock

fd_banner "set-up: system packages"
fd_install_system
fd_banner "set-up: virtualenv"
fd_venv
fd_banner "set-up: libvirtd"
fd_start_libvirtd

export PATH="$FD_VENV/bin:$PATH"
cd "$FD_REPO"
demo_reset_home

for section in "${DEMO_SECTIONS[@]}"; do
    "$section"
done

fd_banner "demo: done"
fd_log "demo state is in $FLIGHTDECK_HOME; try: PATH=$FD_VENV/bin:\$PATH FLIGHTDECK_HOME=$FLIGHTDECK_HOME rocks list host"
