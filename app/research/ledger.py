"""The privacy-budget ledger: per data set, the (ε, δ) budget and every spend, in one SQLite file.

A data set's budget is fixed the first time it is queried (from settings, or the CLI's ``--budget-epsilon``) and
never raised afterwards by a later setting. A spend is checked and recorded in one ``BEGIN IMMEDIATE`` transaction
*before* the noisy answer is computed, so two concurrent queries cannot both pass the check, and an answer that
fails after its spend is still counted (basic sequential composition: the spends add up). A query past the budget
is refused with :class:`BudgetExhaustedError`, naming what remains.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from app.storage.sqlite_db import enable_wal

_TOLERANCE: Final[float] = 1e-12

SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS budgets (dataset TEXT PRIMARY KEY, epsilon REAL NOT NULL, delta REAL NOT NULL,
                                    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spends (seq INTEGER PRIMARY KEY AUTOINCREMENT, dataset TEXT NOT NULL
                                   REFERENCES budgets(dataset), query TEXT NOT NULL, epsilon REAL NOT NULL,
                                   delta REAL NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Budget:
    dataset: str
    epsilon: float
    delta: float
    spent_epsilon: float
    spent_delta: float
    queries: int

    @property
    def remaining_epsilon(self) -> float:
        return max(self.epsilon - self.spent_epsilon, 0.0)

    @property
    def remaining_delta(self) -> float:
        return max(self.delta - self.spent_delta, 0.0)

    def as_dict(self) -> dict[str, float | int | str]:
        return {"dataset": self.dataset, "epsilon": self.epsilon, "delta": self.delta,
                "spent_epsilon": self.spent_epsilon, "spent_delta": self.spent_delta, "queries": self.queries,
                "remaining_epsilon": self.remaining_epsilon, "remaining_delta": self.remaining_delta}


class BudgetExhaustedError(Exception):
    """The query would spend more than the data set's remaining budget."""

    code = "privacy_budget_exhausted"

    def __init__(self, budget: Budget, epsilon: float, delta: float) -> None:
        super().__init__(
            f"privacy budget of data set {budget.dataset!r} would be exceeded: the query asks epsilon={epsilon:g}, "
            f"delta={delta:g}; remaining epsilon={budget.remaining_epsilon:g}, delta={budget.remaining_delta:g} "
            f"of {budget.epsilon:g}, {budget.delta:g} ({budget.queries} queries answered)")
        self.budget, self.epsilon, self.delta = budget, epsilon, delta


class PrivacyLedger:
    """One SQLite file (``DATA_DIR/privacy.db``); a connection per call, so threads may share the object."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        enable_wal(db)
        return db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _read(db: sqlite3.Connection, dataset: str) -> Budget | None:
        row = db.execute("SELECT epsilon, delta FROM budgets WHERE dataset = ?", (dataset,)).fetchone()
        if row is None:
            return None
        spent = db.execute("SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0), COUNT(*) FROM spends "
                           "WHERE dataset = ?", (dataset,)).fetchone()
        return Budget(dataset, float(row[0]), float(row[1]), float(spent[0]), float(spent[1]), int(spent[2]))

    def budget(self, dataset: str, epsilon: float, delta: float, at: datetime) -> Budget:
        """The data set's budget, created at (``epsilon``, ``delta``) if it has none yet."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO budgets VALUES (?, ?, ?, ?)", (dataset, epsilon, delta, at.isoformat()))
            found = self._read(db, dataset)
        assert found is not None
        return found

    def spend(self, dataset: str, epsilon: float, delta: float, *, query: str, actor: str, at: datetime,
              budget: tuple[float, float]) -> Budget:
        """Record the spend if it fits (the budget after it), else raise :class:`BudgetExhaustedError`."""
        if epsilon < 0 or delta < 0:
            raise ValueError("a spend is never negative")
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR IGNORE INTO budgets VALUES (?, ?, ?, ?)", (dataset, *budget, at.isoformat()))
            current = self._read(db, dataset)
            assert current is not None
            if (current.spent_epsilon + epsilon > current.epsilon + _TOLERANCE
                    or current.spent_delta + delta > current.delta + _TOLERANCE):
                db.execute("ROLLBACK")
                raise BudgetExhaustedError(current, epsilon, delta)
            db.execute("INSERT INTO spends (dataset, query, epsilon, delta, actor, at) VALUES (?, ?, ?, ?, ?, ?)",
                       (dataset, query, epsilon, delta, actor, at.isoformat()))
            after = self._read(db, dataset)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        assert after is not None
        return after

    def spends(self, dataset: str) -> list[dict[str, object]]:
        with self._db() as db:
            rows = db.execute("SELECT seq, query, epsilon, delta, actor, at FROM spends WHERE dataset = ? "
                              "ORDER BY seq", (dataset,)).fetchall()
        return [dict(zip(("seq", "query", "epsilon", "delta", "actor", "at"), r, strict=True)) for r in rows]


__all__ = ["Budget", "BudgetExhaustedError", "PrivacyLedger"]
