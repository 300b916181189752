"""pingr: check that a list of URLs answer, and how fast."""

__version__ = "0.4.1"
