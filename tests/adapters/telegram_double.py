"""A stand-in for the Telegram Bot API: checks the token in the path, the chat, and that MarkdownV2
text parses, the way the real service does, and answers in its JSON shape.

The MarkdownV2 checker here is written independently of the adapter's escaping, from the rules in
the Bot API's "Formatting options": outside entities every character of _*[]()~`>#+-=|{}.! must
be escaped; inside code/pre only ` and \\ (and they must be); inside a link's (...) ) and \\.
"""

from __future__ import annotations

import json
import re
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO
from urllib.parse import parse_qsl

from PIL import Image

from tests.doubles import Answer, Double, Recorded

RESERVED = set("_*[]()~`>#+-=|{}.!")


class EntityError(ValueError):
    pass


def parse_markdown_v2(text: str) -> str:
    """The visible text of a MarkdownV2 message, or EntityError with Telegram's wording."""
    out: list[str] = []
    open_: list[str] = []  # open entity markers: * _ __ ~ || [
    i, n = 0, len(text)
    at_line_start = True

    def byte_offset(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    while i < n:
        ch = text[i]
        start_of_line, at_line_start = at_line_start, False
        if ch == "\\":
            if i + 1 >= n or not (1 <= ord(text[i + 1]) <= 126):
                raise EntityError("Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "`" and open_:  # formatting entities may not contain code or pre (Bot API docs)
            raise EntityError(f"Can't find end of {_name(open_[-1])} entity at byte offset {byte_offset(i)}")
        if text.startswith("```", i):
            j = i + 3
            newline = text.find("\n", j)
            if newline >= 0 and re.fullmatch(r"[A-Za-z0-9+#_-]*", text[j:newline]):
                j = newline + 1
            while True:
                if j >= n:
                    raise EntityError(f"Can't find end of Pre entity at byte offset {byte_offset(i)}")
                if text.startswith("```", j):
                    break
                if text[j] == "\\":
                    if j + 1 >= n:
                        raise EntityError(f"Can't find end of Pre entity at byte offset {byte_offset(i)}")
                    j += 1
                elif text[j] == "`":
                    raise EntityError("Character '`' is reserved and must be escaped with the preceding '\\'")
                out.append(text[j])
                j += 1
            i = j + 3
            continue
        if ch == "`":
            j = i + 1
            while True:
                if j >= n:
                    raise EntityError(f"Can't find end of Code entity at byte offset {byte_offset(i)}")
                if text[j] == "`":
                    break
                if text[j] == "\\":
                    if j + 1 >= n:
                        raise EntityError(f"Can't find end of Code entity at byte offset {byte_offset(i)}")
                    j += 1
                out.append(text[j])
                j += 1
            i = j + 1
            continue
        if ch == ">" and start_of_line:
            i += 1
            continue
        if ch == "[":
            if "[" in open_:
                raise EntityError("Character '[' is reserved and must be escaped with the preceding '\\'")
            open_.append("[")
            i += 1
            continue
        if ch == "]":
            if not open_ or open_[-1] != "[":
                raise EntityError("Character ']' is reserved and must be escaped with the preceding '\\'")
            if not text.startswith("(", i + 1):
                raise EntityError("Character ']' is reserved and must be escaped with the preceding '\\'")
            j = i + 2
            url: list[str] = []
            while True:
                if j >= n:
                    raise EntityError(f"Can't find end of a URL at byte offset {byte_offset(i + 1)}")
                if text[j] == ")":
                    break
                if text[j] == "\\":
                    j += 1
                url.append(text[j] if j < n else "")
                j += 1
            open_.pop()
            i = j + 1
            continue
        marker = None
        if text.startswith("||", i):
            marker = "||"
        elif text.startswith("__", i):
            marker = "__"
        elif ch in "*_~":
            marker = ch
        if marker:
            if open_ and open_[-1] == marker:
                open_.pop()
            elif marker in open_:
                raise EntityError(f"Can't find end of {_name(open_[-1])} entity at byte offset {byte_offset(i)}")
            else:
                open_.append(marker)
            i += len(marker)
            continue
        if ch in RESERVED:
            raise EntityError(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        out.append(ch)
        at_line_start = ch == "\n"
        i += 1
    if open_:
        raise EntityError(f"Can't find end of {_name(open_[-1])} entity at byte offset {n}")
    return "".join(out)


def _name(marker: str) -> str:
    return {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler",
            "[": "TextUrl"}.get(marker, "entity")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def multipart(rec: Recorded) -> tuple[dict[str, str], dict[str, bytes]]:
    head = f"Content-Type: {rec.headers.get('Content-Type', '')}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + rec.body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            fields[name] = data.decode("utf-8")
    return fields, files


def error(code: int, description: str, **parameters) -> Answer:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(code, body)


class TelegramDouble(Double):
    def __init__(self, token: str, chats: dict[str, dict], **kwargs):
        super().__init__(**kwargs)
        self.token = token
        self.chats = chats  # chat_id as sent -> the Chat object the API returns
        self.next_id = 100
        self.sent: list[dict] = []  # what was posted: method, chat, text or caption (visible), photos

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", rec.path.split("?")[0])
        if not match:
            return error(404, "Not Found")
        if match.group(1) != self.token:
            return error(401, "Unauthorized")
        method = match.group(2)
        if self.script:  # a scripted answer stands for whatever the service says next
            return self.next_answer()
        content_type = rec.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            fields, files = rec.json(), {}
        elif content_type.startswith("multipart/form-data"):
            fields, files = multipart(rec)
        else:
            fields, files = dict(parse_qsl(rec.body.decode())), {}
        chat = self.chats.get(str(fields.get("chat_id", "")))
        if not fields.get("chat_id"):
            return error(400, "Bad Request: chat_id is empty")
        if chat is None:
            return error(400, "Bad Request: chat not found")
        if method == "sendMessage":
            return self._send_message(chat, fields)
        if method == "sendPhoto":
            return self._send_photos(chat, fields, [("photo", fields.get("caption", ""), fields.get("parse_mode"))],
                                     files, group=False)
        if method == "sendMediaGroup":
            try:
                media = json.loads(fields.get("media") or "")
            except ValueError:
                return error(400, "Bad Request: can't parse media JSON object")
            if not 2 <= len(media) <= 10:
                return error(400, "Bad Request: wrong number of media specified")
            items = []
            for m in media:
                ref = str(m.get("media", ""))
                if not ref.startswith("attach://"):
                    return error(400, "Bad Request: wrong remote file identifier specified")
                items.append((ref[len("attach://"):], m.get("caption", ""), m.get("parse_mode")))
            return self._send_photos(chat, fields, items, files, group=True)
        return error(404, "Not Found")

    def _parse(self, text: str, parse_mode: str | None) -> str:
        if parse_mode == "MarkdownV2":
            return parse_markdown_v2(text)
        if parse_mode:
            raise EntityError(f"Unsupported parse_mode {parse_mode}")
        return text

    def _message(self, chat: dict, **content) -> dict:
        with self.lock:
            self.next_id += 1
            return {"message_id": self.next_id, "chat": chat, "date": 1700000000, **content}

    def _send_message(self, chat: dict, fields: dict) -> Answer:
        try:
            text = self._parse(fields.get("text") or "", fields.get("parse_mode"))
        except EntityError as exc:
            return error(400, f"Bad Request: can't parse entities: {exc}")
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if utf16(text) > 4096:
            return error(400, "Bad Request: message is too long")
        message = self._message(chat, text=text)
        self.sent.append({"method": "sendMessage", "chat": chat, "text": text, "fields": fields})
        return Answer(200, {"ok": True, "result": message})

    def _send_photos(self, chat: dict, fields: dict, items, files: dict[str, bytes], *, group: bool) -> Answer:
        results, captions, photos = [], [], []
        for name, caption, parse_mode in items:
            data = files.get(name)
            if data is None:
                return error(400, "Bad Request: there is no photo in the request")
            try:
                Image.open(BytesIO(data)).verify()
            except Exception:
                return error(400, "Bad Request: IMAGE_PROCESS_FAILED")
            try:
                visible = self._parse(caption or "", parse_mode)
            except EntityError as exc:
                return error(400, f"Bad Request: can't parse entities: {exc}")
            if utf16(visible) > 1024:
                return error(400, "Bad Request: message caption is too long")
            captions.append(visible)
            photos.append(data)
            results.append(self._message(chat, photo=[{"file_id": f"file-{name}", "width": 1, "height": 1}],
                                         **({"caption": visible} if visible else {})))
        self.sent.append({"method": "sendMediaGroup" if group else "sendPhoto", "chat": chat,
                          "captions": captions, "photos": photos, "fields": fields})
        return Answer(200, {"ok": True, "result": results if group else results[0]})
