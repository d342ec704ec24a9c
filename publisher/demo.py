"""`publisher demo`: a demo organisation to look around in, made idempotently.

Running it again creates nothing twice and changes nothing the operator changed: rows are looked
up by their natural key (e-mail, slug, channel name, item title) and only missing ones are made.
The two demo webhook channels point at the built-in receiver (web/demo.py); both sides derive
the signing secret from SECRET_KEY, so nothing secret is stored for the demo.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import select

from . import dispatch, schedule
from .extensions import db
from .models import (
    Channel,
    Column,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Format,
    Item,
    ItemStatus,
    Organisation,
    Origin,
    Role,
    User,
    utcnow,
)
from .security import check_password, create_user, hash_password

ORG_NAME = "开源社区运营 Demo"
ORG_TIMEZONE = "Asia/Shanghai"
ORG_LOCALE = "zh_CN"
LOGIN_FILE = "demo-login.txt"
ACCOUNTS = (
    ("admin@example.com", Role.ADMIN, "管理员 Admin"),
    ("editor@example.com", Role.EDITOR, "编辑小周 Zhou"),
    ("reviewer@example.com", Role.REVIEWER, "审核老王 Wang"),
)
# Members who contributed stories. Items name their author by account; these cannot log in.
MEMBERS = (("lin.xiao@example.com", "林晓 Lin Xiao"), ("chen.yu@example.com", "陈雨 Chen Yu"))
WECOM = "企业微信群 · 演示"
DINGTALK = "钉钉群 · 演示"
FEED = "公开订阅 RSS/Atom"
TOUR = ("As the editor, create an item on /items/new for 企业微信群 · 演示 a minute ahead and submit it "
        "for review; as the reviewer (or the admin) approve it; then watch /demo/receiver. "
        "/dashboard shows the columns' open slots.")

# slug, name, colour, description, then the cadence (RRULE, column timezone Asia/Shanghai) and themes.
COLUMNS = (
    ("product-night", "周二产品夜话 · Tuesday Product Night", "#7c3aed",
     "每周二晚 20:00 的线上分享：产品经理和维护者聊他们的真实决策。\n"
     "Every Tuesday at 20:00 (Beijing time): maintainers and product people on real decisions.",
     "FREQ=WEEKLY;BYDAY=TU;BYHOUR=20;BYMINUTE=0;BYSECOND=0", "产品决策 Decisions\n文档 Docs\n社区治理 Governance"),
    ("member-stories", "会员故事 · Member Stories", "#059669",
     "由社区成员投稿的故事：第一次贡献、第一次办活动、第一次踩坑。\n"
     "Stories written by our members: first contributions, first meetups, first mistakes.",
     "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12;BYMINUTE=0;BYSECOND=0", ""),
    ("weekly-picks", "每周精选 · Weekly Picks", "#d97706",
     "每周一早上，编辑部挑选的 5 篇值得一读的内容。\nFive things worth reading, picked by the editors every Monday.",
     "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "工具 Tools\n活动 Events\n文档 Docs\n增长 Growth"),
)


@dataclass(frozen=True)
class DemoItem:
    column: str
    title: str
    body: str
    origin: str = Origin.PGC
    format: str = Format.ARTICLE
    author: str = "editor@example.com"
    day: int = 0  # days from today in the organisation's timezone: negative = already published
    at: time = time(20, 0)


ITEMS = (
    DemoItem(
        "product-night", "第11期回顾：社区积分体系怎么设计 | Recap: designing a community points system",
        "上周二我们请到了三位社区负责人，聊积分体系的得与失。\n\n"
        "**要点 Key points**\n\n"
        "- 积分奖励行为，而不是奖励身份 · Reward actions, not titles\n"
        "- 兑换要有真实价值，否则积分会通胀 · Points need real rewards or they inflate\n"
        "- 每季度公开一次规则调整 · Publish rule changes once a quarter\n\n"
        "回放和讲稿见社区网盘。The recording and slides are in the community drive.",
        day=-6, at=time(21, 30),
    ),
    DemoItem(
        "member-stories", "从潜水到组织线下 Meetup 的一年 | A year from lurker to meetup organiser",
        "我在群里潜水了八个月，第一次发言是问一个很傻的安装问题。\n\n"
        "没想到有三个人同时回复了我。一年后，我在深圳组织了第一次线下 Meetup，来了 42 个人。\n\n"
        "*I lurked for eight months. My first message was a silly install question, and three people "
        "answered within minutes. A year later I ran our first Shenzhen meetup: 42 people came.*",
        origin=Origin.UGC, author="lin.xiao@example.com", day=-5, at=time(12, 0),
    ),
    DemoItem(
        "weekly-picks", "每周精选 #23：本周值得一读的 5 篇 | Weekly Picks #23",
        "1. 如何给开源项目写一份好的 CONTRIBUTING.md\n"
        "2. 社群冷启动的前 100 人 · The first 100 members\n"
        "3. 用 RSS 订阅社区动态 · Following the community by RSS\n"
        "4. 线上分享的麦克风和灯光清单 · A mic and lighting checklist for online talks\n"
        "5. 维护者的倦怠与休假 · Maintainer burnout and taking time off",
        day=-4, at=time(9, 0),
    ),
    DemoItem(
        "product-night", "第12期预告：开源项目的文档怎么写 | Next Tuesday: writing docs for open source",
        "**时间 When**：下周二 20:00（北京时间）\n\n"
        "**嘉宾 Speaker**：某开源数据库的文档负责人\n\n"
        "我们会聊：文档的四种类型、如何让贡献者愿意写文档、中英文文档如何同步。\n\n"
        "Bring your questions: the four kinds of docs, getting contributors to write them, keeping "
        "Chinese and English in step.",
        format=Format.EVENT, day=-3, at=time(18, 0),
    ),
    DemoItem(
        "member-stories", "我用开源工具搭了一个社区数据看板 | The community dashboard I built with open-source tools",
        "起因很简单：每周写周报时，我要在五个后台之间复制粘贴。\n\n"
        "现在数据每小时同步一次，新成员、活跃度和活动报名一目了然。\n\n"
        "*Every weekly report meant copying numbers out of five admin pages. Now the data syncs every "
        "hour and new members, activity and sign-ups are on one page.*",
        origin=Origin.UGC, author="chen.yu@example.com", format=Format.IMAGE, day=-2, at=time(15, 0),
    ),
    DemoItem(
        "weekly-picks", "每周精选 #24：活动运营专题 | Weekly Picks #24: running events",
        "本周主题是活动运营 · This week: running events.\n\n"
        "1. 报名表只留三个必填项 · Keep three required fields on the sign-up form\n"
        "2. 提前 24 小时和 1 小时各提醒一次 · Remind 24 hours and 1 hour before\n"
        "3. 活动结束 48 小时内发回顾 · Post the recap within 48 hours",
        day=-1, at=time(9, 0),
    ),
    DemoItem(
        "product-night", "第12期今晚开讲：开源项目的文档怎么写 | Tonight: writing docs for open source",
        "今晚 20:00 不见不散，会议链接会在开讲前 10 分钟发到群里。\n\n"
        "See you at 20:00; the meeting link arrives here ten minutes before we start.",
        format=Format.EVENT, day=1, at=time(19, 30),
    ),
    DemoItem(
        "weekly-picks", "每周精选 #25：文档专题 | Weekly Picks #25: documentation",
        "1. 教程、指南、参考、解释：四种文档 · Tutorials, how-tos, reference, explanation\n"
        "2. 截图过期了怎么办 · When screenshots go stale\n"
        "3. 中英文文档同步的三种做法 · Three ways to keep translations in step",
        day=2, at=time(9, 0),
    ),
    DemoItem(
        "member-stories", "征稿：你的第一次开源贡献 | Call for stories: your first open-source contribution",
        "第一次提 PR 是什么感觉？被拒绝过吗？欢迎投稿，入选的故事会在「会员故事」栏目发布。\n\n"
        "What was your first pull request like? Send us your story; the ones we pick appear in Member Stories.",
        day=3, at=time(12, 0),
    ),
    DemoItem(
        "product-night", "第13期预告：社区里的冲突与调解 | Next Tuesday: conflict and mediation in communities",
        "**时间 When**：下周二 20:00\n\n"
        "行为准则写好之后，真正难的是执行。我们请到两位有经验的调解人分享案例。\n\n"
        "Writing a code of conduct is the easy part; two experienced moderators share real cases.",
        format=Format.EVENT, day=4, at=time(20, 0),
    ),
)


def demo_secret() -> str:
    """The demo channels' signing secret: derived, so the receiver needs nothing stored."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"demo-receiver", hashlib.sha256).hexdigest()


@dataclass
class Login:
    email: str
    role: str
    password: str | None  # None: the account was not made by this command, or its password changed since


@dataclass
class DemoResult:
    base_url: str
    login_file: Path
    logins: list[Login] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)

    def made(self, kind: str) -> None:
        self.created[kind] = self.created.get(kind, 0) + 1


# --- the login file -----------------------------------------------------------------------------

def _read_logins(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            found[parts[0]] = parts[1]
    return found


def _write_logins(path: Path, logins: dict[str, str]) -> None:
    text = "# publisher demo logins: e-mail and password, generated once\n"
    text += "".join(f"{email} {password}\n" for email, password in logins.items())
    if path.exists() and path.read_text(encoding="utf-8") == text:
        os.chmod(path, 0o600)
        return
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


# --- the rows -----------------------------------------------------------------------------------

def _organisation(result: DemoResult) -> Organisation:
    org = db.session.get(Organisation, 1)
    if org is None:
        org = Organisation(id=1)
        db.session.add(org)
    # Only a fresh organisation becomes the demo one: an operator's own settings stay.
    if org.name in (None, "", Organisation.__table__.c.name.default.arg):
        org.name, org.timezone, org.locale = ORG_NAME, ORG_TIMEZONE, ORG_LOCALE
        result.made("organisation settings")
    return org


def _accounts(result: DemoResult) -> dict[str, User]:
    passwords = _read_logins(result.login_file)
    users: dict[str, User] = {}
    for email, role, name in ACCOUNTS:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            passwords.setdefault(email, secrets.token_urlsafe(12))
            user = create_user(email, passwords[email], role, name)
            result.made("accounts")
        shown = passwords.get(email)
        if shown is not None and not check_password(user, shown):
            shown = None
        result.logins.append(Login(email, user.role, shown))
        users[email] = user
    _write_logins(result.login_file, {e: p for e, p in passwords.items() if e in {a[0] for a in ACCOUNTS}})
    for email, name in MEMBERS:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, name=name, role=Role.EDITOR, active=False,
                        password_hash=hash_password(secrets.token_urlsafe(32)))
            db.session.add(user)
            result.made("member accounts")
        users[email] = user
    return users


def _columns(result: DemoResult, channels: dict[str, Channel], owner: User) -> dict[str, Column]:
    columns = {}
    for slug, name, color, description, cadence, themes in COLUMNS:
        column = db.session.scalar(select(Column).where(Column.slug == slug))
        if column is None:
            column = Column(slug=slug, name=name, color=color, description=description, cadence=cadence,
                            themes=themes, timezone=ORG_TIMEZONE, cadence_start=utcnow() - timedelta(days=30),
                            owner=owner, default_channels=[channels[WECOM], channels[DINGTALK], channels[FEED]],
                            intro=f"【{name.split(' · ')[0]}】", hashtags="开源社区 OpenSource")
            db.session.add(column)
            result.made("columns")
        columns[slug] = column
    return columns


def _channels(result: DemoResult) -> dict[str, Channel]:
    base = result.base_url
    wanted = {
        WECOM: ("webhook", {"url": f"{base}/demo/receiver/wecom-group", "secret": demo_secret(), "timeout": 10}),
        DINGTALK: ("webhook", {"url": f"{base}/demo/receiver/dingtalk-group", "secret": demo_secret(), "timeout": 10}),
        FEED: ("feed", {}),
    }
    channels = {}
    for name, (type_, config) in wanted.items():
        channel = db.session.scalar(select(Channel).where(Channel.name == name, Channel.type == type_))
        if channel is None:
            channel = Channel(name=name, type=type_)
            channel.config = config
            db.session.add(channel)
            result.made("channels")
        elif type_ == "webhook" and channel.config != config:
            # BASE_URL or SECRET_KEY changed since: point the demo channels at this receiver again.
            channel.config = config
            result.made("channels repaired")
        channels[name] = channel
    return channels


def _local(zone: ZoneInfo, day: int, at: time) -> datetime:
    today = datetime.now(zone).date()
    return datetime.combine(today + timedelta(days=day), at, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def _published(item: Item, feed: Channel, sent_at: datetime) -> None:
    """An item that went out on the feed channel days ago, recorded as the worker would have."""
    item.status = ItemStatus.PUBLISHED
    item.published_at = item.planned_at = sent_at
    column = item.column
    numbers = [i.issue_number for i in db.session.scalars(select(Item).where(Item.column_id == column.id))
               if i.issue_number is not None]
    item.issue_number = max(numbers, default=column.first_issue - 1) + 1
    item.theme = schedule.theme_for(column, item.issue_number)
    item.created_at = sent_at - timedelta(days=1)
    item.updated_at = sent_at
    delivery = Delivery(item=item, channel=feed, status=DeliveryStatus.SENT, due_at=sent_at,
                        next_attempt_at=sent_at, attempt=1, sent_at=sent_at, last_reason="sent",
                        created_at=item.created_at, updated_at=sent_at)
    db.session.add(delivery)
    db.session.flush()
    delivery.external_id = delivery.idempotency_key  # what the feed adapter answers
    db.session.add_all([
        DeliveryEvent(delivery_id=delivery.id, attempt=0, status=DeliveryStatus.SCHEDULED, reason="scheduled",
                      message=sent_at.isoformat(), at=item.created_at),
        DeliveryEvent(delivery_id=delivery.id, attempt=1, status=DeliveryStatus.SENT, reason="sent",
                      message=delivery.external_id, at=sent_at),
    ])


def _items(result: DemoResult, org: Organisation, users: dict[str, User], columns: dict[str, Column],
           channels: dict[str, Channel]) -> None:
    zone = ZoneInfo(org.timezone)
    now = utcnow()
    for spec in ITEMS:
        if db.session.scalar(select(Item.id).where(Item.title == spec.title)) is not None:
            continue
        when = _local(zone, spec.day, spec.at)
        item = Item(title=spec.title, body=spec.body, origin=spec.origin, format=spec.format,
                    column=columns[spec.column], author=users[spec.author])
        db.session.add(item)
        if when <= now:
            _published(item, channels[FEED], when)
            result.made("published items")
        else:
            # Reviewed and approved already, so they go out on their own when they are due.
            item.status, item.reviewed_by, item.reviewed_at = ItemStatus.APPROVED, users["reviewer@example.com"], now
            dispatch.schedule(item, [channels[WECOM], channels[DINGTALK]], when)
            result.made("scheduled items")


def seed() -> DemoResult:
    """Create whatever of the demo is missing and commit. Needs an app context."""
    result = DemoResult(base_url=current_app.config["BASE_URL"].rstrip("/"),
                        login_file=Path(current_app.instance_path) / LOGIN_FILE)
    org = _organisation(result)
    users = _accounts(result)
    channels = _channels(result)
    columns = _columns(result, channels, users["editor@example.com"])
    db.session.flush()
    _items(result, org, users, columns, channels)
    db.session.commit()
    return result


def summary(result: DemoResult) -> str:
    lines = ["", f"publisher demo is ready at {result.base_url}/", ""]
    for login in result.logins:
        if login.password:
            lines.append(f"  {login.role:<7} {login.email}   password: {login.password}")
        else:
            lines.append(f"  {login.role:<7} {login.email}   (password not shown: the account existed before "
                         "`publisher demo` made it, or its password was changed since)")
    lines.append(f"  (kept in {result.login_file}, readable only by you)")
    lines.append("")
    if result.created:
        lines.append("Created: " + ", ".join(f"{n} {kind}" for kind, n in result.created.items()) + ".")
    else:
        lines.append("Everything was already there; nothing changed.")
    lines += ["", f"Tour: {TOUR}", ""]
    return "\n".join(lines)


def run(app: Flask) -> str:
    """The `publisher demo` command: migrate, seed, and say how to log in."""
    from .migrate import upgrade

    upgrade(app)
    with app.app_context():
        return summary(seed())
