"""Use cases the API calls: ingest signals, manage the catalog, rank feeds."""
