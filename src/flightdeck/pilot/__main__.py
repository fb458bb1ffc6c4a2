"""`python -m flightdeck.pilot ...`."""

from flightdeck.pilot.main import main

main()
