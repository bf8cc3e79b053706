"""Data access: the only package that touches DynamoDB, S3, SSM or Kinesis."""
