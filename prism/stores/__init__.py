"""
Session stores other than the in-memory default (L{prism.sessions}); each
lives in its own module, which imports its driver only when the store first
connects.
"""

__all__ = []
