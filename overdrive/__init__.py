"""Overdrive: a real-time recommendation and ranking service."""

__version__ = "0.1.0"
