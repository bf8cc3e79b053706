"""`python -m purge`: run the archive purge once, now (what the schedule does), for devops.

Run it with the purge function's environment (PROFILES_TABLE, ERASURE_LOG_TABLE, ARCHIVE_BUCKET, ...) and
credentials allowed what its role allows. Prints the run's receipt (counts only).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from purge.usecase import purge
from purge.wiring import purge_deps


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m purge", description="Rewrite the event archive without erased people's events."
    ).parse_args(argv)
    print(purge(purge_deps(), datetime.now(UTC)).model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
