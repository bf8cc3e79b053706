"""`python -m erase --user-id RAW` (or `--pseudonym HEX`): erase one person, for devops.

Run it with the erase function's environment (PROFILES_TABLE, QUARANTINE_TABLE, ERASURE_LOG_TABLE,
PEPPER_PARAMETER, ERASURE_TOMBSTONE_DAYS, ...) and credentials allowed what its role allows. `--user-id -`
reads the id from standard input, so it stays out of the shell history and the process list.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from erase.usecase import EraseRequest, InvalidEraseRequest, erase, parse_request
from erase.wiring import erase_deps
from personalization.privacy import ErasurePath


def _request(args: argparse.Namespace) -> EraseRequest:
    if args.user_id == "-":
        return parse_request({"user_id": sys.stdin.readline().rstrip("\r\n")})
    if args.user_id is not None:
        return parse_request({"user_id": args.user_id})
    return parse_request({"pseudonym": args.pseudonym})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erase", description="Erase one person's data (admin path).")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the raw user id the tracker sends ('-' reads it from stdin)")
    who.add_argument("--pseudonym", help="the 64-hex pseudonymous id, when the raw id is not known")
    args = parser.parse_args(argv)
    try:
        request = _request(args)
    except InvalidEraseRequest as exc:
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2
    record = erase(request, ErasurePath.ADMIN, erase_deps(), datetime.now(UTC))
    # The receipt names no one: it is safe in a ticket.
    print(record.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
