"""Datasets to work with: importers for public datasets and plain files, and synthetic worlds with
planted structure. Rows come out in the API's wire format; nothing here talks to a service."""
