"""SQL connections: where a dataset version can be queried from.

Two kinds, both PostgreSQL:
- registered by a project's owner (`SqlConnection`, DSN encrypted, never shown again);
- configured by operators in `settings.SQL_CONNECTIONS`, each for the projects the operator
  names (not for every project).
Every query goes through `mlplatform.netguard.pg_connect` (address policy, pinning, no files or
sockets, never the platform's own database), in a read-only transaction with a time limit,
streamed and cut at the row and column limits.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from django.conf import settings

from datasets.models import SqlConnection
from mlplatform import netguard
from mlplatform.errors import Conflict, InvalidInput
from projects.events import AuditAction
from projects.models import Project
from projects.services import audit_record

STREAM_CHUNK = 10_000


class QueryFailed(Exception):
    """The database answered with an error, or the result is over a limit; the message says which."""


def _dsn_check(dsn: str) -> netguard.PgTarget:
    try:
        target = netguard.pg_parse(dsn)
        # Early, clear answer for an address the policy refuses; a name that does not resolve
        # now is checked again (pinned) when a query runs.
        netguard.check_host(target.host, target.port, resolve_ok=True, dbname=target.dbname)
    except netguard.Refused as exc:
        raise InvalidInput(str(exc), field="dsn") from None
    return target


def operator_connections_for(project: Project) -> dict[str, dict[str, Any]]:
    """The operator's connections this project may use."""
    return {
        name: conf
        for name, conf in (settings.SQL_CONNECTIONS or {}).items()
        if conf["projects"] == "*" or project.pk in conf["projects"]
    }


def sql_connection_names(*, project: Project) -> list[str]:
    names = list(SqlConnection.objects.filter(project=project).values_list("name", flat=True))
    return names + [n for n in operator_connections_for(project) if n not in names]


def sql_connection_create(*, project: Project, name: str, dsn: str, actor: Any) -> SqlConnection:
    from datasets.crypto import encrypt

    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput("A connection needs a name (at most 80 characters).", field="name")
    _dsn_check(dsn)
    if SqlConnection.objects.filter(project=project, name=name).exists() or name in operator_connections_for(project):
        raise Conflict(f"A connection named {name!r} already exists.", field="name")
    conn = SqlConnection.objects.create(
        project=project, name=name, dsn_encrypted=encrypt(dsn.strip()), created_by=actor
    )
    audit_record(actor=actor, action=AuditAction.SQL_CONNECTION_CREATED, project=project, obj=conn, data={"name": name})
    return conn


def sql_connection_delete(*, connection: SqlConnection, actor: Any) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.SQL_CONNECTION_DELETED,
        project=connection.project,
        obj=connection,
        data={"name": connection.name},
    )
    connection.delete()


def sql_connection_target(*, project: Project, name: str) -> tuple[netguard.PgTarget, bool]:
    """(where to connect, whether an operator configured it) for a connection this project owns."""
    from datasets.crypto import decrypt

    conn = SqlConnection.objects.filter(project=project, name=name).first()
    try:
        if conn is not None:
            return netguard.pg_parse(decrypt(conn.dsn_encrypted)), False
        configured = operator_connections_for(project)
        if name in configured:
            return netguard.pg_parse(configured[name]["dsn"]), True
    except netguard.Refused as exc:
        # A DSN stored before the policy existed can fail it now: say so, never connect.
        raise InvalidInput(f"The connection {name!r} is not allowed any more: {exc}", field="connection") from None
    raise InvalidInput(f"No connection named {name!r}.", field="connection")


def sql_query_check(query: str) -> str:
    query = (query or "").strip().rstrip(";").strip()
    if not query:
        raise InvalidInput("Write a query.", field="query")
    if len(query) > 20_000:
        raise InvalidInput("The query is too long.", field="query")
    if not re.match(r"^(select|with)\b", query, re.IGNORECASE):
        raise InvalidInput("Only SELECT (or WITH ... SELECT) queries are allowed.", field="query")
    if ";" in query:
        raise InvalidInput("One statement only.", field="query")
    return query


def dataset_from_sql(
    *, project: Project, name: str, connection: str, query: str, created_by: Any, dataset: Any = None
) -> Any:
    from datasets.models import VersionSource
    from datasets.services import _ingest_version

    query = sql_query_check(query)
    sql_connection_target(project=project, name=connection)  # exists for this project, 400 otherwise
    return _ingest_version(
        project=project,
        name=name,
        created_by=created_by,
        dataset=dataset,
        source=VersionSource.SQL,
        source_detail={"connection": connection, "query": query},
        action=AuditAction.DATASET_VERSION_SQL_QUERY,
        audit_data={"connection": connection},
    )


def query_frame(*, project: Project, connection: str, query: str) -> pd.DataFrame:
    """Run a read-only query through the outbound policy; at most MAX_ROWS x MAX_COLUMNS.

    Raises InvalidInput (unknown connection), netguard.Refused (policy), netguard.ConnectFailed
    (no answer) or QueryFailed (the database's error, or a limit).
    """
    import psycopg

    target, trusted = sql_connection_target(project=project, name=connection)
    max_rows, max_columns = settings.MAX_ROWS, settings.MAX_COLUMNS
    with netguard.pg_connect(target, trusted=trusted, statement_timeout_s=settings.URL_FETCH_TIMEOUT_SECONDS) as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            cursor = conn.cursor()
            rows: list[tuple] = []
            columns: list[str] = []
            # Streamed: the server sends rows in chunks and we stop at the limit, instead of
            # the whole result landing in the worker's memory first.
            for row in cursor.stream(query, size=STREAM_CHUNK):
                if not columns:
                    columns = [d.name for d in cursor.description or []]
                    if len(columns) > max_columns:
                        raise QueryFailed(
                            f"The query returns {len(columns)} columns; the limit is {max_columns} (MAX_COLUMNS)."
                        )
                if len(rows) >= max_rows:
                    raise QueryFailed(
                        f"The query returns more than {max_rows} rows (MAX_ROWS); add a LIMIT or aggregate."
                    )
                rows.append(tuple(row))
            if not columns:
                columns = [d.name for d in cursor.description or []]
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QueryFailed(f"The query failed: {message}") from None
        finally:
            conn.rollback()
    return pd.DataFrame.from_records(rows, columns=columns)
