"""No train/serve skew: the vectors serve computes from stored profiles equal the trainer's replay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from model_export.data.canonical import normalize
from model_export.data.catalog import build_catalog
from model_export.training.replay import feature_matrix, replay
from personalization.events import Context
from personalization.features import FEATURE_NAMES, feature_vector
from personalization.identity import pseudonymize
from tests.helpers.ingest import Ingest, real_events


def test_serve_vectors_from_stored_profiles_equal_the_trainers(ingest: Ingest) -> None:
    # Given real events, with the device and clock offset a tracker sends (REES46 has none: they are made up
    # here, a few per person, so that the device and time-of-day mixes are exercised), ingested through the
    # stream, the handler and DynamoDB
    devices = ["mobile", "desktop", "Tablet (iPad)", None, "smart-tv"]
    events = [
        event.model_copy(
            update={
                "context": Context(device=devices[n % 5], utc_offset_min=None if n % 7 == 0 else 60 * (n % 25 - 12))
            }
        )
        for n, event in enumerate(real_events(800))
    ]
    ingest.publish(events)
    ingest.poller().drain()

    # And the same events as the trainer reads them: a canonical event file
    frame = normalize(
        pd.DataFrame(
            {
                "user_id": [e.user_id for e in events],
                "item_id": [e.item_id for e in events],
                "event_type": [e.type.value for e in events],
                "timestamp": [e.ts for e in events],
                "category": [e.category for e in events],
                "price": [e.price for e in events],
                "quantity": [e.quantity for e in events],
                "session_id": [e.session_id for e in events],
                "device": [e.context.device for e in events],
                "utc_offset_min": [e.context.utc_offset_min for e in events],
            }
        )
    )
    trained = replay(frame)
    now_ms = int(max(e.ts for e in events).timestamp() * 1000) + 60_000
    # Serve compares prices with the published catalog's: the one the trainer builds from the same events
    catalog = build_catalog(frame)
    users, offline = feature_matrix(trained, now_ms, catalog)

    # When serve computes each user's vector from the profile it reads back from the table
    online = np.zeros_like(offline)
    for row, raw_user in enumerate(users):
        stored = ingest.profiles.get(pseudonymize(ingest.pepper, raw_user))
        assert stored is not None, raw_user
        online[row] = feature_vector(stored.profile, now_ms, catalog)

    # Then they are the same vectors, bit for bit, for every user (and the mixes and prices were exercised)
    assert len(users) > 100
    for name in ("share_mobile", "share_tablet", "share_morning", "share_evening", "viewed_price_index"):
        assert offline[:, FEATURE_NAMES.index(name)].any(), name
    differs = {
        FEATURE_NAMES[col]: (users[row], float(online[row, col]), float(offline[row, col]))
        for row, col in zip(*np.nonzero(online != offline), strict=True)
    }
    assert differs == {}
