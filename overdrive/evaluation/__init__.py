"""Data to evaluate with: a synthetic world with planted structure, dataset importers, bulk ingest."""
