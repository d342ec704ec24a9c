"""calendar/ must never become a Python package: it would shadow the standard library's
`calendar`, which requests, email and dateutil import (see docs/architecture.md)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_calendar_folder_holds_no_python():
    calendar = REPO / "calendar"
    assert calendar.is_dir()
    assert not (calendar / "__init__.py").exists()
    offenders = [p for p in calendar.rglob("*.py") if "node_modules" not in p.parts]
    assert offenders == []
    # Folders that end up on sys.path (the repo root, and tests/ under pytest) must not hold one either.
    assert not (REPO / "calendar.py").exists() and not (REPO / "tests" / "calendar.py").exists()


def test_stdlib_calendar_is_the_one_imported():
    import calendar

    import requests  # noqa: F401  (imports http.cookiejar, which imports calendar)

    assert hasattr(calendar, "monthrange")
    assert "site-packages" not in calendar.__file__ and str(REPO) not in calendar.__file__
