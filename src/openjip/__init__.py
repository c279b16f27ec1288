"""openjip: an open platform for federated analysis of medical images."""

__version__ = "0.3.0"
