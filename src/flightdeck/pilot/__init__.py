"""Pilot: the owner's side of the Airboss (laptop, virtual frontend, batch-scheduler hooks).

* `client`     - `AirbossClient`: the declared operations (`flightdeck.api.operations`),
                 signed, with typed answers; the one client every owner command uses
* `keyfile`    - make, find and open private keys
* `commands`   - power (one host, a whole cluster, in parallel) with one line per result
* `console`    - the local end of a console (VNC forwarder and viewer, raw serial terminal)
* `webconsole` - a one-time link to the browser console
* `websocket`  - a minimal RFC 6455 client
* `main`       - the `pilot` command: the `rocks` dispatcher over the owner commands

Nothing here imports the database, libvirt or the HTTP server: `pip install flightdeck` is
enough for it (tests/pilot/test_isolation.py).
"""
