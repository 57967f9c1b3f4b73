"""The Microscope catalog: one SQLite database per built folder.

Tables: ``meta`` (model and build settings), ``layers`` (name, output shape, channels, the
units chosen, the layer's DeepDream), ``units`` (layer, channel, status, files by kind,
figures, the run records of its images). Every write is one transaction, made after the
files it names were written (atomically), so a build killed at any moment -- SIGKILL
included -- leaves a consistent catalog that names only whole files.

A distributed build gives each rank a database of its own (``parts/rank-R.sqlite``, ranks
never write the same file); rank 0 merges them into ``catalog.sqlite`` at the end, and a
rerun counts what any of them holds as done.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError

CATALOG = "catalog.sqlite"
PARTS = "parts"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    name TEXT PRIMARY KEY, position INTEGER, shape TEXT, channels INTEGER, units TEXT, dream TEXT, record TEXT
);
CREATE TABLE IF NOT EXISTS units (
    layer TEXT NOT NULL, channel INTEGER NOT NULL, status TEXT NOT NULL, files TEXT, figures TEXT, records TEXT,
    rank INTEGER, PRIMARY KEY (layer, channel)
);
"""


class Catalog:
    """A catalog database (see the module's docstring)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:  # other processes may be writing their own: change nothing, wait for locks
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db:  # commits on success, rolls back on an error
            yield self.db

    # -- meta --------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def check_model(self, model: str) -> None:
        """Refuse a folder built for another model."""
        old = self.meta()
        if old and old.get("model") != model:
            raise FeatvizError(f"{self.path.parent} was built for {old.get('model')}, not {model}: use another folder")

    def check_or_set_meta(self, values: dict[str, Any]) -> None:
        """Set the build's meta on a new catalog; on an old one, refuse another model."""
        self.check_model(values["model"])
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    # -- layers and units ----------------------------------------------------------------------
    def put_layer(self, name: str, position: int, shape: list[int], units: list[int], **extra: Any) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT dream, record FROM layers WHERE name = ?", (name,)).fetchone()
            dream = extra.get("dream", row[0] if row else None)
            record = json.dumps(extra["record"]) if "record" in extra else (row[1] if row else None)
            db.execute(
                "INSERT OR REPLACE INTO layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, position, json.dumps(shape), shape[0] if shape else 0, json.dumps(units), dream, record),
            )

    def layers(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT name, position, shape, channels, units, dream, record FROM layers ORDER BY position"
        )
        return [
            {
                "name": n,
                "position": p,
                "shape": json.loads(s),
                "channels": c,
                "units": json.loads(u),
                "dream": d,
                "record": json.loads(r) if r else None,
            }
            for n, p, s, c, u, d, r in rows
        ]

    def put_units(self, rows: list[dict[str, Any]], rank: int = 0) -> None:
        """Mark units done with their files, figures and records, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO units VALUES (?, ?, 'done', ?, ?, ?, ?)",
                [
                    (
                        r["layer"],
                        r["channel"],
                        json.dumps(r["files"]),
                        json.dumps(r["figures"]),
                        json.dumps(r["records"]),
                        rank,
                    )
                    for r in rows
                ],
            )

    def done(self) -> set[tuple[str, int]]:
        return {(layer, c) for layer, c in self.db.execute("SELECT layer, channel FROM units WHERE status = 'done'")}

    def units(self, layer: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT layer, channel, status, files, figures, records FROM units"
        rows = self.db.execute(
            query + (" WHERE layer = ? ORDER BY channel" if layer else " ORDER BY layer, channel"),
            (layer,) if layer else (),
        )
        return [
            {
                "layer": l,
                "channel": c,
                "status": s,
                "files": json.loads(f),
                "figures": json.loads(g),
                "records": json.loads(r),
            }
            for l, c, s, f, g, r in rows
        ]

    def merge(self, other: Catalog) -> int:
        """Copy the layers and the finished units of ``other`` into this catalog; returns units."""
        rows = other.db.execute("SELECT * FROM units WHERE status = 'done'").fetchall()
        layers = other.db.execute("SELECT * FROM layers").fetchall()
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            for row in layers:
                old = db.execute("SELECT dream FROM layers WHERE name = ?", (row[0],)).fetchone()
                if old is None or row[5] is not None:
                    db.execute("INSERT OR REPLACE INTO layers VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        return len(rows)

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])


def require(out: str | Path) -> Path:
    """The catalog of the Microscope folder ``out``, or one clear error when it has none."""
    path = Path(out) / CATALOG
    if not path.is_file():
        raise FeatvizError(f"{out} holds no {CATALOG}: build it first (featviz microscope build MODEL --out {out})")
    return path


def part_path(out: str | Path, rank: int) -> Path:
    return Path(out) / PARTS / f"rank-{rank}.sqlite"


def all_done(out: str | Path) -> set[tuple[str, int]]:
    """Units finished in the catalog or any rank's part."""
    done: set[tuple[str, int]] = set()
    for path in [Path(out) / CATALOG, *sorted((Path(out) / PARTS).glob("rank-*.sqlite"))]:
        if path.exists():
            cat = Catalog(path, readonly=True)
            try:
                done |= cat.done()
            except sqlite3.OperationalError:  # a part created but not yet given its tables
                pass
            cat.close()
    return done
