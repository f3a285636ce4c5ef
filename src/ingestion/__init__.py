"""Ingestion's parts: raw sources registered as DuckDB views (files, databases, frames) and the
validation of one table. The entry points are in :mod:`churnclv.ingest`."""
