"""template.yaml read into typed data, and the intrinsic-function resolver the local stack relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.local.template import (
    FUNCTION_TYPES,
    TEMPLATE_PATH,
    Resolver,
    Template,
    TemplateError,
    UnresolvedReferenceError,
    load_document,
)

NAMES = {
    "EventStream": "local-event-stream",
    "ProfilesTable": "local-profiles-table",
    "QuarantineTable": "local-quarantine-table",
    "ErasureLogTable": "local-erasure-log-table",
    "TrendingTable": "local-trending-table",
    "ArtifactBucket": "local-artifact-bucket",
    "ArchiveBucket": "local-archive-bucket",
    "ArchiveDeliveryStream": "local-archive-delivery-stream",
    "IngestFunction": "local-ingest-function",
    "ServeFunction": "local-serve-function",
    "EraseFunction": "local-erase-function",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def resolver(**parameters: str) -> Resolver:
    return Resolver(
        parameters={"Path": "/personalization/pepper", "Env": "dev", **parameters},
        refs={"Table": "local-table"},
        attributes={"Stream.Arn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"},
        resource_ids=frozenset({"Table", "Stream", "Unnamed"}),
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the real template --------------------------------------------------------------------------


def test_real_template_parameters_carry_their_defaults_as_strings(template: Template) -> None:
    assert template.parameters["PepperParameterName"].default == "/personalization/pepper"
    assert template.parameters["IdentityKeyParameterName"].default == "/personalization/identity-key"
    # Ref hands a Number parameter over as a string, as CloudFormation does.
    assert template.parameter_default("IngestBatchSize") == "500"
    assert template.parameters["LogLevel"].allowed_values == ("DEBUG", "INFO", "WARNING", "ERROR")


def test_real_template_resources_by_type(template: Template) -> None:
    assert list(template.resources_of_type("AWS::DynamoDB::Table")) == [
        "ProfilesTable",
        "QuarantineTable",
        "TrendingTable",
        "ErasureLogTable",
    ]
    assert list(template.resources_of_type("AWS::Kinesis::Stream")) == ["EventStream"]
    assert list(template.resources_of_type("AWS::S3::Bucket")) == ["ArtifactBucket", "AccessLogBucket", "ArchiveBucket"]
    assert list(template.resources_of_type("AWS::KinesisFirehose::DeliveryStream")) == ["ArchiveDeliveryStream"]
    profiles = template.resource("ProfilesTable").properties
    assert profiles["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert profiles["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert template.global_environment["POWERTOOLS_SERVICE_NAME"] == "personalization"


def test_short_tag_loader_reads_the_template_exactly_like_cfn_lint() -> None:
    # Given cfn-lint's own decoder (slow to import, so only here) as the reference
    from cfnlint.decode import decode

    reference, matches = decode(str(TEMPLATE_PATH))

    # When our loader reads the same file
    ours = load_document(TEMPLATE_PATH)

    # Then both produce the same document
    assert matches == []
    assert json.loads(json.dumps(reference)) == json.loads(json.dumps(ours))


def test_ingest_function_environment_resolves_against_local_names(template: Template) -> None:
    env = template.function_environment("IngestFunction", NAMES)

    assert env == {
        "POWERTOOLS_SERVICE_NAME": "personalization",
        "POWERTOOLS_METRICS_NAMESPACE": "Personalization",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PROFILES_TABLE": "local-profiles-table",
        "QUARANTINE_TABLE": "local-quarantine-table",
        "PEPPER_PARAMETER": "/personalization/pepper",
        "PROFILE_RETENTION_DAYS": "180",
        "QUARANTINE_RETENTION_DAYS": "14",
        "AFFINITY_HALF_LIFE_HOURS": "168",
        "ARCHIVE_DELIVERY_STREAM": "local-archive-delivery-stream",
        "ARCHIVE_BUCKET": "local-archive-bucket",
        "TRENDING_TABLE": "local-trending-table",
        "TRENDING_HALF_LIFE_HOURS": "1",
    }


def test_serve_function_environment_takes_parameter_overrides(template: Template) -> None:
    env = template.function_environment(
        "ServeFunction", NAMES, {"LogLevel": "DEBUG", "IdentityKeyParameterName": "/test/identity-key"}
    )

    assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert env["PROFILES_TABLE"] == "local-profiles-table"
    assert env["ARTIFACT_BUCKET"] == "local-artifact-bucket"
    assert env["IDENTITY_KEY_PARAMETER"] == "/test/identity-key"


def test_every_ref_in_every_function_environment_resolves(template: Template) -> None:
    functions = {rid for rid, res in template.resources.items() if res.type in FUNCTION_TYPES}
    assert functions == {"IngestFunction", "ServeFunction", "EraseFunction", "CollectFunction", "PurgeFunction"}
    for logical_id in functions:
        env = template.function_environment(logical_id, NAMES)
        assert all(isinstance(value, str) and value for value in env.values()), logical_id


def test_a_resource_without_a_physical_name_is_named_in_the_error(template: Template) -> None:
    names = {k: v for k, v in NAMES.items() if k != "QuarantineTable"}

    with pytest.raises(UnresolvedReferenceError, match="QuarantineTable"):
        template.function_environment("IngestFunction", names)


def test_parameter_overrides_are_checked(template: Template) -> None:
    with pytest.raises(TemplateError, match="unknown parameters"):
        template.parameter_values({"LogLevl": "DEBUG"})
    with pytest.raises(TemplateError, match="is not one of"):
        template.parameter_values({"LogLevel": "TRACE"})


def test_function_environment_refuses_a_non_function(template: Template) -> None:
    with pytest.raises(TemplateError, match="not a function"):
        template.function_environment("ProfilesTable", NAMES)


# -- the resolver ------------------------------------------------------------------------------


def test_ref_resolves_parameters_pseudo_parameters_and_resources() -> None:
    r = resolver()
    assert r.resolve({"Ref": "Env"}) == "dev"
    assert r.resolve({"Ref": "AWS::Region"}) == "us-east-1"
    assert r.resolve({"Ref": "Table"}) == "local-table"
    with pytest.raises(UnresolvedReferenceError, match="no physical name given for resource 'Unnamed'"):
        r.resolve({"Ref": "Unnamed"})
    with pytest.raises(UnresolvedReferenceError, match="not a parameter"):
        r.resolve({"Ref": "Nowhere"})


def test_get_att_takes_the_list_and_the_dotted_form() -> None:
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    assert resolver().resolve({"Fn::GetAtt": ["Stream", "Arn"]}) == arn
    assert resolver().resolve({"Fn::GetAtt": "Stream.Arn"}) == arn
    with pytest.raises(UnresolvedReferenceError, match=r"Table\.StreamArn"):
        resolver().resolve({"Fn::GetAtt": ["Table", "StreamArn"]})


def test_sub_string_form_substitutes_refs_attributes_and_escapes() -> None:
    text = "${AWS::StackName}-${Env}/${Table} ${Stream.Arn} ${!Literal}"

    assert resolver().resolve({"Fn::Sub": text}) == (
        "local-dev/local-table arn:aws:kinesis:us-east-1:123456789012:stream/s ${Literal}"
    )


def test_resolve_walks_nested_structures_and_refuses_unknown_functions() -> None:
    node: dict[str, Any] = {"A": [{"Ref": "Env"}, {"B": {"Fn::Sub": "x-${Env}"}}], "C": 1}

    assert resolver().resolve(node) == {"A": ["dev", {"B": "x-dev"}], "C": 1}
    with pytest.raises(TemplateError, match="Fn::If is not supported"):
        resolver().resolve({"Fn::If": ["Cond", "a", "b"]})


def test_functions_beyond_what_the_local_resources_use_are_refused_by_name() -> None:
    # Only Ref, Fn::GetAtt and Fn::Sub's string form occur in what the local stack creates and reads.
    with pytest.raises(TemplateError, match=r"Fn::Select is not supported locally \(supported: Ref, Fn::GetAtt"):
        resolver().resolve({"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "Path"}]}]})
    with pytest.raises(TemplateError, match="only the string form of Fn::Sub"):
        resolver().resolve({"Fn::Sub": ["${Env}:${Name}", {"Name": {"Ref": "Table"}}]})


def test_resolve_string_refuses_a_list() -> None:
    with pytest.raises(TemplateError, match="expected a string"):
        Resolver(parameters={"Zones": ["a", "b"]}, refs={}, attributes={}).resolve_string({"Ref": "Zones"})


# -- the loader --------------------------------------------------------------------------------


def test_loader_expands_short_tags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Resources:\n"
        "  T:\n"
        "    Type: AWS::SNS::Topic\n"
        "    Properties:\n"
        "      A: !GetAtt Thing.Attr.With.Dots\n"
        "      B: !Sub '${AWS::Region}'\n"
        "      C: !Join ['', [!Ref X]]\n",
    )

    props = Template.load(path).resource("T").properties

    assert props["A"] == {"Fn::GetAtt": ["Thing", "Attr.With.Dots"]}
    assert props["B"] == {"Fn::Sub": "${AWS::Region}"}
    assert props["C"] == {"Fn::Join": ["", [{"Ref": "X"}]]}


def test_loader_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read template"):
        Template.load(tmp_path / "missing.yaml")
