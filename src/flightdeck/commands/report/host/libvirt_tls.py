"""rocks report host libvirt-tls"""

from __future__ import annotations

from pathlib import Path

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Print a script that installs a host's certificates for libvirt over TLS"
    description = (
        "For sites that reach their VM containers as qemu+tls://{host}/system (attribute "
        "libvirt_uri_template): a new certificate and key from the site CA (/etc/pki/"
        "flightdeck/ca.crt, made there if missing), with the CA certificate, in libvirt's "
        "standard PKI layout (/etc/pki/CA/cacert.pem, /etc/pki/libvirt/...). A VM container "
        "gets a server certificate for its names and addresses, the frontend a client one "
        "(and a server one: it runs the physical cluster's VMs). Pipe it to the host: "
        "nothing is kept here, the key exists only in the script."
    )
    args = ONE_HOST
    params = (
        Param(
            "role",
            "server (libvirtd), client (the frontend's side) or both",
            default_text="both for the frontend, server for a VM container, else client",
        ),
        Param(
            "pkipath",
            "put the files flat in this directory (cacert.pem, servercert.pem, ...): what a "
            "URI's ?pkipath= names, or libvirtd.conf's ca_file/cert_file/key_file",
        ),
        Param("ca-dir", "the site CA's directory", default_text="/etc/pki/flightdeck"),
    )
    writes = False
    examples = (
        Example(
            "rocks report host libvirt-tls vm-container-0-0",
            "The script that installs the container's server certificate where its libvirtd "
            "looks: pipe it to the container ('| ssh vm-container-0-0 sh').",
        ),
        Example(
            "rocks report host libvirt-tls frontend-0-0 role=client",
            "This frontend's client certificate, for qemu+tls:// connections ('| sh').",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.libvirt_tls import libvirt_tls, script

        ca_dir = Path(p["ca_dir"]) if p["ca_dir"] else None
        setup = libvirt_tls(self.ctx.db, p.args[0], p["role"], p["pkipath"], ca_dir)
        self.ctx.out.write(script(setup))
        if setup.new_ca:
            self.ctx.err.write(f"made the site CA in {ca_dir or '/etc/pki/flightdeck'}\n")
