"""Wayline: a customer data platform, a journey orchestrator and a real-time messaging server."""

__version__ = "0.1.0"
