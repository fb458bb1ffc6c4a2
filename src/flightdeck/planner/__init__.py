"""Pure planning: names, MACs, VLAN ids, IPs, disk specs and placement.

Nothing here touches the database, the network, files or libvirt: the services read the current
state, hand it in as plain values, and write back what the planner decides, inside one
transaction. That keeps every rule of the original (reference §3) testable in isolation and
deterministic for given inputs.
"""
