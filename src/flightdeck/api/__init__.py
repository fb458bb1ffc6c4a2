"""The owner API: what an owner may ask the Airboss, declared once.

* `wire`       - the contract's vocabulary: the target rule, field kinds, JSON codecs and
                 schemas of typed requests and answers (standard library only; the lowest
                 layer above `errors`, so services and clients both use it)
* `operations` - one declaration per operation: method, path, request and answer types,
                 scope rule, audit wording and the service call that serves it
* `openapi`    - the OpenAPI document, generated from the declarations

The Airboss (`flightdeck.airboss.app`, `.console`) routes and parses from the declarations;
`pilot.client.AirbossClient.call` sends them; the owner commands (`commands/`, shared by `rocks`
and `pilot`) call the client. Nothing here imports a server package at import time: a service
is imported by the declaration's `serve` function, which only the Airboss calls.
"""
