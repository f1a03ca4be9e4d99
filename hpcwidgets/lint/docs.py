"""Print the rule catalogue as Markdown: ``python -m hpcwidgets.lint.docs > docs/rules.md``."""

from __future__ import annotations

import sys

from . import rules_markdown


def main() -> int:
    sys.stdout.write(rules_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
