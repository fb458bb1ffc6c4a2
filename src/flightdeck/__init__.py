"""Flightdeck: virtual clusters on KVM hosts, in the tradition of the Rocks KVM Roll."""

__version__ = "0.1.0"
