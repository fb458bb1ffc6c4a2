"""`python -m flightdeck.airboss serve ...` (what the daemon runs)."""

from flightdeck.airboss.main import main

main()
