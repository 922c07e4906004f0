"""Statement CSV: fixed columns, kind-specific fields in details, text safely quoted."""

import csv
import io

from server.statement import CSV_COLUMNS, statement_csv


def test_csv_has_fixed_columns_and_quotes_what_needs_it():
    entries = [{"id": "1-0", "kind": "reward", "unit": "coins", "delta": 5, "balance": 5, "ref": "admin:k",
                "reason": 'won "quiz", round 2', "admin": "root", "ts": 1_790_000_000_000}]
    rows = list(csv.reader(io.StringIO(statement_csv(entries))))
    assert tuple(rows[0]) == CSV_COLUMNS
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (row["delta"], row["time"], row["rate_bp"]) == ("5", "2026-09-21T14:13:20.000+00:00", "")
    assert row["details"] == 'admin=root reason=won "quiz", round 2'


def test_an_empty_statement_is_just_the_header():
    assert statement_csv([]) == ",".join(CSV_COLUMNS) + "\r\n"
