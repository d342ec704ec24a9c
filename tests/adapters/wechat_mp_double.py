"""A stand-in for the WeChat Official Account API (api.weixin.qq.com), answering like WeChat does:
errors as {"errcode", "errmsg"} with HTTP 200, an access token on every call checked for validity
and expiry (40001 / 42001), uploads checked for the multipart field `media`, the file type and
size, drafts checked for WeChat's field limits, and publishing as an asynchronous job whose
publish_status follows a script."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import urlsplit

from tests.doubles import Answer, Double, Recorded

UPLOADIMG_MAX = 1024 * 1024  # "under 1 MB", JPG/PNG
MATERIAL_IMAGE_MAX = 10 * 1024 * 1024  # permanent image material: 10 MB, bmp/png/jpeg/jpg/gif


def ok(**fields) -> dict:
    return {"errcode": 0, "errmsg": "ok", **fields}


def error(code: int, msg: str) -> Answer:
    return Answer(200, {"errcode": code, "errmsg": f"{msg} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"})


def image_kind(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    return None


def multipart_files(rec: Recorded) -> dict[str, tuple[str | None, bytes]]:
    """Form field name -> (filename, bytes) of a multipart/form-data body."""
    ctype = rec.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data"):
        return {}
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + rec.body)
    files = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            files[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return files


class WechatMPDouble(Double):
    TOKEN_PREFIX = "WXTOKEN-"

    def __init__(self, appid: str = "wx1234567890abcdef", secret: str = "0123456789abcdef0123456789abcdef",
                 token_ttl: int = 7200):
        super().__init__(default=Answer(404, "not found"))
        # answer without Nagle's delay (headers and body are written separately): ~40 ms less per call
        self.server.RequestHandlerClass.disable_nagle_algorithm = True
        self.appid, self.secret, self.token_ttl = appid, secret, token_ttl
        self.reset()

    def reset(self) -> None:
        """Forget everything: a fresh account, for the next test."""
        with self.lock:
            self.requests = []
            self.script.clear()
        self.tokens: dict[str, float] = {}  # access_token -> expiry (time.time())
        self.token_calls = 0
        self.ip_allowed = True
        self.expire_on_use = 0  # the next N authenticated calls find their token expired
        self.scripts: dict[str, deque[Answer]] = {}
        self.statuses: deque[int] = deque()  # publish_status answers; afterwards 0
        self.images: dict[str, bytes] = {}  # uploadimg URL -> bytes
        self.materials: dict[str, bytes] = {}  # permanent media_id -> bytes
        self.drafts: dict[str, dict] = {}
        self.published: dict[str, dict] = {}  # publish_id -> draft
        self.files: dict[str, tuple[bytes, str]] = {}  # GET path -> (bytes, content type): pictures to download
        self._ids = itertools.count(2247483647)

    # --- scripting ----------------------------------------------------------------------------

    def on(self, endpoint: str, *answers: Answer) -> WechatMPDouble:
        """Answer the next calls to `endpoint` (e.g. "draft/add", "token") with these, before any check."""
        self.scripts.setdefault(endpoint, deque()).extend(answers)
        return self

    def publish_statuses(self, *statuses: int) -> WechatMPDouble:
        self.statuses.extend(statuses)
        return self

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def calls(self, endpoint: str) -> list[Recorded]:
        return [r for r in self.requests if _endpoint(r) == endpoint]

    # --- answering ----------------------------------------------------------------------------

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        path = urlsplit(rec.path).path
        if rec.method == "GET" and path in self.files:
            data, ctype = self.files[path]
            return Answer(200, data, {"Content-Type": ctype})
        if not path.startswith("/cgi-bin/"):
            return Answer(404, "not found")
        endpoint = _endpoint(rec)
        with self.lock:
            script = self.scripts.get(endpoint)
            if script:
                return script.popleft()
        if endpoint == "token":
            return self._token(rec)
        if not self.ip_allowed:
            return error(40164, "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist")
        denied = self._check_token(rec)
        if denied:
            return denied
        handler = {
            "media/uploadimg": self._uploadimg, "material/add_material": self._add_material,
            "draft/add": self._draft_add, "freepublish/submit": self._submit, "freepublish/get": self._get,
        }.get(endpoint)
        if handler is None:
            return Answer(404, "not found")
        if rec.method != "POST":
            return error(43002, "require POST method")
        return handler(rec)

    def _token(self, rec: Recorded) -> Answer:
        if rec.method != "GET":
            return error(43001, "require GET method")
        q = rec.query
        if q.get("grant_type") != "client_credential":
            return error(40002, "invalid grant_type")
        if q.get("appid") != self.appid:
            return error(40013, "invalid appid")
        if not self.ip_allowed:
            return error(40164, "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist")
        if q.get("secret") != self.secret:
            return error(40125, "invalid appsecret")
        token = self.TOKEN_PREFIX + secrets.token_urlsafe(48)
        with self.lock:
            self.token_calls += 1
            self.tokens[token] = time.time() + self.token_ttl
        return Answer(200, {"access_token": token, "expires_in": self.token_ttl})

    def _check_token(self, rec: Recorded) -> Answer | None:
        token = rec.query.get("access_token")
        if not token:
            return error(41001, "access_token missing")
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is not None and self.expire_on_use > 0:
                self.expire_on_use -= 1
                self.tokens[token] = expiry = 0.0
        if expiry is None:
            return error(40001, "invalid credential, access_token is invalid or not latest")
        if expiry <= time.time():
            return error(42001, "access_token expired")
        return None

    def _media(self, rec: Recorded, max_bytes: int, kinds: set[str]) -> tuple[bytes, str] | Answer:
        files = multipart_files(rec)
        if "media" not in files:
            return error(41005, "media data missing")
        filename, data = files["media"]
        if not data:
            return error(44001, "empty media data")
        kind = image_kind(data)
        if kind not in kinds:
            return error(40005, "invalid file type")
        ext = (filename or "").rsplit(".", 1)[-1].lower()
        if ext not in ({"jpg", "jpeg"} if kind == "jpeg" else {kind}):
            return error(40005, "invalid file type")
        if len(data) > max_bytes:
            return error(40009, "invalid image size")
        return data, kind

    def _uploadimg(self, rec: Recorded) -> Answer:
        media = self._media(rec, UPLOADIMG_MAX - 1, {"jpeg", "png"})
        if isinstance(media, Answer):
            return media
        data, kind = media
        url = f"http://mmbiz.qpic.cn/mmbiz_{kind}/{secrets.token_urlsafe(60)}/0?wx_fmt={kind}"
        with self.lock:
            self.images[url] = data
        return Answer(200, {"url": url})

    def _add_material(self, rec: Recorded) -> Answer:
        if rec.query.get("type") != "image":
            return error(40004, "invalid media type")
        media = self._media(rec, MATERIAL_IMAGE_MAX, {"jpeg", "png", "gif", "bmp"})
        if isinstance(media, Answer):
            return media
        data, kind = media
        media_id = secrets.token_urlsafe(48)
        with self.lock:
            self.materials[media_id] = data
        return Answer(200, {"media_id": media_id, "url": f"http://mmbiz.qpic.cn/mmbiz_{kind}/{media_id[:20]}/0",
                            "item": []})

    def _draft_add(self, rec: Recorded) -> Answer:
        try:
            body = json.loads(rec.body)
        except ValueError:
            return error(47001, "data format error")
        articles = body.get("articles") if isinstance(body, dict) else None
        if not isinstance(articles, list) or not articles:
            return error(44003, "empty news data")
        if len(articles) > 8:
            return error(45008, "article size out of limit")
        for a in articles:
            if not a.get("title"):
                return error(40227, "empty title")
            if len(a["title"]) > 32:
                return error(45003, "title size out of limit")
            if len(a.get("author") or "") > 16:
                return error(45110, "author size out of limit")
            if len(a.get("digest") or "") > 128:
                return error(45004, "description size out of limit")
            if not a.get("content"):
                return error(44003, "empty news data")
            if len(a["content"]) >= 20000 or len(a["content"].encode()) >= 1024 * 1024:
                return error(45002, "content size out of limit")
            if len((a.get("content_source_url") or "").encode()) > 1024:
                return error(45005, "url size out of limit")
            if a.get("thumb_media_id") not in self.materials:
                return error(40007, "invalid media_id")
        media_id = secrets.token_urlsafe(48)
        with self.lock:
            self.drafts[media_id] = body
        return Answer(200, {"media_id": media_id, "item": []})

    def _submit(self, rec: Recorded) -> Answer:
        media_id = (json.loads(rec.body or b"{}") or {}).get("media_id")
        with self.lock:
            draft = self.drafts.pop(media_id, None)  # a published draft leaves the draft box
            if draft is None:
                return error(40007, "invalid media_id")
            publish_id = str(next(self._ids))
            self.published[publish_id] = draft
        return Answer(200, ok(publish_id=publish_id, msg_data_id=int(publish_id) + 1))

    def _get(self, rec: Recorded) -> Answer:
        publish_id = str((json.loads(rec.body or b"{}") or {}).get("publish_id"))
        with self.lock:
            if publish_id not in self.published:
                return error(40007, "invalid media_id")
            status = self.statuses.popleft() if self.statuses else 0
        if status == 0:
            article_id = f"article-{publish_id}"
            url = f"https://mp.weixin.qq.com/s/{secrets.token_urlsafe(16)}"
            return Answer(200, {"publish_id": publish_id, "publish_status": 0, "article_id": article_id,
                                "article_detail": {"count": 1, "item": [{"idx": 1, "article_url": url}]},
                                "fail_idx": []})
        fail_idx = [1] if status in (2, 4) else []
        return Answer(200, {"publish_id": publish_id, "publish_status": status, "fail_idx": fail_idx})


def _endpoint(rec: Recorded) -> str:
    path = urlsplit(rec.path).path
    return path.removeprefix("/cgi-bin/")
