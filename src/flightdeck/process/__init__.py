"""Processes we start and supervise: a driver package, like `virt/`, `net/` and `pxe/`.

* `daemon` - background daemons without systemd (the Airboss, the boot server, dnsmasq): start
             (a Python module by its path, or a program that daemonises itself), pid file,
             readiness, stop, the log's last lines; and a program started for the user (the
             VNC viewer `pilot` opens).

Only driver packages may start processes (tests/test_layers.py); everything else asks here.
"""
