"""One loader for the sample events in events/: the same files `sam local invoke` would use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return data


def restamp_kinesis(event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Move every decodable record's `ts` to now: the sample's fixed date would age past the retention."""
    stamp = (now or datetime.now(UTC)).isoformat()
    for record in event["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if "ts" in body:
            body["ts"] = stamp
            record["kinesis"]["data"] = base64.b64encode(json.dumps(body).encode()).decode()
    return event
