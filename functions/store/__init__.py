"""Data access: the only package that touches DynamoDB, S3, SSM or Kinesis."""


def forget_connections() -> None:
    """Drop every cached table binding (each pynamodb model class keeps its connection, endpoint included).

    A Lambda container never needs this; a process that moves from one local stack to another (a test session
    after the storefront's own stack) does, or its next read goes to the old stack's closed port.
    """
    from store.erasure_log import erasure_log_table
    from store.profiles import profile_table
    from store.quarantine import quarantine_table

    for cached in (profile_table, quarantine_table, erasure_log_table):
        cached.cache_clear()
