"""A stand-in for api.weibo.com's 2/statuses/share.json that checks what Weibo checks.

It reads the form (URL-encoded, or multipart when a `pic` comes along), refuses a wrong token
with 21332, a text over 140 Chinese characters with 20012, a text without a link on the app's
safe domain with 10017, a second identical text with 20019, and a `pic` over 5 MB or of another
type than JPEG/GIF/PNG. A scripted Answer replaces the success answer.
"""

from __future__ import annotations

import itertools
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl, urlsplit

from channels.text import URL, count
from tests.doubles import Answer, Double, Recorded

PATH = "/2/statuses/share.json"


def weibo_error(code: int, error: str, status: int = 400) -> Answer:
    return Answer(status, {"request": PATH, "error_code": code, "error": error})


def parse_form(rec: Recorded) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """The text fields and the files (name -> (filename, content type, bytes)) of a POST."""
    ctype = rec.headers.get("Content-Type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(rec.body.decode(), keep_blank_values=True)), {}
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + rec.body)
        fields, files = {}, {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data = part.get_payload(decode=True) or b""
            if filename is None:
                fields[name] = data.decode()
            else:
                files[name] = (filename, part.get_content_type(), data)
        return fields, files
    return {}, {}


class WeiboDouble(Double):
    def __init__(self, token: str, safe_domain: str = "news.example.cn", **kwargs):
        kwargs.setdefault("default", Answer(200, b""))  # an empty 200 answer means "accept it"
        super().__init__(**kwargs)
        self.token = token
        self.safe_domain = safe_domain
        self.posted: list[dict] = []  # the statuses Weibo accepted
        self.ids = itertools.count(5000000000000001)

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        if rec.method != "POST" or urlsplit(rec.path).path != PATH:
            return weibo_error(10020, "Request api not found!", 404)
        fields, files = parse_form(rec)
        if not fields.get("access_token"):
            return weibo_error(21301, "auth faild!", 403)
        if fields["access_token"] != self.token:
            return weibo_error(21332, "invalid_access_token", 403)
        status = fields.get("status")
        if not status:
            return weibo_error(10016, "Miss required parameter (status) , see doc for more info.")
        if count(status, "weibo") > 140:
            return weibo_error(20012, "Text too long, please input text less than 140 characters!")
        if not any(urlsplit(u).hostname and (urlsplit(u).hostname == self.safe_domain
                                            or urlsplit(u).hostname.endswith("." + self.safe_domain))
                   for u in URL.findall(status)):
            return weibo_error(10017, "appkey not bind domain!")
        if set(files) - {"pic"}:
            return weibo_error(10017, "Parameter (pic)'s value invalid")
        if "pic" in files:
            _, ctype, data = files["pic"]
            if len(data) >= 5 * 1024 * 1024:
                return weibo_error(10018, "Request body length over limit")
            if ctype not in ("image/jpeg", "image/gif", "image/png"):
                return weibo_error(10007, f"Unsupport mediatype ({ctype})")
        answer = self.next_answer()
        if answer.status != 200 or answer.body:
            return answer
        if any(p["text"] == status for p in self.posted):
            return weibo_error(20019, "Repeat content!")
        mid = str(next(self.ids))
        body = {"created_at": "Wed Oct 24 23:49:17 +0800 2012", "id": int(mid), "mid": mid, "idstr": mid,
                "text": status, "user": {"id": 1904178193, "idstr": "1904178193", "screen_name": "社群"}}
        if "pic" in files:
            body["original_pic"] = "http://ww2.sinaimg.cn/large/abc.jpg"
        with self.lock:
            self.posted.append(body)
        return Answer(200, body, delay=answer.delay)
