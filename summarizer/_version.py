"""The version, in a module that imports nothing (so that any module may use it)."""

__version__ = "0.2.0"
