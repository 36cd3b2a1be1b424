"""Runs DDL on the modern ClickHouse engine (chdb, in-process), inserts RowBinary bytes produced by Weir,
and prints the rows read back as JSON lines. Used by the Rust tests that prove Weir's schema and bytes.

usage: chdb_roundtrip.py DDL_FILE INSERT_SQL DATA_FILE SELECT_SQL [REPEAT TOKEN]
DDL_FILE holds statements separated by lines of ';'. INSERT_SQL is `INSERT INTO t (cols)`; the data is
read with FORMAT RowBinary, REPEAT times (default 1) with `insert_deduplication_token` TOKEN if given,
as a retrying exporter would send it. SELECT_SQL's rows are printed as JSONEachRow.
"""

import sys
import tempfile

from chdb import session


def main() -> None:
    ddl_file, insert_sql, data_file, select_sql = sys.argv[1:5]
    repeat = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    token = sys.argv[6] if len(sys.argv) > 6 else None
    with tempfile.TemporaryDirectory() as path:
        s = session.Session(path)
        try:
            for stmt in open(ddl_file).read().split("\n;\n"):
                if stmt.strip():
                    s.query(stmt)
            settings = f" SETTINGS insert_deduplication_token = '{token}'" if token else ""
            for _ in range(repeat):
                s.query(f"{insert_sql} FROM INFILE '{data_file}'{settings} FORMAT RowBinary")
            out = s.query(select_sql, "JSONEachRow")
            sys.stdout.write(out.bytes().decode() if hasattr(out, "bytes") else str(out))
        finally:
            s.close()


if __name__ == "__main__":
    main()
