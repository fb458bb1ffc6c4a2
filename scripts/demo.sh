#!/usr/bin/env bash
# scripts/demo.sh -- THE demo command: bash scripts/demo.sh
#
# Installs what Flightdeck needs (apt packages, the venv), starts libvirtd (unless qemu:///system
# already answers), then plays the guide's story with a real virtual cluster on this machine: the
# physical frontend, a cluster of a frontend and two computes on VLAN 2, its owner (not root)
# installs the virtual frontend through the Airboss, logs in to it, runs insert-ethers and
# installs both computes over the VLAN, opens compute-0-0's serial console; it ends printing,
# from the virtual frontend, `rocks list host` and the computes' install stamps. Every command is
# echoed as typed: `$ ` on the physical frontend (root), `owner@laptop$ `, `[root@vi-1 ~]# `.
# The demo state lives in FLIGHTDECK_HOME (default /var/lib/flightdeck-demo); it is wiped and
# recreated at the start, so running twice is safe. At exit the demo's VMs are stopped, its
# namespaces removed and the libvirtd it started stopped; FD_KEEP=1 leaves the VMs and libvirtd.
#
# Extending it: add a section function below (demo_cmd / demo_owner / demo_vf for each command
# the audience should see, demo_wait for waiting) and list it in DEMO_SECTIONS.
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
# The guide's story (§3.3): the physical frontend (espresso), a virtual cluster with two
# computes, its owner (not root, on a laptop) installs the virtual frontend (vi-1), logs in to
# it and installs the computes from there over the cluster's VLAN.
#
# The network is the demo's own, never the machine's interfaces: address-less Linux bridges
# fdprv0 (private), fdpub0 (public) and vlan2 (the cluster's VLAN: this kernel has no 802.1Q, so
# a VLAN is a bridge of its own, kvm_vlan_mode=bridge); the physical frontend's addresses, its
# dnsmasq, boot server and Airboss live in the namespace fddemo-fe, the owner's laptop in
# fddemo-own (names resolved there by /etc/netns/fddemo-own/hosts, which `ip netns exec` uses).
DEMO_BRIDGES=(fdprv0 fdpub0 vlan2)
DEMO_FE_NS=fddemo-fe
DEMO_OWNER_NS=fddemo-own
DEMO_PHYSICAL=espresso.example.org
DEMO_VF=vi-1.example.org
DEMO_VF_IP=192.0.2.11
# The owner's home on their laptop (the owner is `nobody` here: nothing they run is root), and
# their client: Flightdeck without the server extra (pip install flightdeck), on Debian's python3.
DEMO_OWNER=/tmp/flightdeck-demo-owner
DEMO_OWNER_VENV=/var/cache/flightdeck-demo/owner-venv

# The owner's client, reinstalled only when the source changed since the last demo.
demo_owner_client() {
    local stamp=$DEMO_OWNER_VENV/.installed
    if [[ -f $stamp && -z $(find "$FD_REPO/src" "$FD_REPO/pyproject.toml" -newer "$stamp" -print -quit) ]]; then
        fd_log "owner's client: $DEMO_OWNER_VENV is up to date"
        return 0
    fi
    fd_log "owner's client: pip install flightdeck (client only) into $DEMO_OWNER_VENV (log: $FD_LOG_DIR/owner-pip.log)"
    mkdir -p -m 0755 -- "$(dirname -- "$DEMO_OWNER_VENV")"
    [[ -x $DEMO_OWNER_VENV/bin/python ]] || /usr/bin/python3 -m venv -- "$DEMO_OWNER_VENV" ||
        fd_die "could not create the owner's venv $DEMO_OWNER_VENV"
    "$DEMO_OWNER_VENV/bin/python" -m pip install --disable-pip-version-check --no-input "$FD_REPO" \
        >"$FD_LOG_DIR/owner-pip.log" 2>&1 || fd_die "pip install of the owner's client failed: see $FD_LOG_DIR/owner-pip.log"
    touch "$stamp"
}

demo_bridges() {
    local br
    for br in "${DEMO_BRIDGES[@]}"; do
        if ! ip link show dev "$br" >/dev/null 2>&1; then
            ip link add name "$br" type bridge
            sysctl -qw "net.ipv6.conf.$br.disable_ipv6=1" || true
        fi
        ip link set dev "$br" up
    done
}

# A previous demo's VMs are still defined in libvirt: power them off and undefine them.
demo_clean_vms() {
    [[ -f $FLIGHTDECK_HOME/flightdeck.db ]] || return 0
    local vms
    vms=$(rocks list host vm output-header=no output-col=vm-host 2>/dev/null | tr -d ':' | xargs) || true
    [[ -n $vms ]] && rocks stop host vm $vms >/dev/null 2>&1 || true
}

# At exit: no VM of the demo keeps running (FD_KEEP=1 keeps them, and libvirtd, to explore).
demo_stop_vms() {
    [[ ${FD_KEEP:-0} != 1 ]] || return 0
    demo_clean_vms
}

demo_netns_down() {
    rocks stop service airboss >/dev/null 2>&1 || true
    rocks stop service dhcp >/dev/null 2>&1 || true
    ip netns del "$DEMO_FE_NS" 2>/dev/null || true
    ip netns del "$DEMO_OWNER_NS" 2>/dev/null || true
    ip link del fddemo0 2>/dev/null || true
    ip link del fddemo1 2>/dev/null || true
    ip link del fddemo2 2>/dev/null || true
    rm -rf -- "/etc/netns/$DEMO_OWNER_NS" "$DEMO_OWNER"
    if [[ ${FD_KEEP:-0} != 1 ]]; then # kept VMs keep their bridges
        local br
        for br in "${DEMO_BRIDGES[@]}"; do ip link del "$br" 2>/dev/null || true; done
    fi
}

# demo_veth NS OUTSIDE INSIDE BRIDGE ADDRESS
demo_veth() {
    ip link add "$2" type veth peer name "$3" netns "$1"
    sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" || true
    ip link set "$2" master "$4" up
    ip -n "$1" addr add "$5" dev "$3"
    ip -n "$1" link set "$3" up
}

demo_network() {
    demo_netns_down
    demo_bridges
    fd_add_cleanup demo_netns_down
    ip netns add "$DEMO_FE_NS"
    ip netns add "$DEMO_OWNER_NS"
    ip -n "$DEMO_FE_NS" link set lo up
    ip -n "$DEMO_OWNER_NS" link set lo up
    demo_veth "$DEMO_FE_NS" fddemo0 prv0 fdprv0 10.1.1.1/16
    demo_veth "$DEMO_FE_NS" fddemo1 pub0 fdpub0 192.0.2.10/24
    demo_veth "$DEMO_OWNER_NS" fddemo2 eth0 fdpub0 192.0.2.50/24
    mkdir -p "/etc/netns/$DEMO_OWNER_NS"
    printf '127.0.0.1 localhost\n192.0.2.10 %s\n%s %s\n' \
        "$DEMO_PHYSICAL" "$DEMO_VF_IP" "$DEMO_VF" >"/etc/netns/$DEMO_OWNER_NS/hosts"
    rm -rf -- "$DEMO_OWNER"
    mkdir -p "$DEMO_OWNER/.ssh"
    # The owner's ssh settings (ssh reads the passwd entry's home, not $HOME, hence -F below).
    printf 'Host *\n  User root\n  IdentityFile %s/private.key\n  UserKnownHostsFile %s/.ssh/known_hosts\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 30\n  LogLevel ERROR\n' \
        "$DEMO_OWNER" "$DEMO_OWNER" >"$DEMO_OWNER/.ssh/config"
    chown -R nobody:nogroup "$DEMO_OWNER"
}

# demo_owner 'COMMAND': the owner types it on their laptop (as nobody, in the owner's namespace).
demo_owner() {
    printf '\nowner@laptop$ %s\n' "$1"
    if ! ip netns exec "$DEMO_OWNER_NS" setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env HOME="$DEMO_OWNER" FLIGHTDECK_AIRBOSS="https://$DEMO_PHYSICAL:8677" \
        FLIGHTDECK_AIRBOSS_CA="$DEMO_OWNER/ca.crt" PATH="$DEMO_OWNER_VENV/bin:/usr/bin:/bin" \
        bash -c "cd ~ && ssh() { command ssh -F ~/.ssh/config \"\$@\"; } && scp() { command scp -F ~/.ssh/config \"\$@\"; } && $1"; then
        fd_die "demo step failed: $1"
    fi
}

# vf 'COMMAND': run it on the virtual frontend, logged in as the owner (quietly; for waiting).
vf() {
    ip netns exec "$DEMO_OWNER_NS" setpriv --reuid=nobody --regid=nogroup --clear-groups \
        ssh -F "$DEMO_OWNER/.ssh/config" "$DEMO_VF" "$1"
}

# demo_vf 'COMMAND': the owner types it, logged in on the virtual frontend.
demo_vf() {
    printf '\n[root@vi-1 ~]# %s\n' "$1"
    vf "$1" || fd_die "demo step failed on $DEMO_VF: $1"
}

# demo_wait WHAT TIMEOUT COMMAND: poll COMMAND every 3 s until it succeeds; a progress line
# on a terminal (one line at the end otherwise).
demo_wait() {
    local what=$1 limit=$2 t0=$SECONDS
    until eval "$3" >/dev/null 2>&1; do
        ((SECONDS - t0 < limit)) || fd_die "$what: not within $limit s (log: $FLIGHTDECK_HOME/dhcp/bootserver.log)"
        [[ -t 1 ]] && printf '\r  ... %s (%d s)' "$what" $((SECONDS - t0))
        sleep 3
    done
    [[ -t 1 ]] && printf '\r'
    printf '  %s: %d s\n' "$what" $((SECONDS - t0))
}

demo_frontend() {
    demo_section "this machine becomes the physical frontend, $DEMO_PHYSICAL"
    demo_network
    demo_cmd "rocks init frontend name=$DEMO_PHYSICAL public-ip=192.0.2.10 public-netmask=255.255.255.0 private-ip=10.1.1.1 private-netmask=255.255.0.0 private-iface=fdprv0 public-iface=fdpub0 gateway=192.0.2.1"
    demo_cmd 'rocks add host vm-container-0-0 membership="VM Container" rack=0 rank=0 cpus=2'
    demo_cmd 'rocks set host attr vm-container-0-0 libvirt_uri qemu:///system'
    demo_cmd 'rocks add host interface vm-container-0-0 fdprv0 mac=52:54:00:fd:00:01 ip=10.1.255.254 subnet=private'
    demo_cmd 'rocks set attr kvm_domain_type qemu'
    demo_cmd "rocks set attr kvm_disk_dir $FLIGHTDECK_HOME/disks"
    demo_cmd 'rocks set appliance attr frontend kvm_vlan_mode bridge'
    demo_cmd 'rocks set appliance attr vm-container kvm_vlan_mode bridge'
    demo_cmd 'rocks list host'
}

demo_images() {
    demo_section "the images: the installer, and the frontend image virtual frontends install"
    demo_cmd 'rocks create installer image'
    printf '\n# built once (~100 s), then cached until Flightdeck or its package list changes\n'
    demo_cmd 'rocks create frontend image'
}

demo_services() {
    demo_section "the physical frontend's services: DHCP/PXE, and the Airboss over TLS"
    demo_cmd "rocks start service dhcp netns=$DEMO_FE_NS interface=prv0"
    demo_cmd "rocks create airboss certificate dir=$FLIGHTDECK_HOME/pki"
    demo_cmd "ip netns exec $DEMO_FE_NS rocks start service airboss listen=192.0.2.10:8677 tls-cert=$FLIGHTDECK_HOME/pki/airboss.crt tls-key=$FLIGHTDECK_HOME/pki/airboss.key"
    cp "$FLIGHTDECK_HOME/pki/ca.crt" "$DEMO_OWNER/ca.crt"
    chown nobody:nogroup "$DEMO_OWNER/ca.crt"
}

demo_virtual_cluster() {
    demo_section "a virtual cluster for its owner: frontend $DEMO_VF + 2 computes on VLAN 2"
    demo_owner 'pilot create keys key=private.key passphrase=no > private.pub'
    cp "$DEMO_OWNER/private.pub" "$FLIGHTDECK_HOME/owner.pub"
    demo_cmd "rocks add cluster $DEMO_VF_IP 2 vlan=2 fe-fqdn=$DEMO_VF mem-per-frontend=1024 disk-per-frontend=4 mem-per-compute=256 disk-per-compute=1"
    demo_cmd "rocks add host key frontend-0-0-0 key=$FLIGHTDECK_HOME/owner.pub description=owner"
    demo_cmd 'rocks list cluster'
}

demo_owner_installs_frontend() {
    demo_section "the owner installs their frontend (guide §3.3.4), through the Airboss"
    demo_owner 'pilot list host macs host=frontend-0-0-0 key=private.key'
    demo_owner 'pilot set host power host=frontend-0-0-0 key=private.key action=install'
    printf '\n# it writes the frontend image to its disk, boots it and reports ready (TCG: ~3 min)\n'
    demo_wait "frontend-0-0-0 installed" 600 \
        "rocks list host boot frontend-0-0-0 output-header=no | grep -qw os"
    demo_wait "frontend-0-0-0 ready" 600 \
        "rocks list host vm frontend-0-0-0 status=y output-header=no | grep -qw ready"
    demo_owner 'pilot list host macs host=frontend-0-0-0 key=private.key status=yes'
}

demo_owner_installs_computes() {
    demo_section "logged in to $DEMO_VF, the owner installs the computes over VLAN 2 (§3.3.5)"
    demo_owner "scp private.key $DEMO_VF:"
    demo_vf 'hostname -f; rocks list host'
    printf '\n# insert-ethers, as in a second terminal on the virtual frontend\n'
    demo_vf 'nohup insert-ethers > insert-ethers.out 2>&1 < /dev/null & sleep 1'
    printf '\n# the Airboss is reached over TLS (its CA came with the image; the guide'"'"'s ssh -L tunnel works too)\n'
    demo_vf "rocks list host macs $DEMO_VF key=private.key"
    local macs
    # The cluster's MACs but the frontend's own: the computes'.
    macs=$(vf "rocks list host macs $DEMO_VF key=private.key output-header=no" |
        grep -v -x -F -f <(vf 'rocks list host interface frontend-0-0 output-header=no output-col=mac') | xargs)
    [[ $(wc -w <<<"$macs") == 2 ]] || fd_die "expected the two computes' MACs, got: $macs"
    demo_vf "rocks set host power $macs key=private.key action=install"
    demo_wait "compute-0-0 and compute-0-1 named and installed" 600 \
        "[[ \$(vf 'rocks list host boot output-header=no' | grep -c '^compute-0-[01]: *os') == 2 ]]"
    demo_vf 'cat insert-ethers.out'
}

demo_console() {
    demo_section "compute-0-0's serial console, by its name on the virtual side"
    demo_vf 'rocks set host power compute-0-0 key=private.key action=install'
    demo_vf "timeout 240 rocks open host console compute-0-0 key=private.key console=serial </dev/null | awk '/FLIGHTDECK-/ {print} /FLIGHTDECK-REPORTED/ {exit}'"
    demo_wait "compute-0-0 reinstalled" 300 \
        "vf 'rocks list host boot compute-0-0 output-header=no' | grep -qw os"
}

demo_cluster_report() {
    demo_section "the virtual cluster, as its frontend sees it"
    demo_vf 'rocks list host'
    printf '\n# each compute'"'"'s install stamp, as its installer read it back from its disk and reported it\n'
    demo_vf "grep -o 'install of compute-0-[01] complete .*' /var/lib/flightdeck/dhcp/bootserver.log | sort -u"
    demo_cmd 'rocks list host vm status=y'
    demo_cmd 'rocks list airboss log limit=6'
}

DEMO_SECTIONS=(
    demo_frontend
    demo_images
    demo_services
    demo_virtual_cluster
    demo_owner_installs_frontend
    demo_owner_installs_computes
    demo_console
    demo_cluster_report
)

# ------------------------------------------------------------------------------ main
fd_init
fd_lock

fd_banner "set-up: system packages"
fd_install_system
fd_banner "set-up: virtualenv"
fd_venv
fd_web_assets
demo_owner_client
fd_banner "set-up: libvirtd"
fd_start_libvirtd
fd_add_cleanup demo_stop_vms # runs before fd_stop_libvirtd (cleanups run in reverse)

export PATH="$FD_VENV/bin:$PATH"
cd "$FD_REPO"
demo_clean_vms
demo_reset_home

for section in "${DEMO_SECTIONS[@]}"; do
    "$section"
done

fd_banner "demo: done"
fd_log "demo state is in $FLIGHTDECK_HOME; try: PATH=$FD_VENV/bin:\$PATH FLIGHTDECK_HOME=$FLIGHTDECK_HOME rocks list host"
