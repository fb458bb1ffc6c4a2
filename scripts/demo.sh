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
# The demo's networks are address-less Linux bridges of its own (never the machine's eth0):
# fdprv0 stands for the private network, fdpub0 for the public one, and vlan<N> for a virtual
# cluster's VLAN (this kernel has no 802.1Q, so clusters use per-VLAN bridges: kvm_vlan_mode).
DEMO_BRIDGES=(fdprv0 fdpub0 vlan2)

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

# At exit, before the libvirtd this script started is stopped: qemu would keep the demo's VMs
# running without it, out of everyone's reach. (FD_KEEP=1 keeps libvirtd, and them.)
demo_stop_vms() {
    [[ ${FD_STARTED_LIBVIRTD:-0} == 1 && ${FD_KEEP:-0} != 1 ]] || return 0
    demo_clean_vms
}

demo_frontend() {
    demo_section "this machine becomes the frontend"
    demo_cmd 'rocks init frontend name=flightdeck-demo.local public-ip=192.0.2.10 public-netmask=255.255.255.0 private-ip=10.1.1.1 private-netmask=255.255.0.0 private-iface=fdprv0 public-iface=fdpub0'
}

demo_vm_container() {
    demo_section "a VM container (this machine's libvirtd)"
    demo_cmd 'rocks add host vm-container-0-0 membership="VM Container" rack=0 rank=0 cpus=2'
    demo_cmd 'rocks set host attr vm-container-0-0 libvirt_uri qemu:///system'
    demo_cmd 'rocks add host interface vm-container-0-0 fdprv0 mac=52:54:00:fd:00:01 ip=10.1.255.254 subnet=private'
}

demo_virtual_cluster() {
    demo_section "a virtual cluster: frontend + 2 computes on VLAN 2"
    demo_bridges
    demo_cmd 'rocks set attr kvm_domain_type qemu'
    demo_cmd "rocks set attr kvm_disk_dir $FLIGHTDECK_HOME/disks"
    demo_cmd 'rocks set appliance attr frontend kvm_vlan_mode bridge'
    demo_cmd 'rocks set appliance attr vm-container kvm_vlan_mode bridge'
    demo_cmd 'rocks create installer image'
    demo_cmd 'rocks add cluster ip=192.0.2.11 num-computes=2 vlan=2 mem-per-frontend=256 mem-per-compute=256 disk-per-frontend=1 disk-per-compute=1'
    demo_cmd 'rocks list cluster'
    demo_cmd 'rocks list host interface frontend-0-0-0'
    demo_cmd 'rocks start host vm frontend-0-0-0'
    printf '\n# the virtual frontend installs: its serial console, read through libvirt\n'
    python - <<'PY'
import sys
from flightdeck.virt import hypervisor, console
conn = hypervisor.connect("frontend-0-0", "qemu:///system")
out = console.read_serial(conn, "frontend-0-0-0", b"FLIGHTDECK-BOOTED", 120.0)
text = out.decode(errors="replace")
for line in text.splitlines():
    if "FLIGHTDECK-" in line:
        print("  " + line.strip())
sys.exit(0 if "FLIGHTDECK-BOOTED" in text else 1)
PY
    demo_cmd 'rocks list host boot frontend-0-0-0'
    demo_cmd 'rocks list cluster status=y'
}

demo_listings() {
    demo_section "what the database now holds"
    demo_cmd 'rocks list host'
    demo_cmd 'rocks list host interface'
    demo_cmd 'rocks list cluster'
}

demo_airboss_down() {
    rocks stop service airboss >/dev/null 2>&1 || true
    rm -f /tmp/flightdeck-demo-owner.key
}

# The owner of the virtual cluster, who is not root: a key, the Airboss, signed power requests.
demo_airboss() {
    demo_section "the cluster's owner: signed requests through the Airboss"
    demo_airboss_down
    fd_add_cleanup demo_airboss_down
    demo_cmd "rocks create keys key=$FLIGHTDECK_HOME/owner.key passphrase=no > $FLIGHTDECK_HOME/owner.pub"
    demo_cmd "rocks add host key frontend-0-0-0 key=$FLIGHTDECK_HOME/owner.pub description=owner"
    demo_cmd 'rocks list host key'
    demo_cmd 'rocks start service airboss'
    cp "$FLIGHTDECK_HOME/owner.key" /tmp/flightdeck-demo-owner.key
    chown nobody /tmp/flightdeck-demo-owner.key
    demo_cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups pilot list host macs host=frontend-0-0-0 key=/tmp/flightdeck-demo-owner.key status=yes"
    demo_cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups pilot set host power host=hosted-vm-0-0-0 key=/tmp/flightdeck-demo-owner.key action=on"
    demo_cmd 'rocks list cluster status=y'
    demo_cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups pilot set host power host=hosted-vm-0-0-0 key=/tmp/flightdeck-demo-owner.key action=off"
    printf '\n# the owner reinstalls the virtual frontend and watches its serial console (until it powers off)\n'
    demo_cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups pilot set host power host=frontend-0-0-0 key=/tmp/flightdeck-demo-owner.key action=install"
    demo_cmd "timeout 120 setpriv --reuid=nobody --regid=nogroup --clear-groups pilot open host console host=frontend-0-0-0 key=/tmp/flightdeck-demo-owner.key console=serial </dev/null | grep -a FLIGHTDECK-"
    demo_cmd "setpriv --reuid=nobody --regid=nogroup --clear-groups pilot open host console host=frontend-0-0-0 key=/tmp/flightdeck-demo-owner.key web=yes"
    demo_cmd 'rocks list airboss log limit=6'
    rm -f /tmp/flightdeck-demo-owner.key
    rocks stop service airboss >/dev/null 2>&1 || true
}

# The frontend's private address and its dnsmasq live in a network namespace of the demo, joined
# to the address-less bridge fdprv0 by a veth: nothing is added to this machine's own interfaces.
DEMO_NETNS=fddemo-fe

demo_netns_down() {
    rocks stop service dhcp >/dev/null 2>&1 || true
    ip netns del "$DEMO_NETNS" 2>/dev/null || true
}

demo_netns_up() {
    demo_netns_down
    ip netns add "$DEMO_NETNS"
    fd_add_cleanup demo_netns_down
    ip link add fddemo0 type veth peer name prv0 netns "$DEMO_NETNS"
    sysctl -qw net.ipv6.conf.fddemo0.disable_ipv6=1 || true
    ip link set fddemo0 master fdprv0 up
    ip -n "$DEMO_NETNS" link set lo up
    ip -n "$DEMO_NETNS" addr add 10.1.1.1/16 dev prv0
    # An IPv6 prefix only so that dnsmasq can send a router advertisement: iPXE then stops
    # waiting for IPv6 autoconfiguration ~13 s sooner.
    ip -n "$DEMO_NETNS" addr add fdfa:fd::1/64 dev prv0 nodad
    ip -n "$DEMO_NETNS" link set prv0 up
}

# A VM of the physical cluster (guide section 3.4): PXE from the frontend's dnsmasq, the
# installer stamps its disk and reports back, its boot action becomes os.
demo_pxe() {
    demo_section "a compute VM of the physical cluster installs over PXE"
    demo_netns_up
    demo_cmd "rocks start service dhcp netns=$DEMO_NETNS interface=prv0"
    demo_cmd 'rocks add host vm vm-container-0-0 membership=Compute mem=256 disksize=1'
    demo_cmd 'rocks sync dhcp'
    # Its name: the appliance, the container's rack and rank, then the next slice (6.2's rule).
    local vm
    vm=$(rocks list host vm output-header=no output-col=vm-host | tr -d ': ' | grep '^compute-' | head -n 1)
    demo_cmd "rocks list host boot $vm"
    demo_cmd "rocks start host vm $vm"
    printf '\n# waiting for the installer to report completion (PXE under TCG: ~15 s)\n'
    local waited=0
    until rocks list host boot "$vm" output-header=no | grep -qw os; do
        ((waited++ < 180)) || fd_die "$vm did not report its install within 180 s: see $FLIGHTDECK_HOME/dhcp/bootserver.log"
        sleep 1
    done
    demo_cmd "grep -a -h -E 'DHCPACK|$vm' $FLIGHTDECK_HOME/dhcp/dnsmasq.log $FLIGHTDECK_HOME/dhcp/bootserver.log | tail -n 6"
    demo_cmd "rocks list host boot $vm"
    rocks stop host vm "$vm" >/dev/null 2>&1 || true
    demo_netns_down
}

DEMO_SECTIONS=(
    demo_frontend
    demo_vm_container
    demo_listings
    demo_virtual_cluster
    demo_pxe
    demo_airboss
)

# ------------------------------------------------------------------------------ main
fd_init
fd_lock

fd_banner "set-up: system packages"
fd_install_system
fd_banner "set-up: virtualenv"
fd_venv
fd_web_assets
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
