"""The Airboss: the daemon through which owners control their own VMs with signed requests.

* `app`       - the ASGI application (the request pipeline: signature, limits, authorisation)
* `config`    - settings (defaults, `airboss.toml`, command-line overrides)
* `server`    - `airboss serve`: uvicorn in the foreground, pid file, clean SIGTERM
* `daemon`    - `rocks start|stop|report service airboss`
* `openapi`   - the published OpenAPI document
* `ratelimit` - per-key token buckets

The use cases themselves are `flightdeck.services.airboss`; the client is `flightdeck.pilot`.
"""
