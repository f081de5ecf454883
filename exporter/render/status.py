"""The operator's status page (`/`) and its JSON twins (`/api/v1/devices`, `/api/v1/inverters`):
every device with its ids, model, last poll result, data age, next poll and current values;
`?user_id=` shows one home (a user) with all its devices.

Filtering, sorting and paging happen on the server, so 10,000 rows stay fast; the page has
no external assets and escapes every string that came from the API or the config.
"""

from __future__ import annotations

import functools
import html
import json
import math
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from exporter import __version__
from exporter.base.clock import Clock
from exporter.kinds import registry
from exporter.kinds.kind import Column, Kind
from exporter.render.collector import fresh_at
from exporter.state.store import DeviceState, ReadingStore
from exporter.state.targets import DeviceTarget, Inventory, authenticated

PAGE_SIZE = 100
MAX_LIMIT = 1000
# Status requests built at once; more wait briefly, then get 503 (scrapes never wait).
MAX_CONCURRENT = 2
# The values a person checks are each kind's columns (exporter/kinds): a JSON key, a
# heading, how to show it, and the family whose API field and unit conversion the page
# shares. A key shared by kinds is one column (an inverter's home battery and an EV's level).


def value_columns() -> tuple[Column, ...]:
    """Every kind's columns, each key once, in the registry's order."""
    return _value_columns(registry.kinds())


def value_keys() -> tuple[str, ...]:
    return _value_keys(registry.kinds())


# Per set of registered kinds: rows are built per device and request, the kinds rarely change.
@functools.lru_cache(maxsize=8)
def _value_columns(kinds: tuple[Kind, ...]) -> tuple[Column, ...]:
    return tuple({c.key: c for k in kinds for c in k.columns}.values())


@functools.lru_cache(maxsize=8)
def _value_keys(kinds: tuple[Kind, ...]) -> tuple[str, ...]:
    return tuple(c.key for c in _value_columns(kinds))


SEARCHED = (
    "name",
    "device_id",
    "org_id",
    "user_id",
    "owner",
    "manufacturer",
    "model",
    "status",
    "last_error",
    "lifecycle_state",
    "connection_status",
)
# (column key, heading, how to show a value)
LEADING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("name", "Name", "text"),
    ("kind", "Kind", "text"),
    ("device_id", "Device / user / org", "ids"),
    ("manufacturer", "Manufacturer / model", "model"),
    ("status", "Last poll", "status"),
    ("data_age_seconds", "Data age", "age"),
    ("next_poll_in_seconds", "Next poll", "age"),
)


def columns() -> tuple[tuple[str, str, str], ...]:
    """The table's columns: who and how, then every kind's values (a hidden one, like the EV's
    charging, is shown inside another's cell)."""
    values = tuple((c.key, c.heading, c.show) for c in value_columns() if c.show != "hidden")
    return (*LEADING_COLUMNS, *values)


NUMERIC = frozenset({"watts", "percent", "celsius", "number", "age"})


def base_row(state: DeviceState) -> dict[str, Any]:
    """What the status page shows of one device that does not depend on the time of the
    request; built once per change of the device's state."""
    target, reading, inventory = state.target, state.reading, state.target.inventory
    status = "never polled" if not state.polled else ("ok" if state.up else "failed")
    if not target.polled:
        status = INVENTORY_ONLY
    row: dict[str, Any] = {
        "name": target.name,
        "kind": target.kind,
        "device_id": target.device_id,
        "user_id": target.user_id,
        "org_id": target.org_id,
        "owner": inventory.owner if inventory else None,
        "discovered": target.discovered,
        "manufacturer": inventory.manufacturer if inventory else None,
        "model": inventory.model if inventory else None,
        "lifecycle_state": inventory.lifecycle_state if inventory else None,
        "connection_status": inventory.connection_status if inventory else None,
        "authenticated": _authenticated(target),
        "action_needed": _action_needed(inventory),
        "actions": list(inventory.actions or ()) if inventory else [],
        "status": status,
        "last_error": state.last_error,
        "last_poll": state.last_poll,
        "last_success": state.last_success,
        "data_time": reading.time if reading else None,
        "next_poll": state.next_poll,
    }
    row.update(dict.fromkeys(["_" + key for key in value_keys()]))
    kind = registry.find(target.kind)
    for column in kind.columns if kind else ():
        family = column.family
        value = reading.values.get(family.field or "") if reading else None
        row["_" + column.key] = None if value is None else family.convert(value)
    return row


INVENTORY_ONLY = "inventory only"  # the status of a device without data to poll (a wallbox)


def _authenticated(target: DeviceTarget) -> bool | None:
    """As podero_device_authenticated."""
    inventory = target.inventory
    if inventory is None:
        return None
    return authenticated(inventory)


def _action_needed(inventory: Inventory | None) -> bool | None:
    """An inverter's action_needed; for the other kinds, whether an action is open."""
    if inventory is None:
        return None
    if inventory.action_needed is not None or inventory.actions is None:
        return inventory.action_needed
    return bool(inventory.actions)


def _fresh(row: dict[str, Any], now: float, max_age: float) -> bool:
    return fresh_at(row["data_time"], now, max_age)


def finished_row(row: dict[str, Any], now: float, max_age: float) -> dict[str, Any]:
    """A base row with what depends on now: ages, freshness, and values only while fresh."""
    fresh = _fresh(row, now, max_age)
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    data_time, next_poll = row["data_time"], row["next_poll"]
    out["data_age_seconds"] = round(now - data_time, 1) if data_time is not None else None
    out["data_fresh"] = fresh
    out["next_poll_in_seconds"] = round(next_poll - now, 1) if next_poll else None
    for key in value_keys():
        out[key] = row["_" + key] if fresh else None
    return out


def needs_attention(row: dict[str, Any], now: float, max_age: float) -> bool:
    """A row for the "only problems" filter: failing, stale or no data, not authenticated,
    or action needed."""
    polled = row["status"] != INVENTORY_ONLY
    return (
        (polled and row["status"] != "ok")
        or (polled and not _fresh(row, now, max_age))
        or row["authenticated"] is False
        or bool(row["action_needed"])
    )


class BadQuery(ValueError):
    """A request parameter that cannot mean anything (HTTP 400); the message names it and
    does not repeat the value."""


def _user_id(value: str) -> str:
    """A user id parameter as the targets spell it (a lowercase UUID); "" for none."""
    if not value:
        return ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadQuery(
            "user_id is not a UUID (expected e.g. 6f1c0000-0000-4000-8000-000000000000)"
        ) from None


@dataclass(frozen=True)
class Query:
    """Filter, sort order and page of a status request."""

    q: str = ""
    sort: str = "name"
    desc: bool = False
    offset: int = 0
    limit: int = PAGE_SIZE
    problems: bool = False
    kind: str = ""  # only devices of this kind ("": every kind)
    user_id: str = ""  # only this home's devices ("": every home)

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1 if self.limit else 1

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """From request parameters: `q`, `sort`, `order`, `limit` (1 to 1,000), `offset` or
        `page`, `problems=1`, `kind`; anything malformed falls back to the default, except a
        `user_id` that is not a UUID (BadQuery: showing every home instead would mislead)."""
        sort = params.get("sort", "name")
        if not any(sort == key for key, _, _ in columns()) and sort not in ("org_id", "user_id"):
            sort = "name"
        limit = min(MAX_LIMIT, max(1, _int(params.get("limit"), PAGE_SIZE)))
        offset = max(0, _int(params.get("offset"), 0))
        if "page" in params and "offset" not in params:
            offset = (max(1, _int(params.get("page"), 1)) - 1) * limit
        return cls(
            params.get("q", "")[:200],
            sort,
            params.get("order") == "desc",
            min(offset, 10_000_000),
            limit,
            params.get("problems") in ("1", "true", "yes"),
            params.get("kind", "")[:40],
            _user_id(params.get("user_id", "")),
        )

    def link(self, **changes: str | int) -> str:
        """The query string of this query with `changes`, without empty parameters."""
        params = {
            "q": self.q,
            "kind": self.kind,
            "user_id": self.user_id,
            "sort": self.sort,
            "order": "desc" if self.desc else "asc",
            **changes,
        }
        return urlencode({k: v for k, v in params.items() if v != ""})


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _sort_value(row: dict[str, Any], key: str, now: float, max_age: float) -> Any:
    """The value a base row sorts by, as the finished row would show it."""
    if key == "data_age_seconds":
        return None if row["data_time"] is None else now - row["data_time"]
    if key == "next_poll_in_seconds":
        return None if not row["next_poll"] else row["next_poll"] - now
    if "_" + key in row:
        return row["_" + key] if _fresh(row, now, max_age) else None
    value = row[key]
    return value.lower() if isinstance(value, str) else value


def select(
    rows: list[dict[str, Any]], query: Query, now: float, max_age: float
) -> tuple[list[dict[str, Any]], int]:
    """The base rows matching the filter, sorted, and the finished rows of the page asked
    for; and how many matched."""
    if query.user_id:
        rows = in_home(rows, query.user_id)
    if query.kind:
        rows = [r for r in rows if r["kind"] == query.kind]
    needle = query.q.strip().lower()
    if needle:
        rows = [r for r in rows if any(needle in str(r[k] or "").lower() for k in SEARCHED)]
    if query.problems:
        rows = [r for r in rows if needs_attention(r, now, max_age)]
    keyed = [(_sort_value(r, query.sort, now, max_age), r) for r in rows]
    present = [kr for kr in keyed if kr[0] is not None]
    missing = [kr for kr in keyed if kr[0] is None]
    present.sort(key=lambda kr: kr[0], reverse=query.desc)
    ordered = present + missing  # rows without the value go last either way
    page = ordered[query.offset : query.offset + query.limit]
    return [finished_row(r, now, max_age) for _, r in page], len(ordered)


def in_home(rows: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    """The rows of one home's devices (a home is a user)."""
    return [r for r in rows if r["user_id"] == user_id]


def home_of(rows: list[dict[str, Any]], user_id: str) -> dict[str, Any]:
    """What the home view says of a home, from its devices' base rows: ids, owner (the
    customer's external id or e-mail name, where an inventory has it), devices per kind."""
    kinds = dict.fromkeys(registry.names(), 0)
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    return {
        "user_id": user_id,
        "org_ids": sorted({r["org_id"] for r in rows}),
        "owner": next((r["owner"] for r in rows if r["owner"]), None),
        "devices": len(rows),
        "kinds": kinds,
        "reporting": sum(1 for r in rows if r["status"] == "ok"),
        "polled": sum(1 for r in rows if r["status"] != INVENTORY_ONLY),
    }


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 90:
        return f"{sign}{s:.0f} s"
    if s < 5400:
        return f"{sign}{s / 60:.0f} min"
    if s < 172800:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"


def _cell(kind: str, row: dict[str, Any], key: str) -> str:
    e = html.escape
    value = row[key]
    if kind == "ids":
        home = e(urlencode({"user_id": row["user_id"]}))
        return (
            f"<code>{e(row['device_id'])}</code><br><small>user <a class=home "
            f"href='?{home}'><code>{e(row['user_id'])}</code></a><br>"
            f"org <code>{e(row['org_id'])}</code></small>"
        )
    if kind == "model":
        parts = [p for p in (row["manufacturer"], row["model"]) if p]
        flags = []
        if row["authenticated"] is False:
            flags.append("<b class=bad>not authenticated</b>")
        if row["action_needed"]:
            flags.append("<b class=bad>action needed</b>")
        return e(" ".join(parts) or "-") + ("<br>" + " ".join(flags) if flags else "")
    if kind == "status":
        css = {"ok": "ok", "failed": "bad"}.get(row["status"], "")
        text = f"<span class={css or 'muted'}>{e(row['status'])}</span>"
        if row["last_error"]:
            text += f"<br><small class=bad>{e(row['last_error'])}</small>"
        return text + f"<br><small class=muted>{e(_when(row['last_poll']))}</small>"
    if kind == "plug":  # an EV's plug with its charging, which implies plugged in
        if row["charging"]:
            return "charging"
        if value is not None:
            return "plugged in" if value else "unplugged"
        if row["charging"] is not None:
            return "not charging"
    if value is None:
        return "<span class=muted>-</span>"
    if kind == "age":
        stale = key == "data_age_seconds" and not row["data_fresh"]
        return f"<span class={'bad' if stale else ''}>{e(_duration(value))}</span>"
    if kind == "watts":
        return f"{value:,.0f} W"
    if kind == "percent":
        return f"{value * 100:.0f} %"
    if kind == "celsius":
        return f"{value:.1f} °C"
    if kind == "number":
        return f"{value:g}"
    return e(str(value))


STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
header p{margin:.2em 0;color:#555}
table{border-collapse:collapse;width:100%;margin-top:1em}
th,td{border-bottom:1px solid #ddd;padding:.35em .4em;text-align:left;vertical-align:top}
th a{color:inherit;text-decoration:none}th a:hover{text-decoration:underline}
td.num{text-align:right;white-space:nowrap}td.ids{white-space:nowrap}td.ids code{font-size:10px}
td:first-child{min-width:9em;max-width:16em;overflow-wrap:anywhere}
code{font-size:11px}.ok{color:#17803d}.bad{color:#b42318}.muted{color:#888}
input[type=search]{font:inherit;padding:.3em .5em;width:24em}
nav{margin-top:1em}nav a{margin-right:1em}
#home{margin-top:1em;padding:.6em 1em;background:#f4f6f8;border-radius:6px}
#home h2{font-size:1.2em;margin:0 0 .2em}#home p{margin:.2em 0}
"""
SCRIPT = """
const box=document.getElementById('q');let timer;
box.addEventListener('input',()=>{clearTimeout(timer);
timer=setTimeout(()=>box.form.submit(),350);});
const kind=document.getElementById('kind');
kind.addEventListener('change',()=>kind.form.submit());
"""


def _home_title(home: dict[str, Any]) -> str:
    return html.escape(f"Home {home['owner'] or home['user_id']}")


def _counted(kind: str, n: int) -> str:
    """`heat_pump` as counted: `heat pump`, `heat pumps`, `wallboxes`."""
    name = kind.replace("_", " ")
    return name if n == 1 else name + ("es" if name.endswith("x") else "s")


def _home_html(home: dict[str, Any]) -> str:
    """The home view's section: whose home, its organization, its devices per kind."""
    e = html.escape
    orgs = ", ".join(f"<code>{e(org)}</code>" for org in home["org_ids"]) or "-"
    kinds = " · ".join(
        f"<span data-kind='{e(kind)}'><b>{n}</b> {e(_counted(kind, n))}</span>"
        for kind, n in home["kinds"].items()
    )
    owner = e(home["owner"]) if home["owner"] else "<span class=muted>unknown</span>"
    return (
        f"<section id=home><h2>{_home_title(home)}</h2>"
        f"<p>user <code>{e(home['user_id'])}</code> · org {orgs} · owner <b id=owner>{owner}"
        "</b> · <a href='./'>all devices</a></p>"
        f"<p id=kinds>{kinds} · {home['reporting']} of {home['polled']} reporting</p>"
        + ("" if home["devices"] else "<p class=bad>No device of this home is known.</p>")
        + "</section>"
    )


@dataclass(frozen=True)
class Header:
    """The facts at the top of the page."""

    started: float
    token_expiry: float | None
    last_inventory: float | None
    discovery: bool


class Busy(Exception):
    """Every status slot is taken: the client should retry shortly (HTTP 503)."""


class StatusView:
    """The status page and JSON API over a snapshot of the store: one base row per inverter,
    updated only for the inverters that changed; a request filters, sorts and pages that
    snapshot and finishes only the rows of its page. At most MAX_CONCURRENT requests are
    built at once, so status clients cannot crowd out scrapes."""

    def __init__(
        self,
        store: ReadingStore,
        clock: Clock,
        max_age: Callable[[], float],
        header: Callable[[], Header],
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age
        self._header = header
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._epoch, self._seq = -1, -1
        self._rows: dict[str, dict[str, Any]] = {}

    def snapshot(self) -> list[dict[str, Any]]:
        """Every inverter's base row, brought up to date with the store's changes."""
        with self._lock:
            epoch, seq, changed = self._store.changes_since(self._epoch, self._seq)
            if changed is None:
                epoch, seq, states = self._store.epoch_snapshot()
                self._rows = {s.target.device_id: base_row(s) for s in states}
            else:
                for state in changed:
                    self._rows[state.target.device_id] = base_row(state)
            self._epoch, self._seq = epoch, seq
            return list(self._rows.values())

    def _slot(self) -> threading.BoundedSemaphore:
        if not self._slots.acquire(timeout=1.0):
            raise Busy()
        return self._slots

    def json(self, params: Mapping[str, str], devices: bool = False) -> bytes:
        """`/api/v1/inverters`: one page of the (filtered, sorted) inverters; with `devices`,
        `/api/v1/devices`: of every kind (`kind=` filters); with `user_id=`, one home's
        devices and the home itself. Raises Busy, or BadQuery for a malformed user_id."""
        query = Query.parse(params)
        if not devices:
            query = replace(query, kind="inverter")
        slot = self._slot()
        try:
            snapshot = self.snapshot()
            rows, total = select(snapshot, query, self._clock.time(), self._max_age())
            body: dict[str, Any] = {"total": total, "offset": query.offset, "limit": query.limit}
            if query.user_id:
                body["home"] = home_of(in_home(snapshot, query.user_id), query.user_id)
            return json.dumps({**body, "devices" if devices else "inverters": rows}).encode()
        finally:
            slot.release()

    def html(self, params: Mapping[str, str]) -> bytes:
        """`/`: the status page, or with `user_id=` one home's; raises Busy or BadQuery."""
        slot = self._slot()
        try:
            return self._html(Query.parse(params))
        finally:
            slot.release()

    def _html(self, query: Query) -> bytes:
        all_rows = self.snapshot()
        now, max_age = self._clock.time(), self._max_age()
        rows, total = select(all_rows, query, now, max_age)
        head, e = self._header(), html.escape
        polls = [r["last_poll"] for r in all_rows if r["last_poll"]]
        up = sum(1 for r in all_rows if r["status"] == "ok")
        polled = sum(1 for r in all_rows if r["status"] != INVENTORY_ONLY)
        home = home_of(in_home(all_rows, query.user_id), query.user_id) if query.user_id else None
        expiry = head.token_expiry
        token = (
            "no token yet"
            if expiry is None
            else (f"expires {_when(expiry)} (in {_duration(expiry - now)})")
        )
        parts = [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            "<meta name=viewport content='width=device-width,initial-scale=1'>",
            f"<title>{_home_title(home) + ' · ' if home else ''}Podero exporter</title><style>",
            STYLE,
            "</style></head><body><header>",
            "<h1>Podero exporter</h1>",
            f"<p>Version {e(__version__)} · up {e(_duration(now - head.started))} · "
            f"<a href='metrics'>/metrics</a> · <a href='api/v1/devices'>JSON</a></p>",
            f"<p>{up} of {polled} devices reporting · access token {e(token)}</p>",
            f"<p>Last poll {e(_when(max(polls) if polls else None))} · "
            f"{'discovery' if head.discovery else 'inventory'} {e(_when(head.last_inventory))}"
            "</p></header>",
            _home_html(home) if home else "",
            "<form method=get><input type=search id=q name=q placeholder='Filter by name, id, "
            f"owner, model, error…' value='{e(query.q)}' autocomplete=off>",
            f"<input type=hidden name=sort value='{e(query.sort)}'>",
            f"<input type=hidden name=order value='{'desc' if query.desc else 'asc'}'>",
            f"<input type=hidden name=user_id value='{e(query.user_id)}'>" if home else "",
            " <select id=kind name=kind><option value=''>every kind</option>",
            *(
                f"<option{' selected' if query.kind == k else ''}>{k}</option>"
                for k in registry.names()
            ),
            "</select>",
            f" <span id=count>{total} of {home['devices'] if home else len(all_rows)} devices"
            f"{' in this home' if home else ''}</span></form>",
            "<table id=inverters><thead><tr>",
        ]
        shown = columns()
        for key, heading, _ in shown:
            desc = query.sort == key and not query.desc
            link = query.link(sort=key, order="desc" if desc else "asc")
            arrow = (" ▼" if query.desc else " ▲") if query.sort == key else ""
            parts.append(f"<th><a href='?{e(link)}' data-sort='{key}'>{e(heading)}{arrow}</a></th>")
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append(
                f"<tr data-device-id='{e(row['device_id'])}' data-kind='{e(row['kind'])}'>"
            )
            for key, _, kind in shown:
                css = " class=num" if kind in NUMERIC else " class=ids" if kind == "ids" else ""
                parts.append(f"<td{css}>{_cell(kind, row, key)}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table><nav>")
        pages = max(1, math.ceil(total / query.limit))
        for label, page in (("« previous", query.page - 1), ("next »", query.page + 1)):
            if 1 <= page <= pages:
                parts.append(f"<a href='?{e(query.link(page=page))}'>{label}</a>")
        parts.append(f"<span>page {query.page} of {pages}</span></nav>")
        parts.append(f"<script>{SCRIPT}</script></body></html>")
        return "".join(parts).encode()
