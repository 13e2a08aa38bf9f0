"""Versioned schema migrations (Alembic). Applied by Store.open(); never edit a released one."""
