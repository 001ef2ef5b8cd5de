"""docs/architecture.md stays true to the tree: every file it names exists."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("common", "preprocessing", "trainer", "tuning", "cloud", "tests", "bench")


def _named_files(text):
    return set(re.findall(r"`([\w./-]+\.(?:py|md|yaml|txt))`", text))


def test_every_file_architecture_md_names_exists():
    names = _named_files((REPO / "docs" / "architecture.md").read_text())
    assert len(names) > 50  # the table names most modules
    modules = {path.name for package in PACKAGES for path in (REPO / package).rglob("*.py")}
    missing = sorted(
        name for name in names
        # A path is looked up as written; a bare module name in the packages. Bare .md,
        # .yaml and .txt names are outputs of a run (report.md, summary.md).
        if ("/" in name and not (REPO / name).exists()) or ("/" not in name and name.endswith(".py") and name not in modules)
    )
    assert missing == []
