"""Provisioning drivers: the installer image, and later dnsmasq (DHCP/TFTP) and boot files.

Like `virt/` and `net/`, this package may start processes; commands and services call its
functions and never run the tools themselves.
"""
