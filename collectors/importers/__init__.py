"""Importers: `load(path) -> rows`, every row validated before anything is written."""
