"""Durable storage (SignalLog, ItemCatalog) and live derived state (FeatureStore)."""

from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog

__all__ = ["FeatureStore", "ItemCatalog", "SignalLog"]
