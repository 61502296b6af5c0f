"""Bulk import: datasets into a running service over HTTP (`http`), or into a stopped one's data
folder (`direct`). `python -m overdrive.ingest` is the command line."""
