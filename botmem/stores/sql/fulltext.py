"""Full-text matching and BM25-style ranking in SQL: FTS5 on SQLite, tsvector on PostgreSQL.

The indexes are built by migration_2. Queries arrive as terms from stores/text.py (letters
and digits only); each is still quoted, so no user text is ever read as FTS5 or tsquery
syntax. Terms are ORed: any word may match, and more (and rarer) matches rank higher.

Matches come with a ``score`` column: relevance, higher is better, never negative (FTS5's
bm25() is lower-is-better, so it is negated). Scores compare rows of one result only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Table, Text, bindparam, column, func, literal_column, table
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
    PostgreSQL the table's ``search`` tsvector column is used.

    `weights`: one per indexed column, in index order, when there are several; the score
    is then the weighted sum of per-column ranks. On PostgreSQL those columns are labelled
    A, B, ... in the tsvector (setweight); a single column stays unlabelled and is ranked
    with ts_rank's default weights.
    """

    target: Table
    fts_table: str
    weights: tuple[float, ...] = ()

    def match(self, query: Select[Any], terms: Sequence[str], *, sqlite: bool) -> Select[Any]:
        """`query` (selecting from the target) narrowed to rows matching any of `terms`,
        with their ``score`` added as a column, ordered best first; callers add their
        tie-breakers after."""
        if sqlite:
            fts = table(self.fts_table, column("rowid"))
            whole: ColumnElement[Any] = literal_column(self.fts_table)
            matches = whole.op("MATCH")(bindparam("fts_query", fts5_query(terms), type_=Text))
            query = query.join(fts, fts.c.rowid == self.target.c.id)
            score = self._bm25(whole)
        else:
            search: ColumnElement[Any] = literal_column(f"{self.target.name}.search")
            parsed = func.to_tsquery(_PG_CONFIG, bindparam("ts_query", tsquery(terms), type_=Text))
            matches = search.op("@@")(parsed)
            score = self._ts_rank(search, parsed)
        return query.add_columns(score.label("score")).where(matches).order_by(score.desc())

    def _bm25(self, whole: ColumnElement[Any]) -> ColumnElement[Any]:
        weights: list[ColumnElement[Any]] = [literal_column(repr(float(w))) for w in self.weights]
        return -func.bm25(whole, *weights, type_=Float)  # bm25() is lower-is-better

    def _ts_rank(
        self, search: ColumnElement[Any], parsed: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        # Normalisation 1 divides by 1 + log(length): long texts do not win by size alone.
        if not self.weights:
            return func.ts_rank(search, parsed, 1, type_=Float)
        # ts_rank takes the weights of labels {D, C, B, A}; columns are labelled A, B, ...
        by_label = [0.0] * (4 - len(self.weights)) + [float(w) for w in reversed(self.weights)]
        array: ColumnElement[Any] = literal_column(
            "'{" + ", ".join(map(repr, by_label)) + "}'::float4[]"
        )
        # Each column ranked on its own (as bm25() does), so that its length normalisation
        # is not diluted by the others: one ts_rank would count the context's length too.
        ranks: list[ColumnElement[Any]] = [
            func.ts_rank(array, func.ts_filter(search, literal_column(f"'{{{label}}}'")), parsed, 1)
            for label in "abcd"[: len(self.weights)]
        ]
        return sum(ranks[1:], ranks[0])
