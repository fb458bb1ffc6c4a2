"""Networking on VM containers: render the planned network as files, apply it through netlink.

`render` turns a `planner.network.HostNetwork` into RHEL ifcfg files (as the original wrote
them) or systemd-networkd units; `files` writes them; `diff` (pure) compares the plan with a
snapshot of the live devices and lists the operations; `netlink` (pyroute2, in a network
namespace or the host's) and `shell` (iproute2 commands, locally or over ssh) observe and carry
them out; `apply` ties them together with a Reverter. Only this package talks to the kernel's
network stack or runs ssh for it.
"""
