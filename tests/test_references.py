"""references.bib parses, has no duplicate keys, and holds every key the chapters cite."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "references.bib"


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(), re.M)


def test_bibliography_parses_without_errors():
    from pybtex import errors
    from pybtex.database import parse_file

    errors.set_strict_mode(True)     # a missing brace or a duplicate entry is an error
    try:
        db = parse_file(str(BIB))
    finally:
        errors.set_strict_mode(False)
    assert len(db.entries) == len(bib_keys())


def test_keys_are_unique():
    keys = bib_keys()
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def test_every_citation_is_in_the_bibliography():
    keys = set(bib_keys())
    for page in [*ROOT.glob("chapters/*.md"), ROOT / "intro.md", ROOT / "credits.md"]:
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", page.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites {key.strip()!r}, not in references.bib"
