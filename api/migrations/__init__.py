"""Alembic migrations of the API database, run by `nodeloom.api.db.upgrade_database`."""
