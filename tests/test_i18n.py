"""The Simplified Chinese catalog: complete, its placeholders intact, and the pages really speak it
(by the browser's Accept-Language, and by the language switch in the header)."""

from __future__ import annotations

import os
import re
import tempfile

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.conftest import REPO, login

# zh_Hans_CN, not zh_CN: Flask-Babel parses the selected "zh_CN" into Locale zh_Hans_CN and gettext looks
# for a directory of that name (then "zh"); a zh_CN directory would never be read.
CATALOG_DIR = REPO / "publisher" / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
PO = CATALOG_DIR / "messages.po"
MO = CATALOG_DIR / "messages.mo"

# What a translation must carry over unchanged from its msgid.
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[#0\- +]*\d*(?:\.\d+)?[sdifrx]|%[sdifr]|\{[A-Za-z0-9_.\[\]]*\}")
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
URL = re.compile(r"https?://[^\s)\"'<>，。；]*[^\s)\"'<>，。；.,;]")
HEADER = re.compile(r"\b(?:[A-Z][A-Za-z]*(?:-[A-Z][A-Za-z0-9]*)+|Authorization: Bearer)\b")
MARKDOWN = re.compile(r"\*\*|\]\(")


def _catalog():
    with PO.open("rb") as f:
        return read_po(f, locale="zh_CN")


def _ensure_compiled() -> None:
    """Compile the .po when the .mo is missing or older, as `make` does, so a fresh clone passes."""
    if MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime:
        return
    catalog = _catalog()
    fd, tmp = tempfile.mkstemp(dir=CATALOG_DIR, suffix=".mo.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_mo(f, catalog)  # fuzzy entries are left out, as by `pybabel compile`
        os.chmod(tmp, 0o644)
        os.replace(tmp, MO)  # atomic: another process never reads half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # Flask-Babel caches the loaded translations in the process-wide Babel object: an earlier test
    # may have loaded zh_CN while the .mo was missing. Forget that, so the next request reads the .mo.
    # (domain_instance is a cached property: only clear it if it was ever computed.)
    from publisher.extensions import babel

    if "domain_instance" in vars(babel):
        babel.domain_instance.cache.clear()


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    _ensure_compiled()


def _entries():
    return [m for m in _catalog() if m.id]


def _ids(message) -> list[str]:
    return list(message.id) if isinstance(message.id, (tuple, list)) else [message.id]


def _strings(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (tuple, list)) else [message.string]


def _label(message) -> str:
    return _ids(message)[0][:60]


# --- (a) complete ---------------------------------------------------------------------------------

def test_catalog_is_complete_and_has_no_fuzzy_entry():
    catalog = _catalog()
    entries = _entries()
    assert len(entries) > 300  # the whole catalog was read, not an empty or truncated file
    assert catalog.num_plurals == 1  # Chinese has one plural form
    untranslated = [_label(m) for m in entries if not all(s.strip() for s in _strings(m))]
    fuzzy = [_label(m) for m in entries if m.fuzzy]
    assert untranslated == []
    assert fuzzy == []
    assert not catalog.fuzzy  # the header itself is not marked fuzzy (msgfmt would skip the catalog)


def test_catalog_matches_the_template():
    """Every message of messages.pot is in the Chinese catalog (run `make translations-update`)."""
    with (REPO / "publisher" / "translations" / "messages.pot").open("rb") as f:
        template = read_po(f)
    wanted = {m.id if isinstance(m.id, str) else tuple(m.id) for m in template if m.id}
    have = {m.id if isinstance(m.id, str) else tuple(m.id) for m in _entries()}
    assert sorted(map(str, wanted - have)) == []


# --- (b) placeholders and markup intact ----------------------------------------------------------

@pytest.mark.parametrize("pattern", [PLACEHOLDER, HTML_TAG, URL, HEADER, MARKDOWN],
                         ids=["placeholders", "html", "urls", "headers", "markdown"])
def test_translations_keep_what_the_code_needs(pattern):
    problems = []
    for message in _entries():
        needed: list[str] = []
        for msgid in _ids(message):
            for token in pattern.findall(msgid):
                if token not in needed:
                    needed.append(token)
        for msgstr in _strings(message):
            missing = [t for t in needed if t not in msgstr]
            if missing:
                problems.append((_label(message), missing))
            if pattern is PLACEHOLDER:  # a placeholder the code does not pass would raise KeyError
                extra = [t for t in pattern.findall(msgstr) if t not in needed]
                if extra:
                    problems.append((_label(message), extra))
    assert problems == []


def test_python_format_strings_can_be_filled():
    """What gettext will do at run time: fill each translation with the msgid's variables."""
    problems = []
    for message in _entries():
        names = set(re.findall(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(_ids(message))))
        if not names:
            continue
        values = {name: 1 for name in names}
        for msgstr in _strings(message):
            try:
                msgstr % values
            except (KeyError, ValueError, TypeError) as exc:
                problems.append((_label(message), repr(exc)))
    assert problems == []
    assert list(_catalog().check()) == []  # Babel's own checks (format compatibility, plural forms)


# --- (c) pages speak Chinese when asked, English otherwise ---------------------------------------

def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_login_page_in_chinese(client):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9,en;q=0.5"
    html = _text(client.get("/login"))
    assert '<html lang="zh-CN">' in html
    assert "登录" in html and "密码" in html and "保持登录" in html
    assert "Log in" not in html and "Password" not in html


def test_login_page_in_english(client):
    html = _text(client.get("/login"))
    assert '<html lang="en">' in html
    assert "Log in" in html and "Password" in html
    assert "登录" not in html


def test_pages_after_login_in_chinese(client, users):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    assert login(client, "admin@example.com").status_code == 302

    items = _text(client.get("/"))
    for label in ("内容", "新建内容", "还没有内容。", "日历", "渠道", "归档", "退出登录", "管理员"):
        assert label in items, label
    for english in ("New item", "No items yet.", "Log out"):
        assert english not in items, english

    channels = _text(client.get("/channels"))
    for label in ("<h1>渠道</h1>", "新建渠道", "还没有设置任何渠道。"):
        assert label in channels, label
    assert "New channel" not in channels and "No channel is set up yet." not in channels


def test_pages_after_login_in_english(client, users):
    assert login(client, "admin@example.com").status_code == 302

    items = _text(client.get("/"))
    for label in ("Items", "New item", "No items yet.", "Calendar", "Log out", "Admin"):
        assert label in items, label
    assert "新建内容" not in items

    channels = _text(client.get("/channels"))
    for label in ("<h1>Channels</h1>", "New channel", "No channel is set up yet."):
        assert label in channels, label
    assert "新建渠道" not in channels


def test_flash_messages_and_form_errors_in_chinese(client, users):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    wrong = client.post("/login", data={"email": "admin@example.com", "password": "not-the-password"})
    assert wrong.status_code == 401
    assert "邮箱或密码错误。" in wrong.get_data(as_text=True)

    assert login(client, "admin@example.com").status_code == 302
    client.post("/logout")
    assert "你已退出登录。" in _text(client.get("/login"))


# --- (d) the language switch wins over the browser's language -------------------------------------

def test_language_switch_changes_the_next_page(client, users):
    assert login(client, "editor@example.com").status_code == 302  # the client asks for English
    assert "New item" in _text(client.get("/"))

    switched = client.post("/language/zh_CN", data={"next": "/channels"})
    assert switched.status_code == 302 and switched.headers["Location"].endswith("/channels")
    html = _text(client.get("/channels"))
    assert '<html lang="zh-CN">' in html and "<h1>渠道</h1>" in html
    assert "新建内容" in _text(client.get("/"))

    back = client.post("/language/en", data={"next": "/"})
    assert back.status_code == 302
    html = _text(client.get("/"))
    assert '<html lang="en">' in html and "New item" in html and "新建内容" not in html


def test_language_switch_before_login(client):
    client.post("/language/zh_CN", data={"next": "/login"})
    assert "保持登录" in _text(client.get("/login"))
    client.post("/language/en", data={"next": "/login"})
    assert "Keep me logged in" in _text(client.get("/login"))


def test_unknown_language_is_ignored(client):
    client.post("/language/fr", data={"next": "/login"})
    html = _text(client.get("/login"))
    assert '<html lang="en">' in html and "Log in" in html


def test_mo_file_is_compiled_from_the_po():
    """The fixture above compiled the catalog if needed; `make` and this test produce the same file."""
    assert MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime
    assert MO.stat().st_size > 1000


def test_the_item_list_shows_statuses_formats_and_origins_in_the_reader_language(client, users):
    from tests.factories import make_item

    make_item(title="A draft", format="event", origin="ugc")
    make_item(title="Another", status="published")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    assert login(client, "admin@example.com").status_code == 302
    items = _text(client.get("/"))
    for label in ("草稿", "已发布"):
        assert label in items, label
    assert ">Draft<" not in items and ">Published<" not in items
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    items = _text(client.get("/"))
    assert ">Draft<" in items and ">Published<" in items and "草稿" not in items
