"""What the Airboss does for an owner, once their request's signature has verified.

One module per concern; each is synchronous and short, and the Airboss (`flightdeck.airboss`)
runs it in worker threads, in the order its request gate (`flightdeck.airboss.gate`) fixes:

* `keys`     - the registered public keys of a key id (parsed PEMs cached per gate)
* `nonces`   - the replay cache: one row per signature's nonce, until it expires
* `access`   - the target string checked alone, then resolved ONCE to a `Target` (ids) that
               the key must cover; every refusal is `Refused` with a precise audit reason
* `nodes`    - the MAC list of the target's cluster (and the nodes' live state)
* `power`    - on, off, install, reset, shutdown of one authorised VM, by its id
* `media`    - the CD-ROM images of the VM's container (`kvm_iso_dir`) and the drive's image
* `consoles` - where a VM's VNC and serial consoles are reached, and opening them
* `audit`    - one row per decision, and the listing for `rocks list airboss log`
* `local`    - the other side: what `rocks ... key=` reads from this frontend's own database

Operations receive an authorised `access.Target`, never the owner's text: what was resolved by
the authorisation is what is acted on.
"""
