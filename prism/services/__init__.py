"""Prism's built-in Realtime Services."""
