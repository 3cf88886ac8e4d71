"""Full-text search over every entry's title and summary, the same on SQLite and PostgreSQL.

Semantics (the storage contract): the query is cut here, in Python, into words (letters and
digits, lower-cased, at most ``MAX_QUERY_WORDS``, words over ``MAX_WORD_CHARS`` dropped); an
entry matches when its title and summary together contain every word as a whole word, whatever
its case; accents count (``cafe`` does not find ``café``); no stemming. Nothing in the query is
ever interpreted: quotes, ``OR``, ``*``, ``NEAR(`` are words or separators like any other text.
A query without a word (blank, or punctuation only) searches nothing: it filters nothing out.

SQLite: the FTS5 table ``entries_fts`` indexes ``entries`` (external content, tokenizer
``unicode61 remove_diacritics 0``), kept in sync by triggers on insert, update and delete; each
word is matched as a quoted FTS5 string. The table follows ``entries.rowid``, which a ``VACUUM``
may renumber (``entries`` has no integer primary key): after one, run
``INSERT INTO entries_fts(entries_fts) VALUES('rebuild')``.

PostgreSQL: a GIN expression index on the ``simple`` (no stemming, no stop words) text-search
vector of title and summary, searched with ``plainto_tsquery('simple', <words>)``. PostgreSQL's
parser keeps host names, e-mail addresses, URLs and decimal numbers whole (``example.com`` is one
token there, two words for FTS5 and for the query), so ASCII punctuation is turned into spaces
before parsing: both backends then see the same words.

Both are created by migration 5. FTS5 is compiled into most SQLite builds, not all:
``require_fts5`` refuses to open storage without it rather than search nothing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import Connection, Select, literal_column, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnClause

from aggregator.exceptions import StorageError
from aggregator.storage.queries import LINKED_ENTRIES
from aggregator.storage.schema import story_entries

# Words of one query: a headline-sized search needs a few; the bound keeps a pasted paragraph
# from building a long FTS5 or tsquery expression that every entry is tested against.
MAX_QUERY_WORDS = 8
# Longer "words" are hashes, encoded blobs or junk, not what a reader searches for; PostgreSQL
# would also drop such lexemes from an index (2 KB), so they could not be found reliably anyway.
MAX_WORD_CHARS = 64
# \w minus the underscore: both backends' tokenizers split words on "_" (Unicode connector
# punctuation), so a query word must too or "foo_bar" would mean different things.
_WORD = re.compile(r"[^\W_]+")

FTS_TABLE = "entries_fts"
FTS_TRIGGERS = ("entries_fts_insert", "entries_fts_update", "entries_fts_delete")
# The module name the FTS table is created with (migration 5) and probed for at open.
FTS5_MODULE = "fts5"
PG_SEARCH_INDEX = "ix_entries_search"
# The indexed expression of migration 5, spelt the same here so the planner uses the index.
_PG_DOCUMENT: ColumnClause[Any] = literal_column(
    "to_tsvector('simple', regexp_replace(entries.title || ' ' || entries.summary,"
    " '[[:punct:]]', ' ', 'g'))"
)


def query_words(query: str | None) -> list[str]:
    """The words searched for in ``query`` (see the module docstring), in order, each once.

    NFKC first, as normalisation stored the entries; lower-cased rather than case-folded,
    because both backends fold case themselves and ``casefold`` would turn "straße" into
    "strasse", a word neither finds.
    """
    if not query:
        return []
    words: dict[str, None] = {}
    for match in _WORD.finditer(unicodedata.normalize("NFKC", query)):
        word = match.group().lower()
        if len(word) <= MAX_WORD_CHARS:
            words.setdefault(word)
            if len(words) == MAX_QUERY_WORDS:
                break
    return list(words)


def fts5_query(words: list[str]) -> str:
    """An FTS5 query matching rows that hold every word: each one quoted as a string (a
    quote inside doubled), so no FTS5 operator or column filter is ever read from them."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def matching_story_ids(conn: Connection, words: list[str]) -> Select[Any]:
    """The ids of the stories with at least one entry matching all of ``words``."""
    stories_of = select(story_entries.c.story_id).select_from(LINKED_ENTRIES)
    if conn.dialect.name == "postgresql":
        tsquery = text("plainto_tsquery('simple', :search_words)").bindparams(
            search_words=" ".join(words)
        )
        return stories_of.where(_PG_DOCUMENT.op("@@")(tsquery))
    fts = table(FTS_TABLE)
    found: Select[Any] = (
        select(literal_column(f"{FTS_TABLE}.rowid"))
        .select_from(fts)
        .where(text(f"{FTS_TABLE} MATCH :search_words").bindparams(search_words=fts5_query(words)))
    )
    return stories_of.where(literal_column("entries.rowid").in_(found))


def require_fts5(conn: Connection) -> None:
    """Raise ``StorageError`` when this SQLite library lacks the FTS5 module search needs."""
    probe = "temp.aggregator_fts5_probe"
    try:
        conn.exec_driver_sql(f"CREATE VIRTUAL TABLE {probe} USING {FTS5_MODULE}(body)")
    except DBAPIError as exc:
        raise StorageError(
            f"this SQLite library ({conn.dialect.server_version_info}) lacks the FTS5 module "
            f"that full-text search needs: {exc.orig}. Use a Python whose sqlite3 is built "
            "with FTS5 (most are), or PostgreSQL."
        ) from exc
    conn.exec_driver_sql(f"DROP TABLE {probe}")
