"""Learned models: collaborative filtering (and later two-tower). Nothing here loads at import."""
