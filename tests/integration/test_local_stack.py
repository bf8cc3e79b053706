"""The loopback stack holds what template.yaml defines, answers real clients, resets and stops cleanly."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from infra.local.stack import LocalStack, LocalStackError
from infra.local.template import Template


def by_name(items: Sequence[Mapping[str, Any]], key: str) -> list[tuple[str, str]]:
    return sorted((item["AttributeName"], item[key]) for item in items)


def test_every_table_has_the_templates_key_schema_and_ttl(local_stack: LocalStack) -> None:
    dynamodb = local_stack.client("dynamodb")
    tables = local_stack.template.resources_of_type("AWS::DynamoDB::Table")
    assert tables, "template.yaml defines no tables"

    for logical_id, resource in tables.items():
        name = local_stack.physical_names[logical_id]
        described = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]

        assert described["TableStatus"] == "ACTIVE"
        assert by_name(described["KeySchema"], "KeyType") == by_name(resource.properties["KeySchema"], "KeyType")
        assert by_name(described["AttributeDefinitions"], "AttributeType") == by_name(
            resource.properties["AttributeDefinitions"], "AttributeType"
        )
        assert described["BillingModeSummary"]["BillingMode"] == resource.properties["BillingMode"]
        # Secondary indexes too (erasure finds a person's quarantined records and tombstones through them)
        assert {
            index["IndexName"]: (by_name(index["KeySchema"], "KeyType"), index["Projection"]["ProjectionType"])
            for index in described.get("GlobalSecondaryIndexes", [])
        } == {
            index["IndexName"]: (by_name(index["KeySchema"], "KeyType"), index["Projection"]["ProjectionType"])
            for index in resource.properties.get("GlobalSecondaryIndexes", [])
        }
        assert ttl == {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": resource.properties["TimeToLiveSpecification"]["AttributeName"],
        }
        assert local_stack.arns[logical_id] == described["TableArn"]


def test_stream_has_the_local_shard_count_and_round_trips_records(clean_stack: LocalStack) -> None:
    # Given the template's on-demand stream, created locally with a fixed shard count
    kinesis = clean_stack.client("kinesis")
    stream = clean_stack.physical_names["EventStream"]
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert len(shards) == clean_stack.shard_count == 2

    # When records with many partition keys are put
    records = [{"Data": f"event-{i}".encode(), "PartitionKey": f"user-{i}"} for i in range(20)]
    response = kinesis.put_records(StreamName=stream, Records=records)  # type: ignore[arg-type]
    assert response["FailedRecordCount"] == 0

    # Then every shard gets some, and reading all shards from the horizon returns them all
    used = {r["ShardId"] for r in response["Records"]}
    assert used == {s["ShardId"] for s in shards}
    seen: set[bytes] = set()
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        seen |= {r["Data"] for r in kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]}
    assert {r["Data"] for r in records} <= seen


def test_concurrent_writers_to_one_shard_lose_no_record(clean_stack: LocalStack) -> None:
    # Given writers racing on one shard (one partition key), as the collector's and serve's threads do
    stream = clean_stack.physical_names["EventStream"]
    writers, calls, per_call = 8, 25, 10
    # A long shard widens the emulator's read-then-write window (it scans for the highest sequence number).
    kinesis = clean_stack.client("kinesis")
    backlog = [{"Data": f"old-{n}".encode(), "PartitionKey": "one-user"} for n in range(500)]
    for _ in range(30):
        kinesis.put_records(StreamName=stream, Records=backlog)  # type: ignore[arg-type]

    def write(writer: int) -> int:
        kinesis = clean_stack.client("kinesis")  # a client per thread, as each process has its own
        acknowledged = 0
        for call in range(calls):
            records = [{"Data": f"{writer}-{call}-{n}".encode(), "PartitionKey": "one-user"} for n in range(per_call)]
            response = kinesis.put_records(StreamName=stream, Records=records)  # type: ignore[arg-type]
            acknowledged += len(records) - response["FailedRecordCount"]
        return acknowledged

    with ThreadPoolExecutor(writers) as pool:
        acknowledged = sum(pool.map(write, range(writers)))

    # Then every acknowledged record is on the stream, each under its own sequence number
    stored: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator: str | None = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            stored += [r["Data"] for r in page["Records"] if not r["Data"].startswith(b"old-")]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    assert acknowledged == writers * calls * per_call
    assert len(stored) == len(set(stored)) == acknowledged


def test_bucket_exists_with_versioning(local_stack: LocalStack) -> None:
    s3 = local_stack.client("s3")
    bucket = local_stack.physical_names["ArtifactBucket"]

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_ssm_parameters_hold_a_random_secret_readable_with_decryption(local_stack: LocalStack) -> None:
    ssm = local_stack.client("ssm")
    names = local_stack.secret_parameter_names
    assert set(names) == {"/personalization/pepper", "/personalization/identity-key"}

    for name in names:
        parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        assert parameter["Type"] == "SecureString"
        assert parameter["Value"] == local_stack.secret_values[name]
        assert len(parameter["Value"]) == 64
    assert len(set(local_stack.secret_values.values())) == len(names)


def test_function_env_points_at_the_local_resources(local_stack: LocalStack) -> None:
    env = local_stack.function_env("IngestFunction")

    assert env["PROFILES_TABLE"] == local_stack.physical_names["ProfilesTable"]
    assert env["PEPPER_PARAMETER"] == "/personalization/pepper"
    assert env["AWS_ENDPOINT_URL"] == local_stack.endpoint_url
    assert env["AWS_REGION"] == "us-east-1"


def test_plain_clients_reach_the_stack_through_the_environment_alone(stack_env: LocalStack) -> None:
    # Given only environment variables (no endpoint_url anywhere), as product code runs

    class Probe(Model):
        class Meta:
            table_name = stack_env.physical_names["QuarantineTable"]

        pk = UnicodeAttribute(hash_key=True)

    # When pynamodb and a default boto3 client are used
    Probe(pk="probe").save()
    ssm = boto3.client("ssm")

    # Then both talked to the loopback stack
    assert Probe.get("probe").pk == "probe"
    assert ssm.meta.endpoint_url == stack_env.endpoint_url
    assert ssm.get_parameter(Name="/personalization/pepper", WithDecryption=True)["Parameter"]["Value"]


def test_reset_clears_data_but_keeps_resources_and_secrets(clean_stack: LocalStack) -> None:
    # Given data in a table, the stream and the bucket
    dynamodb = clean_stack.client("dynamodb")
    table = clean_stack.physical_names["ProfilesTable"]
    stream = clean_stack.physical_names["EventStream"]
    bucket = clean_stack.physical_names["ArtifactBucket"]
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "u-1"}})
    clean_stack.client("kinesis").put_record(StreamName=stream, Data=b"x", PartitionKey="u-1")
    clean_stack.client("s3").put_object(Bucket=bucket, Key="k", Body=b"v")
    secrets_before = clean_stack.secret_values

    # When the stack is reset
    clean_stack.reset()

    # Then the resources are back, empty, and the secrets are unchanged
    assert dynamodb.scan(TableName=table)["Count"] == 0
    assert dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == ("ENABLED")
    kinesis = clean_stack.client("kinesis")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert len(shards) == clean_stack.shard_count
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert kinesis.get_records(ShardIterator=iterator)["Records"] == []
    assert clean_stack.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert clean_stack.secret_values == secrets_before
    pepper = clean_stack.client("ssm").get_parameter(Name="/personalization/pepper", WithDecryption=True)
    assert pepper["Parameter"]["Value"] == secrets_before["/personalization/pepper"]


OTHER_TEMPLATE = """
Parameters:
  Env: {Type: String, Default: dev}
Resources:
  Named:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-${Env}-named"
      BillingMode: PROVISIONED
      ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}, {AttributeName: g, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      GlobalSecondaryIndexes:
        - IndexName: by-g
          KeySchema: [{AttributeName: g, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
  Provisioned:
    Type: AWS::Kinesis::Stream
    Properties: {ShardCount: 3}
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {}
"""


def test_another_template_is_built_as_written_and_stop_ends_the_process(tmp_path: Path) -> None:
    # Given a template with an explicitly named table, a provisioned stream and a resource not created locally
    path = tmp_path / "template.yaml"
    path.write_text(OTHER_TEMPLATE, encoding="utf-8")

    # When a stack of its own is built from it
    with LocalStack(Template.load(path)) as stack:
        pid = stack.pid
        assert pid is not None
        assert stack.running

        # Then names and ARNs follow CloudFormation's rules and every resource is there as written
        assert stack.physical_names["Named"] == "local-dev-named"
        table = stack.client("dynamodb").describe_table(TableName="local-dev-named")["Table"]
        assert stack.arns["Named"] == table["TableArn"]
        assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["by-g"]
        assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        assert len(stack.client("kinesis").list_shards(StreamName="local-provisioned")["Shards"]) == 3

    # And after leaving the block the process is gone, and stop() may be called again
    assert stack.pid is None
    assert not stack.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    stack.stop()


def test_a_port_taken_by_another_server_fails_with_its_output(local_stack: LocalStack) -> None:
    # Given a port on which another moto server (the session's) already answers
    stack = LocalStack(Template.from_document({"Resources": {}}), port=local_stack.port)

    # When a second stack starts on it
    started = time.monotonic()
    with pytest.raises(LocalStackError, match="did not come up") as error:
        stack.start()

    # Then the other server's answers were not mistaken for ours: the error carries our server's own
    # output, comes as soon as it exits, and nothing is left running
    assert "Address already in use" in str(error.value)
    assert time.monotonic() - started < stack.startup_timeout_s
    assert stack.pid is None
    assert local_stack.running
