"""Multi-row INSERTs bound straight to the driver, for the trace writer's batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controltower.store.serialize import Row, json_dumps


class BulkInsert:
    """A bulk INSERT that skips known keys, or (upsert) overwrites their rows.

    The trace writer runs it in the gateway's process. On SQLite, one multi-row statement
    per chunk of rows (instead of executemany, which steps once per row) lets the driver
    release the GIL once per chunk, and skipping SQLAlchemy's per-row bind processing cuts
    the CPU the writer takes from the event loop several times over. On PostgreSQL, rows
    are COPYed into a temporary table and moved with one INSERT ... SELECT: psycopg
    re-parses long multi-row statements on every execute (it caches only short ones),
    which made them cost several times more CPU per row than COPY.
    """

    # rows per statement: 26 columns x 1024 stays below SQLite's 32,766 parameters; few,
    # large statements matter because the writer waits for the GIL after each one
    CHUNK = 1024

    def __init__(
        self, table: sa.Table, json_columns: Sequence[str], dialect: str, upsert: bool = False
    ) -> None:
        self.keys = [c.key for c in table.c]
        self._json = [i for i, key in enumerate(self.keys) if key in set(json_columns)]
        names = ", ".join(f'"{c.name}"' for c in table.c)
        mark = "?" if dialect == "sqlite" else "%s"  # sqlite3: qmark; psycopg: format
        self._row_marks = "(" + ", ".join(mark for _ in self.keys) + ")"
        self._head = f"INSERT INTO {table.name} ({names}) VALUES "
        if upsert:
            keys = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            sets = ", ".join(
                f'"{c.name}" = excluded."{c.name}"' for c in table.c if not c.primary_key
            )
            self._tail = f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        elif dialect == "sqlite":
            self._head, self._tail = f"INSERT OR IGNORE INTO {table.name} ({names}) VALUES ", ""
        else:
            self._tail = " ON CONFLICT DO NOTHING"
        self._sql: dict[int, str] = {}
        self._copy = dialect == "postgresql"
        if self._copy:
            temp = f"{table.name}_in_{'upsert' if upsert else 'insert'}"
            self._temp_sql = f"CREATE TEMP TABLE IF NOT EXISTS {temp} (LIKE {table.name})"
            self._copy_sql = f"COPY {temp} ({names}) FROM STDIN"
            self._move_sql = (
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {temp}{self._tail}"
            )
            # TRUNCATE, not DELETE: nothing vacuums temporary tables, and the dead rows of
            # every earlier batch would slow each INSERT ... SELECT a little more
            self._clear_sql = f"TRUNCATE {temp}"
            self._direct_sql = f"COPY {table.name} ({names}) FROM STDIN"

    def run(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert rows (dicts with every column key)."""
        if self._copy:
            self._run_copy(conn, rows)
            return
        start = 0
        while start < len(rows):
            # chunks of power-of-two sizes: at most 11 distinct statements for the driver
            # to prepare and cache, however the batches vary (each one is large)
            size = 1 << (min(len(rows) - start, self.CHUNK).bit_length() - 1)
            chunk = rows[start : start + size]
            conn.exec_driver_sql(self._statement(size), tuple(self._flatten(chunk)))
            start += size

    def run_new(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert rows whose keys the table cannot hold yet (the caller made sure of it).

        On PostgreSQL they are COPYed straight into the table, skipping the staging table
        and its INSERT ... SELECT: half the work for the spans of a new trace.
        """
        if not self._copy:
            self.run(conn, rows)
            return
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(self._direct_sql) as copy:
            for values in self._values(rows):
                copy.write_row(values)

    def _run_copy(self, conn: Connection, rows: Sequence[Row]) -> None:
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            # every time: a rolled-back transaction takes a table it created with it
            cursor.execute(self._temp_sql)
            with cursor.copy(self._copy_sql) as copy:
                for values in self._values(rows):
                    copy.write_row(values)
            cursor.execute(self._move_sql)
            cursor.execute(self._clear_sql)

    def _statement(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            sql = self._sql[n] = self._head + ", ".join([self._row_marks] * n) + self._tail
        return sql

    def _flatten(self, rows: Sequence[Row]) -> list[Any]:
        flat: list[Any] = []
        for values in self._values(rows):
            flat.extend(values)
        return flat

    def _values(self, rows: Sequence[Row]) -> list[list[Any]]:
        json_indexes = self._json
        keys = self.keys
        out = []
        for row in rows:
            values = [row[key] for key in keys]
            for i in json_indexes:
                if values[i] is not None:
                    values[i] = json_dumps(values[i])
            out.append(values)
        return out
