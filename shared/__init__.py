"""crbroker: brokered container-registry scanning."""

__version__ = "0.1.0"
