"""What a new VM gets when nothing is said: the guide's defaults, in one place.

`rocks add cluster`, `rocks add host vm`, the schema's column defaults and the disk a start
creates when a row has no size all read these.
"""

from __future__ import annotations

#: A new VM's disk, in GB of 10^9 bytes (the guide's 36 GB).
DISK_GB = 36
#: A new VM's memory, in MB of 2^20 bytes.
MEM_MB = 1024
#: A new VM's vCPUs.
CPUS = 1

#: How a VM container's libvirt is reached unless its attribute `libvirt_uri` says otherwise
#: (attribute `libvirt_uri_template`, set by `rocks init frontend`; `{host}` is its name).
DEFAULT_LIBVIRT_URI_TEMPLATE = "qemu+ssh://root@{host}/system"
