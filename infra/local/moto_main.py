"""`python -m infra.local.moto_main`: moto's server, with Kinesis' sequence numbers made safe under concurrency.

moto 5 gives a record the shard's highest sequence number plus one without a lock ("this function is not safe
for concurrency", says its source) while its server answers on several threads: two writers racing on one shard
may get the same number, and the second record silently replaces the first, both acknowledged. bench.load saw
a few dozen of 8,491 collector events vanish that way. Real Kinesis never does this, so the emulator is patched
here, before it serves, rather than the product worked around it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.kinesis.models import Shard
from moto.server import main


def _serialized_put_record() -> None:
    lock = threading.Lock()
    put_record = Shard.put_record

    @functools.wraps(put_record)
    def locked(self: Shard, *args: Any, **kwargs: Any) -> str:
        with lock:
            return put_record(self, *args, **kwargs)

    Shard.put_record = locked  # type: ignore[method-assign]


if __name__ == "__main__":
    _serialized_put_record()
    main()
