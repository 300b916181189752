"""utilkit: small helpers for text, dates, numbers and sequences."""

__version__ = "1.2.0"
