"""Pilot: the owner's side of the Airboss (laptop, virtual frontend, batch-scheduler hooks).

* `client`   - `AirbossClient`: signed requests, the one client every command uses
* `keyfile`  - make, find and open private keys
* `commands` - power (one host, a whole cluster, in parallel), MAC lists: shared by `pilot` and
               the `rocks ... key=` commands
* `main`     - the `pilot` command

Nothing here imports the database or libvirt: `pip install flightdeck` is enough for it.
"""
