"""The SQLModel store: a SQLite file by default, PostgreSQL by URL; migrated on open.

`Store.open(url)` brings any older store up to the newest schema in place (Alembic revisions
in collectors/migrations/versions). Writes that may repeat use insert-or-ignore on natural
keys, so loading the same data twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine

import collectors.tables  # noqa: F401 - registers every table

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """A bare path means a SQLite file; postgresql:// uses the psycopg 3 driver."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class StoreUnreachableError(ValueError):
    """The store's database cannot be reached or opened (a user's setting, not a bug)."""


class NoStoreError(StoreUnreachableError):
    """A reading command was pointed at a store that does not exist: it creates none."""


def shown(url: str) -> str:
    """How a report names the store it read: the URL, its password masked."""
    return _safe(normalise_url(url)).removeprefix("sqlite:///")


def _safe(url: str) -> str:
    """The URL as shown in messages: a password in it is never printed."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, connect_args: dict[str, Any] | None = None,
             migrate: bool = True) -> Store:
        url = normalise_url(url)
        args = dict(connect_args or {})
        if url.startswith("sqlite"):
            args.setdefault("timeout", 30)
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args=args, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            try:
                store.upgrade()
            except OperationalError as exc:  # unreachable server, refused login, locked file
                engine.dispose()
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise StoreUnreachableError(f"cannot open the store at {_safe(url)}:"
                                            f" {reason}") from None
        return store

    @classmethod
    def open_existing(cls, url: str, *, migrate: bool = True) -> Store:
        """Open a store that must already exist (what reading commands do: a mistyped path
        is an error naming it, never a new empty store). An existing one is migrated to
        the current schema unless `migrate` is off."""
        normal = normalise_url(url)
        path = normal.removeprefix("sqlite:///") if normal.startswith("sqlite") else None
        if path and path != ":memory:" and not Path(path).expanduser().is_file():
            raise NoStoreError(f"no store at {path}: `llmkpi demo-data` makes a demo one,"
                               " `llmkpi import KIND FILE` fills a real one")
        store = cls.open(url, migrate=False)
        try:
            revision = store.revision()
        except Exception as exc:  # a server that is down, a file that is not SQLite
            store.close()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreUnreachableError(f"cannot read the store at {_safe(normal)}:"
                                        f" {reason}") from None
        if revision is None:
            store.close()
            raise NoStoreError(f"{_safe(normal)} holds no llmkpi tables: `llmkpi db upgrade"
                               f" --database {_safe(normal)}` creates them")
        if migrate:
            store.upgrade()
        return store

    def upgrade(self, revision: str = "head") -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            rev = MigrationContext.configure(connection).get_current_revision()
            return str(rev) if rev is not None else None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session whose transaction can hold savepoints on SQLite too: pysqlite leaves
        BEGIN to the first INSERT, so a SAVEPOINT first would be the whole transaction and
        its release a commit. BEGIN IMMEDIATE also takes the write lock up front, waiting
        out the busy timeout instead of failing on upgrade."""
        with Session(self.engine) as session:
            if self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    def insert_ignore(self, session: Session, model: type[SQLModel],
                      rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows, skipping any whose natural key is already stored."""
        if not rows:
            return
        table = model.__table__  # type: ignore[attr-defined]
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing()
        else:
            stmt = insert(table).prefix_with("IGNORE")
        session.execute(stmt, list(rows))

    def upsert(self, session: Session, model: type[SQLModel],
               rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows keyed by their natural (primary) key, replacing a stored row with the
        same key; of rows repeating a key, the last one stands."""
        table = model.__table__  # type: ignore[attr-defined]
        keys = [column.name for column in table.primary_key.columns]
        latest = list({tuple(row[k] for k in keys): row for row in rows}.values())
        if not latest:
            return
        dialect = self.engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            for row in latest:
                session.merge(model.model_validate(row))
            return
        stmt: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        stmt = (stmt.on_conflict_do_update(index_elements=keys, set_=others) if others
                else stmt.on_conflict_do_nothing())
        session.execute(stmt, latest)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
