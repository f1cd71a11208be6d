"""Full-text matching and BM25-style ranking in SQL: FTS5 on SQLite, tsvector on PostgreSQL.

The indexes are built by migration_2. Queries arrive as terms from stores/text.py (letters
and digits only); each is still quoted, so no user text is ever read as FTS5 or tsquery
syntax. Terms are ORed: any word may match, and more (and rarer) matches rank higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, Text, bindparam, column, func, literal_column, table
from sqlalchemy.sql import ColumnElement, Select

_PG_CONFIG: ColumnElement[Any] = literal_column("'botmem_english'::regconfig")


def fts5_query(terms: Sequence[str]) -> str:
    """``"w1" OR "w2"``: each term a quoted string (a phrase of one token), never syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms: Sequence[str]) -> str:
    """``'w1' | 'w2'`` for to_tsquery: each term a quoted lexeme, ORed."""
    return " | ".join("'" + term.replace("'", "''").replace("\\", "\\\\") + "'" for term in terms)


@dataclass(frozen=True)
class FullText:
    """Full-text search over one table: `fts_table` names its FTS5 index on SQLite; on
    PostgreSQL the table's ``search`` tsvector column is used."""

    target: Table
    fts_table: str

    def match(self, query: Select[Any], terms: Sequence[str], *, sqlite: bool) -> Select[Any]:
        """`query` (selecting from the target) narrowed to rows matching any of `terms`,
        ordered best first; callers add their tie-breakers after."""
        if sqlite:
            return self._fts5(query, terms)
        return self._tsvector(query, terms)

    def _fts5(self, query: Select[Any], terms: Sequence[str]) -> Select[Any]:
        fts = table(self.fts_table, column("rowid"))
        whole: ColumnElement[Any] = literal_column(self.fts_table)
        rank: ColumnElement[Any] = func.bm25(whole)  # lower is better
        return (
            query.join(fts, fts.c.rowid == self.target.c.id)
            .where(whole.op("MATCH")(bindparam("fts_query", fts5_query(terms), type_=Text)))
            .order_by(rank)
        )

    def _tsvector(self, query: Select[Any], terms: Sequence[str]) -> Select[Any]:
        search: ColumnElement[Any] = literal_column(f"{self.target.name}.search")
        parsed = func.to_tsquery(_PG_CONFIG, bindparam("ts_query", tsquery(terms), type_=Text))
        # Normalisation 1 divides by 1 + log(length): long messages do not win by size alone.
        rank = func.ts_rank(search, parsed, 1)
        return query.where(search.op("@@")(parsed)).order_by(rank.desc())
