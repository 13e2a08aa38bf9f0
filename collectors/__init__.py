"""Bring data in and keep it: the store, the ledger and the importers."""
