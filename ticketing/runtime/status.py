"""`ticketing status`: where the event store, the stream and each process stand, and the lag;
a process that cannot make progress (an event it cannot apply, a full disk) is `failing`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client

from projections.relay import last_published_position
from replay.stream import published_after
from ticketing.home import serving_pid
from ticketing.nats.connect import NatsUnavailableError, connect, resolve_endpoint
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.supervisor import supervised_children
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication


def store_position(app: TicketingApplication, after: int) -> dict[str, Any]:
    """The last event the store holds and how many events come after `after`."""
    unpublished, last = published_after(app, after)
    return {"last_notification_id": last, "unpublished": unpublished}


async def discover_processes(nc: Client, wait: float = 0.5) -> list[dict[str, Any]]:
    """Ask every `nats.micro` service for its stats and collect the answers for `wait` s."""
    inbox = nc.new_inbox()
    answers: list[dict[str, Any]] = []

    async def collect(msg: Any) -> None:
        answers.append(json.loads(msg.data))

    sub = await nc.subscribe(inbox, cb=collect)
    await nc.publish("$SRV.STATS", b"", reply=inbox)
    await asyncio.sleep(wait)
    await sub.unsubscribe()
    return sorted(answers, key=lambda a: (a.get("name", ""), a.get("id", "")))


async def gather_status(settings: Settings, app: TicketingApplication) -> dict[str, Any]:
    status: dict[str, Any] = {"home": str(settings.home), "event_store": settings.event_store}
    embedded = EmbeddedNats(settings.home)
    status["nats"] = {
        "url": settings.nats_url or embedded.running_url(),
        "embedded": not settings.nats_url,
        "reachable": False,
    }
    position = 0
    try:
        nc = await connect(
            resolve_endpoint(settings), "admin", name="ticketing-status", reconnect_forever=False
        )
    except NatsUnavailableError as error:
        status["nats"]["error"] = str(error)
        nc = None
    if nc is not None:
        status["nats"]["reachable"] = True
        try:
            sequence, position = await last_published_position(nc.jetstream(timeout=2))
            status["stream"] = {
                "name": "TICKETING",
                "last_sequence": sequence,
                "last_notification_id": position,
            }
        except Exception as error:  # a missing stream is a status, not a crash
            status["stream"] = {"name": "TICKETING", "error": str(error)}
        status["processes"] = [
            {
                "name": a.get("name"),
                "id": a.get("id"),
                "version": a.get("version"),
                "endpoints": len(a.get("endpoints") or []),
                "stats": _process_stats(a),
            }
            for a in await discover_processes(nc)
        ]
        await nc.close()
    last_sequence = status.get("stream", {}).get("last_sequence")
    for process in status.get("processes", []):
        position_reached = process["stats"].get("position")
        consumer = str(process["name"]) != "ticketing-relay" and position_reached is not None
        if consumer and last_sequence is not None:  # projectors and automation workers
            process["lag_events"] = max(0, last_sequence - int(position_reached or 0))
        process["state"] = process_state(process["stats"])
    status["failing"] = [
        {"name": p["name"], "id": p["id"], "error": p["stats"].get("last_error")}
        for p in status.get("processes", [])
        if p["state"] == "failing"
    ]
    children = supervised_children(settings.home)
    if children is not None:  # `ticketing serve` runs here: a child that keeps exiting (a
        # damaged projection file, a bad setting) never answers above, so it is named here
        status["serve"] = {"pid": serving_pid(settings.home), "children": children}
        status["failing"] += [
            {"name": c["name"], "id": f"pid {c['pid']}", "error": c["last_error"]}
            for c in children
            if c["failing"]
        ]
    store = await asyncio.to_thread(store_position, app, position)
    status["store"] = {"last_notification_id": store["last_notification_id"]}
    known = "last_notification_id" in status.get("stream", {})
    status["relay_lag_events"] = store["unpublished"] if known else None
    return status


async def projector_failures(settings: Settings, wait: float = 0.5) -> dict[str, str]:
    """`{durable: last_error}` of every running process that reports it is failing; {} when
    NATS cannot be reached (a best-effort look, for `verify projections`)."""
    try:
        nc = await connect(
            resolve_endpoint(settings),
            "admin",
            name="ticketing-verify",
            connect_timeout=2.0,
            reconnect_forever=False,
        )
    except Exception:  # no server, no credentials: nothing running to ask
        return {}
    try:
        answers = await discover_processes(nc, wait)
    finally:
        await nc.close()
    failing = {}
    for answer in answers:
        stats = _process_stats(answer)
        if process_state(stats) == "failing":
            name = str(answer.get("name", "")).removeprefix("ticketing-")
            failing[name] = str(stats.get("last_error"))
    return failing


def process_state(stats: dict[str, Any]) -> str:
    """`failing` while a process cannot make progress (it reports since when), else `ok`."""
    return "failing" if stats.get("failing_since") is not None else "ok"


def failing_summary(report: dict[str, Any]) -> str | None:
    """One line naming every failing process and its error; None when none is failing."""
    failing = report.get("failing") or []
    if not failing:
        return None
    return "; ".join(f"{f['name']} ({f['id']}): {f['error']}" for f in failing)


def _process_stats(answer: dict[str, Any]) -> dict[str, Any]:
    endpoints = answer.get("endpoints") or []
    requests = sum(int(e.get("num_requests", 0)) for e in endpoints)
    data = [e.get("data") for e in endpoints if e.get("data")]
    return {"requests": requests, **(data[0] if data else {})}
