"""The event collector: a Function URL that validates tracker events and writes them to the Kinesis stream."""
