"""Prometheus exporter for Dify Enterprise license expiry, mode and governance."""

__version__ = "0.1.0"
