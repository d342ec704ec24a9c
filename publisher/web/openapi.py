"""The OpenAPI 3.1 description of /api, served at /api/openapi.json.

The representations are built in api_json.py; tests/test_openapi.py checks that every route is
described here and that real responses match these schemas, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..dispatch import REASONS
from ..models import DeliveryStatus, Format, ItemStatus, Origin

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], required: list[str] | None = None, closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties) if required is None else required}
    if closed:
        schema["additionalProperties"] = False
    return schema


ID = {"type": "integer", "minimum": 1}
TIME = {"type": "string", "format": "date-time",
        "description": "ISO 8601 in UTC with its offset, e.g. 2030-01-01T12:00:00+00:00"}
TEXT = {"type": "string"}
NULL_TEXT = {"type": ["string", "null"]}

DELIVERY_PROPS: dict[str, Any] = {
    "id": ID, "item_id": ID, "channel_id": ID,
    "status": {"enum": list(DeliveryStatus)},
    "due_at": TIME,
    "next_attempt_at": {**TIME, "description": "when the next attempt is due (later than due_at after a retry)"},
    "attempt": {"type": "integer", "description": "attempts started so far"},
    "failures": {"type": "integer", "description": "retryable failures so far"},
    "external_id": NULL_TEXT, "external_url": NULL_TEXT,
    "last_reason": _nullable({"enum": list(REASONS)}),
    "last_error_code": NULL_TEXT, "last_error": NULL_TEXT,
    "sent_at": _nullable(TIME), "created_at": TIME, "updated_at": TIME,
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string", "description": "stable, for programs: validation_error, unauthorized, "
                 "invalid_token, forbidden, not_found, conflict, stale_version, invalid_state, csrf_failed, "
                 "unsupported_media_type, rate_limited …"},
        "message": {"type": "string", "description": "for people, in the caller's language"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "what is wrong with each field (validation errors)"},
    })}),
    "Pagination": _obj({
        "limit": {"type": "integer"},
        "next_cursor": {**NULL_TEXT, "description": "pass as `cursor` for the next (older) rows; null at the end"},
        "page": {"type": "integer", "description": "only when paging by `page`"},
        "next_page": {"type": ["integer", "null"], "description": "only when paging by `page`"},
    }, required=["limit", "next_cursor"]),
    "DeliveryEvent": _obj({
        "id": ID, "at": TIME, "attempt": {"type": "integer"},
        "status": {"enum": list(DeliveryStatus)},
        "reason": _nullable({"enum": list(REASONS)}),
        "code": NULL_TEXT, "message": NULL_TEXT,
    }),
    "Delivery": _obj(DELIVERY_PROPS),
    "DeliveryDetail": _obj({**DELIVERY_PROPS, "events": {"type": "array", "items": _ref("DeliveryEvent")}}),
    "Item": _obj({
        "id": ID, "title": TEXT, "body": {"type": "string", "description": "Markdown"},
        "origin": {"enum": list(Origin)}, "format": {"enum": list(Format)},
        "status": {"enum": list(ItemStatus)},
        "column_id": {"type": ["integer", "null"]}, "author_id": {"type": ["integer", "null"]},
        "version": {"type": "integer", "description": "send it back with PATCH (optimistic locking)"},
        "created_at": TIME, "updated_at": TIME, "published_at": _nullable(TIME),
        "next_due_at": _nullable({**TIME, "description": "the earliest pending attempt of its deliveries"}),
        "deliveries": {"type": "array", "items": _ref("Delivery")},
    }),
    "ItemCreate": _obj({
        "title": {"type": "string", "minLength": 1, "maxLength": 300}, "body": TEXT,
        "origin": {"enum": list(Origin), "default": "pgc"}, "format": {"enum": list(Format), "default": "article"},
        "column_id": {"type": ["integer", "null"]},
        "channel_ids": {"type": "array", "items": {"type": "integer"}, "description": "schedule on these channels"},
        "due_at": {"type": "string", "format": "date-time",
                   "description": "with its UTC offset (a time without one is refused); default: now"},
    }, required=["title"], closed=True),
    "ItemUpdate": _obj({
        "version": {"type": "integer", "description": "the version you edited; 409 if someone saved since"},
        "title": {"type": "string", "minLength": 1, "maxLength": 300}, "body": TEXT,
        "origin": {"enum": list(Origin)}, "format": {"enum": list(Format)},
        "column_id": {"type": ["integer", "null"]},
    }, required=["version"], closed=True),
    "ScheduleRequest": _obj({
        "channel_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "due_at": {"type": "string", "format": "date-time", "description": "with its UTC offset; default: now"},
    }, required=["channel_ids"], closed=True),
    "Channel": _obj({
        "id": ID, "name": TEXT, "type": TEXT, "enabled": {"type": "boolean"},
        "config": {"type": "object", "description": "the settings without the secret ones"},
        "secrets_set": {"type": "array", "items": {"type": "string"},
                        "description": "secret settings that have a value (the values are never shown)"},
        "config_readable": {"type": "boolean", "description": "false when encrypted with another SECRET_KEY"},
        "created_at": TIME,
    }),
    "ChannelCreate": _obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "type": {"type": "string", "description": "one of GET /api/channel-types"},
        "enabled": {"type": "boolean", "default": True},
        "config": {"type": "object", "description": "settings as listed by the channel type's fields"},
    }, required=["name", "type"], closed=True),
    "ChannelUpdate": _obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "enabled": {"type": "boolean"},
        "config": {"type": "object", "description": "settings to change; those not sent (secrets too) are kept, "
                   "null removes one"},
    }, required=[], closed=True),
    "ChannelField": _obj({
        "name": TEXT, "label": TEXT, "secret": {"type": "boolean"}, "required": {"type": "boolean"},
        "kind": {"enum": ["string", "url", "integer", "boolean", "text"]}, "default": {}, "help": TEXT,
    }),
    "ChannelType": _obj({
        "type": TEXT, "label": TEXT,
        "idempotent": {"type": "boolean", "description": "the service drops repeats, so an unclear send is retried"},
        "fields": {"type": "array", "items": _ref("ChannelField")},
        "limits": _obj({
            "max_length": {"type": ["integer", "null"]}, "length_unit": TEXT, "markup": TEXT,
            "rate_limit": NULL_TEXT,
        }),
    }),
}


def _list(name: str, paged: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"data": {"type": "array", "items": _ref(name)}}
    if paged:
        props["pagination"] = _ref("Pagination")
    return _obj(props)


SCHEMAS |= {
    "ItemPage": _list("Item", paged=True),
    "DeliveryPage": _list("Delivery", paged=True),
    "DeliveryList": _list("Delivery"),
    "ChannelList": _list("Channel"),
    "ChannelTypeList": _list("ChannelType"),
}

ERRORS = {
    "400": "Invalid input; `fields` says what is wrong. Nothing was changed.",
    "401": "Not logged in, or the token is unknown or revoked.",
    "403": "Your role does not allow this.",
    "404": "No such object.",
    "409": "The current state does not allow this.",
    "415": "The body is not JSON.",
    "429": "Too many requests.",
}


def _error(status: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/E{status}"}


def _op(op_id: str, summary: str, ok: dict[str, Any], *, errors: tuple[str, ...] = (), body: str | None = None,
        params: tuple[str, ...] = (), tag: str) -> dict[str, Any]:
    """One operation. Every one may answer 401, 403 and 429; writes may also need the CSRF header."""
    operation: dict[str, Any] = {
        "operationId": op_id, "summary": summary, "tags": [tag],
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
        "responses": {**ok, **{s: _error(s) for s in sorted({"401", "403", "429", *errors})}},
    }
    if body:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    return operation


def _ok(schema: str, status: str = "200", description: str = "OK", location: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
    if location:
        response["headers"] = {"Location": {"description": "the new object's address", "schema": TEXT}}
    return {status: response}


NO_CONTENT = {"204": {"description": "Deleted."}}
WRITE = ("CsrfToken",)
PAGING = ("limit", "cursor", "page")


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


PARAMETERS = {
    "item_id": _param("item_id", "path", ID, "the item's id", required=True),
    "channel_id": _param("channel_id", "path", ID, "the channel's id", required=True),
    "delivery_id": _param("delivery_id", "path", ID, "the delivery's id", required=True),
    "limit": _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    "rows per page"),
    "cursor": _param("cursor", "query", TEXT, "`pagination.next_cursor` of the previous page"),
    "page": _param("page", "query", {"type": "integer", "minimum": 1}, "page number (instead of a cursor)"),
    "item_status": _param("status", "query", {"enum": list(ItemStatus)}, "only items in this status"),
    "origin": _param("origin", "query", {"enum": list(Origin)}, "only items of this origin"),
    "format": _param("format", "query", {"enum": list(Format)}, "only items in this format"),
    "column_id_filter": _param("column_id", "query", ID, "only items in this column"),
    "from": _param("from", "query", {"type": "string", "format": "date-time"},
                   "only items whose next due time is at or after this (with offset)"),
    "to": _param("to", "query", {"type": "string", "format": "date-time"},
                 "only items whose next due time is before this (with offset)"),
    "delivery_status": _param("status", "query", {"enum": list(DeliveryStatus)}, "only deliveries in this status"),
    "item_id_filter": _param("item_id", "query", ID, "only deliveries of this item"),
    "channel_id_filter": _param("channel_id", "query", ID, "only deliveries to this channel"),
    "CsrfToken": _param("X-CSRFToken", "header", TEXT, "required when calling with a browser session cookie "
                        "(the page's <meta name=\"csrf-token\">); not needed with a bearer token"),
}

ITEM, CHANNEL, DELIVERY = "items", "channels", "deliveries"
PATHS: dict[str, Any] = {
    "/api/items": {
        "get": _op("listItems", "Items, newest first", _ok("ItemPage"), errors=("400",), tag=ITEM,
                   params=("item_status", "column_id_filter", "origin", "format", "from", "to", *PAGING)),
        "post": _op("createItem", "Create an item, and schedule it when channel_ids are given",
                    _ok("Item", "201", "Created", location=True), errors=("400", "415"), body="ItemCreate",
                    params=WRITE, tag=ITEM),
    },
    "/api/items/{item_id}": {
        "get": _op("getItem", "One item with its deliveries", _ok("Item"), errors=("404",), params=("item_id",),
                   tag=ITEM),
        "patch": _op("updateItem", "Edit an item (never sends anything again)", _ok("Item"),
                     errors=("400", "404", "409", "415"), body="ItemUpdate", params=("item_id", *WRITE), tag=ITEM),
        "delete": _op("deleteItem", "Delete a draft that was never scheduled", NO_CONTENT, errors=("404", "409"),
                      params=("item_id", *WRITE), tag=ITEM),
    },
    "/api/items/{item_id}/deliveries": {
        "get": _op("listItemDeliveries", "The item's deliveries", _ok("DeliveryList"), errors=("404",),
                   params=("item_id",), tag=ITEM),
        "post": _op("scheduleItem", "Schedule the item on more channels", _ok("DeliveryList", "201", "Scheduled"),
                    errors=("400", "404", "415"), body="ScheduleRequest", params=("item_id", *WRITE), tag=ITEM),
    },
    "/api/channels": {
        "get": _op("listChannels", "Channels (secret settings left out)", _ok("ChannelList"), tag=CHANNEL),
        "post": _op("createChannel", "Create a channel (admins)", _ok("Channel", "201", "Created", location=True),
                    errors=("400", "415"), body="ChannelCreate", params=WRITE, tag=CHANNEL),
    },
    "/api/channels/{channel_id}": {
        "get": _op("getChannel", "One channel", _ok("Channel"), errors=("404",), params=("channel_id",),
                   tag=CHANNEL),
        "patch": _op("updateChannel", "Change a channel (admins); secrets only when sent", _ok("Channel"),
                     errors=("400", "404", "409", "415"), body="ChannelUpdate", params=("channel_id", *WRITE),
                     tag=CHANNEL),
        "delete": _op("deleteChannel", "Delete a channel without deliveries (admins)", NO_CONTENT,
                      errors=("404", "409"), params=("channel_id", *WRITE), tag=CHANNEL),
    },
    "/api/channel-types": {
        "get": _op("listChannelTypes", "The installed channel adapters and their settings",
                   _ok("ChannelTypeList"), tag=CHANNEL),
    },
    "/api/deliveries": {
        "get": _op("listDeliveries", "Deliveries, newest first", _ok("DeliveryPage"), errors=("400",),
                   params=("delivery_status", "item_id_filter", "channel_id_filter", *PAGING), tag=DELIVERY),
    },
    "/api/deliveries/{delivery_id}": {
        "get": _op("getDelivery", "One delivery with its history", _ok("DeliveryDetail"), errors=("404",),
                   params=("delivery_id",), tag=DELIVERY),
    },
}
for _action, _summary in (("cancel", "Cancel a scheduled or unconfirmed delivery"),
                          ("retry", "Retry a failed or unconfirmed delivery now"),
                          ("mark-sent", "Record that a failed or unconfirmed delivery did arrive")):
    _op_id = "".join(w.capitalize() for w in _action.split("-"))
    PATHS[f"/api/deliveries/{{delivery_id}}/{_action}"] = {
        "post": _op(f"delivery{_op_id}", _summary, _ok("DeliveryDetail"), errors=("404", "409"),
                    params=("delivery_id", *WRITE), tag=DELIVERY),
    }
SCHEMAS["Preview"] = _obj({  # publisher/previews.py
    "channel_id": ID, "channel_name": TEXT, "channel_type": TEXT, "type_label": TEXT, "enabled": {"type": "boolean"},
    "payload": {"type": "string", "description": "what the channel receives (pretty JSON for JSON payloads)"},
    "text": {"type": "string", "description": "the adapter's text preview"},
    "length": {"type": "integer", "description": "of `text`, counted in `unit`"},
    "unit": {"enum": ["characters", "bytes", "utf16"]}, "max_length": {"type": ["integer", "null"]},
    "over_limit": {"type": "boolean"}, "over_by": {"type": "integer", "description": "0 when it fits"},
    "markup": TEXT, "error": {"type": "string", "description": "why it cannot be rendered; empty when it can"},
})
SCHEMAS["PreviewList"] = _list("Preview")
PATHS["/api/items/{item_id}/previews"] = {
    "get": _op("listItemPreviews", "What each planned channel will receive, rendered by its adapter",
               _ok("PreviewList"), errors=("404",), params=("item_id",), tag=ITEM),
}
WALL_CLOCK = {"type": "string", "description": "the organisation's wall-clock time WITHOUT an offset, "
              "e.g. 2030-03-05T20:00:00 (the calendar shows the organisation's time whatever the browser's zone)"}
_EVENT_COLUMN = _nullable(_obj({"id": ID, "name": TEXT, "color": TEXT}))
SCHEMAS |= {  # publisher/web/api_calendar.py
    "CalendarItemProps": _obj({
        "kind": {"const": "item"}, "itemId": ID, "itemTitle": TEXT,
        "version": {"type": "integer", "description": "send it back when moving the item"},
        "status": {"enum": list(ItemStatus)}, "statusLabel": TEXT,
        "issueNumber": {"type": ["integer", "null"], "description": "final once published, else predicted"},
        "numberFinal": {"type": "boolean"}, "theme": TEXT, "column": _EVENT_COLUMN,
        "origin": {"enum": list(Origin)}, "format": {"enum": list(Format)},
        "deliveries": {"type": "array", "items": _obj({
            "channelId": ID, "channel": TEXT, "status": {"enum": list(DeliveryStatus)}, "statusLabel": TEXT})},
    }),
    "CalendarSlotProps": _obj({
        "kind": {"const": "slot"}, "column": _EVENT_COLUMN,
        "issueNumber": {"type": "integer", "description": "the number the slot will get"}, "theme": TEXT,
        "at": {**TIME, "description": "the slot's time in UTC: send it to fill the slot"},
        "label": {"type": "string", "description": "number and theme, for people"},
    }),
    "CalendarEvent": _obj({
        "id": TEXT, "title": TEXT, "start": WALL_CLOCK,
        "url": {"type": "string", "description": "the item's page (items only)"},
        "color": TEXT, "backgroundColor": TEXT, "borderColor": TEXT, "textColor": TEXT,
        "editable": {"type": "boolean", "description": "whether the caller may move it"},
        "classNames": {"type": "array", "items": TEXT},
        "extendedProps": {"anyOf": [_ref("CalendarItemProps"), _ref("CalendarSlotProps")]},
    }, required=["id", "title", "start", "editable", "classNames", "extendedProps"]),
    "CalendarMove": _obj({"planned_at": {**WALL_CLOCK, "description": WALL_CLOCK["description"]
                                         + "; a time with an offset is taken as it is"},
                          "version": {"type": "integer", "description": "the item's version the move is based on"}},
                         closed=True),
    "CalendarFill": _obj({"column_id": ID, "at": {"type": "string", "description": "the slot's time: `at` of "
                                                  "the slot event (UTC, with offset) or org-local wall-clock"}},
                         closed=True),
    "CalendarFilled": _obj({"item_id": ID, "edit_url": {"type": "string", "description": "where to write it"}}),
}
SCHEMAS["CalendarEventList"] = {"type": "array", "items": _ref("CalendarEvent")}
PARAMETERS |= {
    "calendar_start": _param("start", "query", WALL_CLOCK, "the range's start (org-local; an offset is ignored)",
                             required=True),
    "calendar_end": _param("end", "query", WALL_CLOCK, "the range's end, exclusive; at most 100 days after start",
                           required=True),
    "calendar_column": _param("column", "query", TEXT, "only these columns (repeatable; `none`: items without one)"),
    "calendar_channel": _param("channel", "query", TEXT, "only items planned on these channels (repeatable)"),
    "calendar_status": _param("status", "query", {"enum": list(ItemStatus)}, "only items in these statuses "
                              "(repeatable)"),
    "calendar_origin": _param("origin", "query", {"enum": list(Origin)}, "only items of this origin"),
}
CALENDAR = "calendar"
PATHS |= {
    "/api/calendar/events": {
        "get": _op("calendarEvents", "The calendar's events: items at their planned time (drafts too) and the "
                   "open slots of active columns from now on (slots follow only the column filter)",
                   _ok("CalendarEventList"), errors=("400",), tag=CALENDAR,
                   params=("calendar_start", "calendar_end", "calendar_column", "calendar_channel",
                           "calendar_status", "calendar_origin")),
    },
    "/api/calendar/items/{item_id}/move": {
        "post": _op("calendarMove", "Move an item to another time (editors); its waiting deliveries follow. "
                    "409 when the version is stale, 400 for a time in the past or an item that went out",
                    _ok("CalendarEvent"), errors=("400", "404", "409", "415"), body="CalendarMove",
                    params=("item_id", *WRITE), tag=CALENDAR),
    },
    "/api/calendar/slots/fill": {
        "post": _op("calendarFill", "Fill an open slot with a numbered, themed draft (editors); 400 when the "
                    "slot is taken or does not exist", _ok("CalendarFilled", "201", "Created", location=True),
                    errors=("400", "404", "415"), body="CalendarFill", params=WRITE, tag=CALENDAR),
    },
}
# --- columns and slots (api_columns.py) ---------------------------------------------------------
COLUMN_WRITE: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 120},
    "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 80,
             "description": "unique; not a reserved word such as `all`"},
    "description": TEXT, "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
    "intro": TEXT, "signoff": TEXT,
    "hashtags": {"anyOf": [TEXT, {"type": "array", "items": TEXT}], "description": "without '#'"},
    "cover_id": {"type": ["integer", "null"], "description": "an image of the media library"},
    "timezone": {"type": "string", "description": "IANA name, e.g. Europe/Berlin; default: the organisation's"},
    "cadence": {"type": ["string", "null"], "description": "RFC 5545 RRULE without DTSTART, expanded in `timezone`, "
                "e.g. FREQ=WEEKLY;BYDAY=TU;BYHOUR=20;BYMINUTE=0; empty or null for none"},
    "cadence_start": {"type": ["string", "null"], "format": "date-time", "description": "with its UTC offset"},
    "first_issue": {"type": "integer", "minimum": 0},
    "themes": {"anyOf": [TEXT, {"type": "array", "items": TEXT}], "description": "rotating per issue"},
    "slots_ahead": {"type": "integer", "minimum": 1, "maximum": 20},
    "owner_id": {"type": ["integer", "null"]}, "active": {"type": "boolean"},
    "default_channel_ids": {"type": "array", "items": {"type": "integer"}},
}
SCHEMAS |= {
    "Column": _obj({
        "id": ID, "name": TEXT, "slug": TEXT, "description": TEXT, "color": TEXT, "intro": TEXT, "signoff": TEXT,
        "hashtags": {"type": "array", "items": TEXT}, "cover_id": {"type": ["integer", "null"]},
        "timezone": TEXT, "cadence": {"type": "string", "description": "RRULE, empty for none"},
        "cadence_start": _nullable(TIME), "first_issue": {"type": "integer"},
        "themes": {"type": "array", "items": TEXT}, "slots_ahead": {"type": "integer"},
        "owner_id": {"type": ["integer", "null"]}, "active": {"type": "boolean"},
        "default_channel_ids": {"type": "array", "items": {"type": "integer"}}, "created_at": TIME,
    }),
    "ColumnCreate": _obj(COLUMN_WRITE, required=["name", "slug"], closed=True),
    "ColumnUpdate": _obj(COLUMN_WRITE, required=[], closed=True),
    "ColumnList": _list("Column"),
    "Slot": _obj({
        "column_id": ID, "at": TIME,
        "issue_number": {"type": "integer", "description": "predicted; final when published"},
        "theme": TEXT, "open": {"type": "boolean"},
        "item_id": {"type": ["integer", "null"], "description": "the item planned at this time"},
    }),
    "SlotList": _list("Slot"),
    "FillRequest": _obj({"at": {"type": "string", "format": "date-time",
                                "description": "the slot's time, with its UTC offset"}}, closed=True),
}
PARAMETERS |= {
    "column_id": _param("column_id", "path", ID, "the column's id", required=True),
    "slot_column_filter": _param("column_id", "query", ID, "only this column's slots"),
    "start": _param("start", "query", {"type": "string", "format": "date-time"},
                    "from this time (with offset); default: now"),
    "end": _param("end", "query", {"type": "string", "format": "date-time"},
                  "until this time (with offset); default: start + 31 days; at most 400 days after start"),
}
COLUMN = "columns"
PATHS |= {
    "/api/columns": {
        "get": _op("listColumns", "Columns", _ok("ColumnList"), tag=COLUMN),
        "post": _op("createColumn", "Create a column (editors)", _ok("Column", "201", "Created", location=True),
                    errors=("400", "415"), body="ColumnCreate", params=WRITE, tag=COLUMN),
    },
    "/api/columns/{column_id}": {
        "get": _op("getColumn", "One column", _ok("Column"), errors=("404",), params=("column_id",), tag=COLUMN),
        "patch": _op("updateColumn", "Change a column (editors)", _ok("Column"), errors=("400", "404", "415"),
                     body="ColumnUpdate", params=("column_id", *WRITE), tag=COLUMN),
        "delete": _op("deleteColumn", "Delete a column that has no items (editors)", NO_CONTENT,
                      errors=("404", "409"), params=("column_id", *WRITE), tag=COLUMN),
    },
    "/api/columns/{column_id}/slots": {
        "get": _op("listColumnSlots", "The column's slots in a range, open or filled", _ok("SlotList"),
                   errors=("400", "404"), params=("column_id", "start", "end"), tag=COLUMN),
        "post": _op("fillSlot", "Fill an open slot with a numbered, themed draft",
                    _ok("Item", "201", "Created", location=True), errors=("400", "404", "409", "415"),
                    body="FillRequest", params=("column_id", *WRITE), tag=COLUMN),
    },
    "/api/slots": {
        "get": _op("listSlots", "Every active column's slots in a range, in time order", _ok("SlotList"),
                   errors=("400",), params=("start", "end", "slot_column_filter"), tag=COLUMN),
    },
}
# --- the approval workflow, item formats and the media library (publisher/workflow.py, media.py) ---------
_ITEM_EXTRA: dict[str, Any] = {
    "planned_at": _nullable({**TIME, "description": "its place on the calendar (the column slot it fills)"}),
    "issue_number": {"type": ["integer", "null"], "description": "final, given at first publication"},
    "theme": TEXT,
    "cover_id": {"type": ["integer", "null"], "description": "article: cover image (a media id)"},
    "file_id": {"type": ["integer", "null"], "description": "video/audio: the uploaded file (a media id)"},
    "media_ids": {"type": "array", "items": {"type": "integer"}, "description": "image: the images, in order"},
    "link_url": {"type": "string", "description": "video/audio: a link instead of (or besides) a file"},
    "duration_seconds": {"type": ["integer", "null"], "description": "video/audio"},
    "event_start": _nullable(TIME), "event_end": _nullable(TIME),
    "event_place": TEXT, "event_url": {"type": "string", "description": "event: online link"},
}
SCHEMAS["Item"]["properties"] |= {
    **_ITEM_EXTRA,
    "predicted_issue_number": {"type": ["integer", "null"],
                               "description": "GET /api/items/{item_id} only: the number it will get"},
    "review": _obj({"reviewed_by_id": {"type": ["integer", "null"]}, "reviewed_at": _nullable(TIME),
                    "comment": {"type": "string", "description": "the last review's comment (why it was sent back)"}}),
}
SCHEMAS["Item"]["required"] += [*_ITEM_EXTRA, "review"]
_ITEM_WRITE = {
    **{k: v for k, v in _ITEM_EXTRA.items() if k != "issue_number"},
    "planned_at": {"type": ["string", "null"], "format": "date-time",
                   "description": "with its UTC offset; moving it moves the waiting deliveries"},
    "event_start": {"type": ["string", "null"], "format": "date-time", "description": "with its UTC offset"},
    "event_end": {"type": ["string", "null"], "format": "date-time", "description": "with its UTC offset"},
}
SCHEMAS["ItemCreate"]["properties"] |= _ITEM_WRITE
SCHEMAS["ItemUpdate"]["properties"] |= _ITEM_WRITE
SCHEMAS["ItemEvent"] = _obj({
    "id": ID, "at": TIME, "user_id": {"type": ["integer", "null"]},
    "action": {"type": "string", "description": "created, edited, submitted, approved, sent_back, scheduled, "
               "republished, back_to_review …"},
    "changes": {"type": "object", "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
                "description": "field: [before, after]"},
    "comment": TEXT,
})
SCHEMAS["ItemEventList"] = _list("ItemEvent")
SCHEMAS["ReviewComment"] = _obj({"comment": {"type": "string"}}, required=[], closed=True)
SCHEMAS["SendBack"] = _obj({"comment": {"type": "string", "minLength": 1, "description": "the author reads it"}},
                           closed=True)
SCHEMAS["Media"] = _obj({
    "id": ID, "kind": {"enum": ["image", "audio", "video"]},
    "content_type": {"type": "string", "description": "detected from the content, never from the name"},
    "size": {"type": "integer"}, "sha256": TEXT,
    "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
    "original_name": TEXT, "url": {"type": "string", "description": "public address of the file"},
    "uploaded_by_id": {"type": ["integer", "null"]}, "created_at": TIME,
})
SCHEMAS["MediaPage"] = _list("Media", paged=True)
PARAMETERS["media_id"] = _param("media_id", "path", ID, "the file's id", required=True)
PARAMETERS["media_kind"] = _param("kind", "query", {"enum": ["image", "audio", "video"]}, "only files of this kind")
for _action, _summary, _body in (
    ("submit", "Submit a draft for review", None),
    ("approve", "Approve an item in review (reviewers, admins); scheduled when it has deliveries", "ReviewComment"),
    ("send-back", "Send an item in review back to its author with a comment (reviewers, admins)", "SendBack"),
):
    _op_id = "".join(w.capitalize() for w in _action.split("-"))
    PATHS[f"/api/items/{{item_id}}/{_action}"] = {
        "post": _op(f"item{_op_id}", _summary, _ok("Item"), errors=("400", "404", "409", "415"), body=_body,
                    params=("item_id", *WRITE), tag=ITEM),
    }
PATHS["/api/items/{item_id}/republish"] = {
    "post": _op("itemRepublish", "Send a published item again, as new deliveries (editing never does)",
                _ok("DeliveryList", "201", "Scheduled"), errors=("400", "404", "409", "415"), body="ScheduleRequest",
                params=("item_id", *WRITE), tag=ITEM),
}
PATHS["/api/items/{item_id}/history"] = {
    "get": _op("itemHistory", "Who did what to the item, and what changed", _ok("ItemEventList"),
               errors=("404",), params=("item_id",), tag=ITEM),
}
_upload = _op("uploadMedia", "Upload a file (checked by content; the same bytes again give the existing file)",
              {**_ok("Media", "201", "Created", location=True), **_ok("Media", "200", "Already in the library")},
              errors=("400", "413"), params=WRITE, tag="media")
_upload["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": _obj(
    {"file": {"type": "string", "contentMediaType": "application/octet-stream",
              "description": "JPEG, PNG, GIF, WebP ≤ 20 MB and 40 megapixels; MP3, M4A, OGG, WAV ≤ 100 MB; "
                             "MP4, MOV, WebM ≤ 500 MB"}})}}}
PATHS["/api/media"] = {
    "get": _op("listMedia", "The media library, newest first", _ok("MediaPage"), errors=("400",),
               params=("media_kind", *PAGING), tag="media"),
    "post": _upload,
}
PATHS["/api/media/{media_id}"] = {
    "get": _op("getMedia", "One file", _ok("Media"), errors=("404",), params=("media_id",), tag="media"),
    "delete": _op("deleteMedia", "Delete a file no item or column uses", NO_CONTENT, errors=("404", "409"),
                  params=("media_id", *WRITE), tag="media"),
}
ERRORS.setdefault("413", "The upload is larger than the limit for its kind.")

_COUNT = {"type": "integer", "minimum": 0}
SCHEMAS["QueueHealth"] = _obj({
    "checked_at": TIME,
    "redis": _obj({"ok": {"type": "boolean"}, "error": {**NULL_TEXT, "description": "why Redis cannot be reached"}}),
    "queue": _nullable(_obj({
        "name": TEXT, "waiting": {**_COUNT, "description": "jobs waiting for a worker"},
        "running": {**_COUNT, "description": "jobs a worker has started"}, "failed": {**_COUNT, "description":
                                                                                      "jobs that raised"},
    })),
    "failed_jobs": {"type": "array", "description": "the newest failed jobs", "items": _obj({
        "id": TEXT, "ended_at": _nullable(TIME), "error": {"type": "string", "description": "the error's last line"},
    })},
    "workers": {"type": "array", "items": _obj({
        "name": TEXT, "state": TEXT, "current_job": NULL_TEXT, "last_heartbeat": _nullable(TIME),
        "birth": _nullable(TIME), "stale": {"type": "boolean", "description": "no heartbeat within its TTL"},
    })},
    "schedulers": {"type": "array", "description": "schedulers whose heartbeat has not run out", "items": _obj({
        "name": TEXT, "last_beat": _nullable(TIME), "ttl": {"type": ["number", "null"]},
    })},
    "deliveries": _obj({
        "due": {**_COUNT, "description": "due now and not claimed yet, on enabled channels and sendable items"},
        "held": {**_COUNT, "description": "due, but the channel is off or the item is not approved"},
        "oldest_due_at": _nullable(TIME),
        "lag_seconds": {"type": ["number", "null"], "description": "how late the oldest due delivery is"},
        "by_status": {"type": "object", "additionalProperties": _COUNT,
                      "propertyNames": {"enum": list(DeliveryStatus)}},
    }),
})
PATHS["/api/queue"] = {
    "get": _op("getQueueHealth", "Queue health (admins): jobs, workers, schedulers and due deliveries; "
               "`queue` is null and `redis.ok` false when Redis cannot be reached", _ok("QueueHealth"),
               tag=DELIVERY),
}
PATHS["/api/openapi.json"] = {
    "get": {"operationId": "openapi", "summary": "This document (no login needed)", "tags": ["meta"],
            "security": [], "responses": {"200": {"description": "OpenAPI 3.1",
                                                  "content": {JSON: {"schema": {"type": "object"}}}},
                                          "429": _error("429")}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "publisher API",
            "version": "1",
            "description": "Plan items, schedule them on channels and follow their deliveries. "
                           "Authenticate with `Authorization: Bearer <token>` (create one on the API tokens page "
                           "or with `publisher tokens create`) or with a logged-in browser session, which must "
                           "send the X-CSRFToken header on writes. Times are ISO 8601 with an offset.",
        },
        "security": [{"bearer": []}, {"session": []}],
        "tags": [{"name": ITEM}, {"name": CHANNEL}, {"name": DELIVERY}, {"name": CALENDAR}, {"name": COLUMN},
                 {"name": "media"}, {"name": "meta"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": {
                f"E{status}": {"description": text, "content": {JSON: {"schema": _ref("Error")}}}
                for status, text in ERRORS.items()
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (pub_…)"},
                "session": {"type": "apiKey", "in": "cookie", "name": current_app.config["SESSION_COOKIE_NAME"],
                            "description": "the browser session after logging in at /login"},
            },
        },
    }
