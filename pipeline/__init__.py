"""bounceguard: classify email delivery attempts and suppress addresses by provider policy."""

__version__ = "0.1.0"
