"""The ingest report: what was wrong with an upload, and what cleaning did to it.

Every problem names the file, the row, the column and the reason. Rows are
counted from 1 over the data rows; for CSV, TSV and JSON Lines the report also
gives the line of the file, so a user can go straight to it in an editor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_EXAMPLES = 5


@dataclass
class Problem:
    """One thing wrong with an upload. `row` is None for file-level problems."""

    file: str
    reason: str
    column: str | None = None
    row: int | None = None
    line: int | None = None
    value: str | None = None

    def message(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        value = f" (value {self.value!r})" if self.value is not None else ""
        return f"{', '.join(where)}: {self.reason}{value}"


@dataclass
class RuleResult:
    """What one cleaning rule did: how many rows it dropped or changed, with examples."""

    rule: str
    description: str
    action: str  # "dropped", "changed" or "merged"
    rows: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IngestReport:
    file: str
    kind: str
    rows_in: int = 0
    rows_out: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0  # all problems found; `problems` keeps the first few per column
    cleaning: list[RuleResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What `recsys.privacy.protect` did: customer ids pseudonymised, personal data masked.
    privacy: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add_problem(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.problem_count += 1

    def message(self) -> str:
        """A short text for a terminal or an error box."""
        if self.ok:
            dropped = sum(r.rows for r in self.cleaning if r.action == "dropped")
            text = (f"{self.file}: {self.rows_in:,} rows read, {self.rows_out:,} kept "
                    f"as {self.kind}, {dropped:,} dropped by cleaning.")
            privacy = self.privacy_summary()
            return f"{text} {privacy}." if privacy else text
        lines = [f"{self.file}: rejected, {self.problem_count:,} problem(s); nothing was stored."]
        lines += [f"  - {p.message()}" for p in self.problems[:20]]
        if self.problem_count > 20:
            lines.append(f"  ... and {self.problem_count - 20:,} more.")
        return "\n".join(lines)

    def privacy_summary(self) -> str:
        """E.g. "4,372 customer ids pseudonymised; masked in query: 2 email, 1 phone"."""
        parts = [f"{done['customers']:,} customer ids pseudonymised"
                 for done in self.privacy.get("pseudonymised", {}).values()]
        for column, done in self.privacy.get("masked", {}).items():
            if done["kinds"]:
                kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(done["kinds"].items()))
                parts.append(f"masked in {column}: {kinds}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestReport:
        data = {k: v for k, v in data.items() if k != "ok"}
        return cls(
            **{**data,
               "problems": [Problem(**p) for p in data.get("problems", [])],
               "cleaning": [RuleResult(**r) for r in data.get("cleaning", [])]}
        )


class IngestError(Exception):
    """An upload that cannot be stored; carries the report that says why."""

    def __init__(self, report: IngestReport):
        super().__init__(report.message())
        self.report = report
