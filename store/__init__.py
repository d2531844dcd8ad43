"""The read store: cases, their history, work orders and alerts in SQL (an adapter).

PostgreSQL (psycopg 3) in production, SQLite (a file under ``~/.grid``) embedded; the same
SQLAlchemy Core queries on both. :mod:`store.schema` defines the tables (migrated by
Alembic, :mod:`store.db`), :mod:`store.writer` folds consumed records into them with the
consumed offsets in the same transaction, :mod:`store.reader` answers the pages, the API
and the evaluation report.
"""
