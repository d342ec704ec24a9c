"""Weibo (微博): share a post to the authorised account's timeline with `2/statuses/share.json`.

One form-encoded POST (multipart when the first image goes along as `pic`) carrying the OAuth2
`access_token` and the `status` text. Weibo's rules for this endpoint:
- `status` is at most 140 Chinese characters; two ASCII characters count as one (unit "weibo");
- it must contain a URL on the app's registered safe domain (安全域名): we always end it with
  the item's address on our site (post.url), and cut the text, never the link;
- it must not contain "#话题#" topics (the endpoint's own documentation says so), so the brand's
  hashtags are left out;
- `pic` is optional: JPEG, GIF or PNG under 5 MB.
Errors come as {"request", "error_code", "error"} with a 4xx status; the code decides.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import load_image, request, retry_after_seconds
from .text import count, cut

MAX_CHARS = 140
MAX_PIC_BYTES = 5 * 1024 * 1024 - 1  # "< 5M"
RATE_WINDOW = 3600.0  # Weibo's posting limits are per user and app per hour

RATE_LIMITED = {"10022", "10023", "10024", "20016"}
RETRYABLE = {"10001", "10002", "10003", "10009", "10010", "10011"}
TOKEN = {"21314", "21315", "21316", "21317", "21327", "21332", "21301", "21501"}
REPEATED = {"20017", "20019"}
UNSAFE_DOMAIN = {"10017"}


class Weibo(Channel):
    type = "weibo"
    label = _l("Weibo")
    idempotent = False
    fields = (
        Field("access_token", _l("Access token"), secret=True,
              help=_l("The OAuth2 access token of the account that posts; it expires and must be renewed.")),
        Field("base_url", _l("API address"), required=False, kind="url", default="https://api.weibo.com"),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=20),
    )
    # Ordinary authorisation: 30 posts an hour for one user in one app (higher tiers allow more).
    limits = Limits(max_length=MAX_CHARS, length_unit="weibo", markup="plain", rate_limit="30/hour")
    default_timeout = 20.0

    @property
    def base_url(self) -> str:
        return (self.config.get("base_url") or "https://api.weibo.com").rstrip("/")

    def render(self, post: Post) -> Message:
        if not post.url:
            raise ValueError("Weibo needs the item's address on this site: a share must contain a link")
        label = " · ".join(part for part in (templating.issue_label(post), post.theme) if part)
        head = templating.render(self.type, post, "txt", label=f"【{label}】" if label else "",
                                 body=markup.plain(post.body))
        status = _with_link(head, post.url)
        payload = {"status": status}
        if post.images:
            payload["pic"] = post.images[0]
        meta = {"images": post.images[:1], "image_files": post.image_files[:1]}
        return Message(payload=payload, preview=status, length=count(status, "weibo"), meta=meta)

    def max_send_seconds(self) -> float:
        return 4 * self.timeout  # the image download, then the post

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        token = self.config["access_token"]
        data = {"access_token": token, "status": message.payload["status"]}
        files = None
        if message.payload.get("pic"):
            source = Post(title="", body="", images=list(message.meta.get("images") or [message.payload["pic"]]),
                          image_files=list(message.meta.get("image_files") or []))
            image = load_image(self.session, source, 0, timeout=self.timeout, max_bytes=MAX_PIC_BYTES)
            files = {"pic": (image.filename, image.data, image.content_type)}
        resp = request(self.session, "POST", f"{self.base_url}/2/statuses/share.json",
                       data=data, files=files, timeout=self.timeout)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("error_code") not in (None, "", 0, "0"):
            raise _error(answer, token)
        if resp.status_code == 429:
            raise RateLimited("too many requests", code=429,
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")) or RATE_WINDOW)
        if resp.status_code >= 500:
            raise Retryable(f"Weibo answered HTTP {resp.status_code}", code=resp.status_code)
        if resp.status_code >= 400:
            raise Permanent(f"Weibo answered HTTP {resp.status_code}", code=resp.status_code)
        if not isinstance(answer, dict) or not (answer.get("idstr") or answer.get("id")):
            # A 2xx we cannot read: the status may have been posted.
            raise OutcomeUnknown("Weibo answered without the new status", code="unexpected_answer")
        mid = str(answer.get("idstr") or answer.get("mid") or answer.get("id"))
        user = answer.get("user") if isinstance(answer.get("user"), dict) else {}
        uid = user.get("idstr") or user.get("id")
        url = f"https://weibo.com/{uid}/{mid}" if uid else None
        raw = {"id": mid, "user": str(uid) if uid else None, "created_at": answer.get("created_at"),
               "text": answer.get("text")}
        return Receipt(remote_id=mid, url=url, raw=raw)


def _with_link(head: str, url: str) -> str:
    """The text and then the link, cut so that the whole fits and the link stays whole."""
    joined = f"{head}\n{url}" if head else url
    if count(joined, "weibo") <= MAX_CHARS:
        return joined
    # count() rounds half characters up, so the parts' counts add up to at least the whole's.
    budget = MAX_CHARS - count(f"\n{url}", "weibo")
    if budget < 10:
        raise ValueError("the item's address is too long for a Weibo status")
    return f"{cut(head, budget, 'weibo')}\n{url}"


def _error(answer: dict, token: str):
    code = str(answer.get("error_code")).strip()
    text = str(answer.get("error") or "").replace(token, "***")[:300] or "error"
    if code in RATE_LIMITED:
        return RateLimited(f"Weibo's posting limit was reached: {text}", code=code, retry_after=RATE_WINDOW)
    if code in RETRYABLE:
        return Retryable(f"Weibo is busy or failed: {text}", code=code)
    if code in REPEATED:
        return Permanent(f"Weibo refuses the same text twice: {text}", code=code)
    if code == "20012":
        return Permanent(f"the text is too long for Weibo: {text}", code=code)
    if code in TOKEN:
        return Permanent(f"the access token is expired, revoked or invalid; authorise the account again: {text}",
                         code=code)
    if code in UNSAFE_DOMAIN:
        return Permanent(f"Weibo refused a parameter: {text}. If the link is the problem, register this site's "
                         "domain as a safe domain (安全域名) of the Weibo app", code=code)
    return Permanent(text, code=code)


ADAPTER = Weibo
