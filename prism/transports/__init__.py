"""Prism's built-in transports."""
