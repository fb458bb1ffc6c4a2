"""The Airboss: the daemon through which owners control their own VMs with signed requests.

* `app`       - the ASGI application: the declared operations (`flightdeck.api.operations`)
                over HTTP, routed and parsed from their declarations
* `console`   - the console operation: a WebSocket relay of VNC and serial
* `gate`      - the request gate both pass: verify, replay, rate limit, authorise, audit
* `workers`   - the database and libvirt thread pools (libvirt bounded per container)
* `tokens`    - web console tokens, in this process's memory
* `web`       - the browser console's page and assets
* `config`    - settings (defaults, `airboss.toml`, command-line overrides)
* `server`    - `airboss serve`: uvicorn in the foreground, pid file, clean SIGTERM
* `daemon`    - `rocks start|stop|report service airboss`
* `ratelimit` - per-key token buckets

The use cases themselves are `flightdeck.services.airboss`; the client is `flightdeck.pilot`.
"""
