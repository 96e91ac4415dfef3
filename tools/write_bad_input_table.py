"""Regenerates the bad-input table of docs/reliability.md (between the section:bad-inputs
markers; nothing else in the file changes) from the rows of tests/test_bad_inputs.py, by running
each row. tests/test_bad_inputs.py::test_docs_table_is_current fails when the table is stale.

    .venv/bin/python tools/write_bad_input_table.py
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import test_bad_inputs as t  # noqa: E402


def main():
    text = t.DOCS.read_text(encoding="utf-8")
    new = t.docs_with_table(text, t.table_markdown())
    if new != text:
        t.DOCS.write_text(new, encoding="utf-8")
    print(f"{t.DOCS}: {len(t.ROWS)} rows{'' if new != text else ' (unchanged)'}")


if __name__ == "__main__":
    main()
