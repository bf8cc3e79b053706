"""template.yaml against the code: handlers, environment, key schemas, cache keys, permissions, samples."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, AliasPath
from pynamodb.attributes import TTLAttribute

import names
from infra.local.template import Template
from personalization.context import VIEWER_HEADERS
from serve import app as serve_app
from store.erasure_log import ErasureLogItem
from store.profiles import ProfileItem
from store.quarantine import QuarantineItem
from store.settings import FunctionSettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Template.load(ROOT / "template.yaml")
FUNCTIONS = TEMPLATE.resources_of_type("AWS::Serverless::Function")
# Variables the Lambda runtime sets itself (AWS_LAMBDA_INITIALIZATION_TYPE: on-demand, provisioned-concurrency or
# snap-start); everything else the code reads must come from the template.
RUNTIME_ENV = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE"}


def properties(logical_id: str) -> dict[str, Any]:
    return dict(TEMPLATE.resource(logical_id).properties)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_handler_resolves_to_a_callable(logical_id: str) -> None:
    props = properties(logical_id)
    assert props["CodeUri"] == "functions/"
    module_name, _, attribute = props["Handler"].rpartition(".")
    assert (ROOT / "functions" / Path(*module_name.split("."))).with_suffix(".py").exists()
    module = importlib.import_module(module_name) if module_name != "serve.handler" else None
    if module is not None:
        assert callable(getattr(module, attribute))


def mangum_wrapped_for_metrics(source: str) -> bool:
    """The Lambda handler is log_metrics over the app under Mangum: directly, or through a named wrapper."""
    if re.search(r"^handler = metrics\.log_metrics\(Mangum\(app\b", source, re.M):
        return True
    wrapped = re.search(r"^(\w+) = Mangum\(app\b", source, re.M)
    return bool(wrapped and re.search(rf"^handler = metrics\.log_metrics\({wrapped.group(1)}\)", source, re.M))


def test_the_serve_handler_is_mangum_wrapped_for_metrics() -> None:
    # serve.handler loads models at import (for SnapStart), so it is checked by source, not imported here.
    assert mangum_wrapped_for_metrics((ROOT / "functions/serve/handler.py").read_text())


def _env_reads(folder: str) -> set[str]:
    """Every environment variable the code in functions/<folder> reads: by hand, or through a settings class."""
    names: set[str] = set()
    for path in (ROOT / "functions" / folder).rglob("*.py"):
        names |= set(re.findall(r"""env(?:iron)?(?:\.get)?[\[(]\s*["']([A-Z0-9_]+)["']""", path.read_text()))
    for settings in _settings_classes(folder):
        names |= _settings_env_names(settings)
    return names


def _settings_classes(folder: str) -> list[type[FunctionSettings]]:
    """The FunctionSettings subclasses in functions/<folder> (serve.handler is not imported: it loads models)."""
    found = []
    for path in sorted((ROOT / "functions" / folder).rglob("*.py")):
        module_name = ".".join(path.relative_to(ROOT / "functions").with_suffix("").parts).removesuffix(".__init__")
        if module_name == "serve.handler":
            continue
        module = importlib.import_module(module_name)
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, FunctionSettings) and value.__module__ == module_name
        ]
    return found


def _settings_env_names(settings: type[FunctionSettings]) -> set[str]:
    """The variables FunctionSettings.from_env reads for each field: its validation alias (every choice), else
    its upper-cased name."""
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names |= {str(c if isinstance(c, str) else c.path[0]) for c in alias.choices}
        elif isinstance(alias, AliasPath):
            names.add(str(alias.path[0]))
        else:
            names.add(name.upper())
    return names


@pytest.mark.parametrize(
    ("logical_id", "folder"),
    [
        ("IngestFunction", "ingest"),
        ("ServeFunction", "serve"),
        ("EraseFunction", "erase"),
        ("CollectFunction", "collect"),
        ("PurgeFunction", "purge"),
    ],
)
def test_every_environment_variable_the_code_reads_is_set_in_the_template(logical_id: str, folder: str) -> None:
    declared = set(TEMPLATE.global_environment) | set(properties(logical_id)["Environment"]["Variables"])
    read = _env_reads(folder) | _env_reads("store")
    assert read, "the scan found no environment reads at all"
    assert _settings_classes(folder), "the scan found no settings class: is the configuration still read there?"
    assert read - declared - RUNTIME_ENV == set()


@pytest.mark.parametrize(
    ("logical_id", "model"),
    [("ProfilesTable", ProfileItem), ("QuarantineTable", QuarantineItem), ("ErasureLogTable", ErasureLogItem)],
)
def test_table_key_schemas_indexes_and_ttl_match_the_pynamodb_models(logical_id: str, model: Any) -> None:
    props = properties(logical_id)
    hash_key = model._hash_keyname
    assert props["KeySchema"] == [{"AttributeName": hash_key, "KeyType": "HASH"}]
    index_keys = {name: index._hash_key_attribute().attr_name for name, index in model._indexes.items()}
    assert props["AttributeDefinitions"] == [
        {"AttributeName": name, "AttributeType": "S"} for name in [hash_key, *index_keys.values()]
    ]
    assert props.get("GlobalSecondaryIndexes", []) == [
        {
            "IndexName": name,
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": model._indexes[name].Meta.projection.projection_type},
        }
        for name, key in index_keys.items()
    ]
    ttl = [name for name, attr in model.get_attributes().items() if isinstance(attr, TTLAttribute)]
    assert props["TimeToLiveSpecification"] == {"AttributeName": ttl[0], "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_cache_key_is_exactly_what_serve_varies_on() -> None:
    config = properties("FragmentCachePolicy")["CachePolicyConfig"]
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["CookiesConfig"]["Cookies"] == [names.SEGMENT_COOKIE]
    assert key["HeadersConfig"]["Headers"] == [names.KNOWN_VISITOR_HEADER, names.CONTEXT_KEY_HEADER]
    assert tuple(key["QueryStringsConfig"]["QueryStrings"]) == serve_app.CACHE_KEY_QUERY
    # MinTTL 0: CloudFront then honours Cache-Control: private and never stores a personal fragment.
    assert config["MinTTL"] == 0
    # The identity must never be part of the key (one cache entry per person would be a leak waiting to happen
    # only if responses were public; they are private, and the key stays small).
    assert names.IDENTITY_COOKIE not in key["CookiesConfig"]["Cookies"]


def test_the_fragment_route_accepts_only_known_query_parameters() -> None:
    route = serve_app.app.openapi()["paths"]["/v1/fragments/{slot}"]["get"]
    query = {p["name"] for p in route["parameters"] if p["in"] == "query"}
    # `page` is accepted for context but does not change the answer yet; when it does, it joins the key.
    assert query - set(serve_app.CACHE_KEY_QUERY) == {"page"}


def test_the_origin_request_policy_forwards_the_identity_but_keeps_it_out_of_the_key() -> None:
    config = properties("FragmentOriginRequestPolicy")["OriginRequestPolicyConfig"]
    assert config["CookiesConfig"]["Cookies"] == [names.IDENTITY_COOKIE]
    # The token, and the viewer's host and headers serve derives the context from (never part of the key)
    assert config["HeadersConfig"]["Headers"] == [names.IDENTITY_HEADER, names.VIEWER_HOST_HEADER, *VIEWER_HEADERS]


def test_the_viewer_request_function_is_the_one_in_infra_and_marks_known_visitors() -> None:
    code = properties("ViewerRequestFunction")["FunctionCode"]
    source = (ROOT / "infra/cloudfront/viewer_request.js").read_text()
    assert code.strip() == source.strip()
    assert f'"{names.IDENTITY_COOKIE}"' in source
    assert f'"{names.KNOWN_VISITOR_HEADER}"' in source


def test_the_storefront_reads_the_debug_headers_serve_sends() -> None:
    source = (ROOT / "storefront/slots.js").read_text()
    [listed] = re.findall(r"^const DEBUG_HEADERS = \[(.*)\];$", source, re.M)
    assert re.findall(r'"([^"]+)"', listed) == list(names.DEBUG_HEADERS)


def test_the_storefront_polls_past_fallback_reasons_serve_has() -> None:
    from personalization.fragments import Reason

    source = (ROOT / "storefront/slots.js").read_text()
    [listed] = re.findall(r"^const PASSING = \[(.*)\];$", source, re.M)
    passing = re.findall(r'"([^"]+)"', listed)
    assert passing
    assert set(passing) <= {reason.value for reason in Reason}


def _statements() -> list[dict[str, Any]]:
    found = []
    for resource in TEMPLATE.resources_of_type("AWS::IAM::Role").values():
        for policy in resource.properties.get("Policies", []):
            found.extend(policy["PolicyDocument"]["Statement"])
    return found


def test_no_iam_statement_uses_a_wildcard_action_or_resource() -> None:
    statements = _statements()
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if actions == ["cloudwatch:PutMetricData"]:
            # The one action with no resource-level permissions: held to a namespace by its condition instead.
            assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"], statement
            continue
        assert statement["Resource"] != "*", statement
    for function in FUNCTIONS.values():
        assert "Role" in function.properties, "functions use the scoped roles, not SAM's generated ones"
        assert "Policies" not in function.properties


def test_the_ingest_event_source_reports_failures_and_keeps_what_it_gives_up_on() -> None:
    stream = properties("IngestFunction")["Events"]["Stream"]["Properties"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["IngestFailureQueue", "Arn"]}
    for name in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "ParallelizationFactor", "BatchSize"):
        assert name in stream


def test_every_failure_path_has_an_alarm() -> None:
    alarms = TEMPLATE.resources_of_type("AWS::CloudWatch::Alarm").values()
    text = str([alarm.properties for alarm in alarms])
    for metric in ("IteratorAge", "Errors", "Throttles", "RecordsQuarantined", "FragmentsDegraded", "Url5xxCount"):
        assert metric in text, metric
    assert all(alarm.properties["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in alarms)


def test_every_function_has_sample_events() -> None:
    events = {p.name for p in (ROOT / "events").glob("*.json")}
    prefixes = {
        "IngestFunction": "ingest_kinesis_",
        "ServeFunction": "serve_function_url_",
        "CollectFunction": "collect_function_url_",
        "EraseFunction": "erase_",
        "PurgeFunction": "purge_",
    }
    assert set(prefixes) == set(FUNCTIONS)
    for logical_id, prefix in prefixes.items():
        assert any(name.startswith(prefix) for name in events), logical_id


def test_each_function_ships_from_its_own_locked_requirements() -> None:
    makefile = (ROOT / "functions/Makefile").read_text()
    for logical_id in FUNCTIONS:
        assert f"build-{logical_id}:" in makefile
        assert TEMPLATE.resource(logical_id).properties.get("Runtime", "python3.12") == "python3.12"
    ingest = (ROOT / "functions/requirements-ingest.txt").read_text()
    serve = (ROOT / "functions/requirements-serve.txt").read_text()
    for text in (ingest, serve):
        assert not re.search(r"^(boto3|botocore|scikit-learn|skl2onnx)==", text, re.M)
    assert not re.search(r"^onnxruntime==", ingest, re.M)
    assert re.search(r"^onnxruntime==", serve, re.M)


def test_the_requirements_files_are_current_with_the_lock() -> None:
    import subprocess
    import sys

    uv = Path(sys.executable).with_name("uv")
    # The collector is serve's web stack with the models and the table pruned (see `make requirements`).
    collect = ["--extra", "serve", *(arg for pkg in COLLECT_PRUNED for arg in ("--prune", pkg))]
    # The retraining Glue job: the trainer and onnxruntime, without serve's web stack.
    glue = ["--extra", "export", "--extra", "serve", *(arg for pkg in GLUE_PRUNED for arg in ("--prune", pkg))]
    exports = {
        "functions/requirements-ingest.txt": [],
        "functions/requirements-serve.txt": ["--extra", "serve"],
        "functions/requirements-collect.txt": collect,
        "infra/glue/requirements.txt": glue,
    }
    for name, extra in exports.items():
        exported = subprocess.run(
            [
                str(uv),
                "export",
                "--frozen",
                "--no-dev",
                "--no-default-groups",
                "--no-emit-project",
                "--no-header",
                "--quiet",
                *extra,
                "--prune",
                "boto3",
                "--prune",
                "botocore",
                "--prune",
                "s3transfer",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert (ROOT / name).read_text() == exported, f"run `make requirements` ({name})"


def test_an_erasure_tombstone_outlives_every_redelivery_of_the_stream() -> None:
    # While the tombstone lasts ingest drops the erased person's events; the event source mapping gives up on a
    # record after MaximumRecordAgeInSeconds and the stream keeps it RetentionPeriodHours, so it must outlive both.
    stream = properties("IngestFunction")["Events"]["Stream"]["Properties"]
    retention_s = int(properties("EventStream")["RetentionPeriodHours"]) * 3600
    tombstone = TEMPLATE.parameters["ErasureTombstoneDays"]
    minimum = yaml_parameter("ErasureTombstoneDays")["MinValue"]
    assert int(minimum) * 86400 > max(int(stream["MaximumRecordAgeInSeconds"]), retention_s)
    assert tombstone.default is not None
    assert int(tombstone.default) >= int(minimum)
    for function in ("ServeFunction", "EraseFunction"):
        variables = properties(function)["Environment"]["Variables"]
        assert variables["ERASURE_TOMBSTONE_DAYS"] == {"Ref": "ErasureTombstoneDays"}


def test_retention_periods_are_parameters_wired_to_the_code_that_sets_the_ttls() -> None:
    ingest = properties("IngestFunction")["Environment"]["Variables"]
    assert ingest["PROFILE_RETENTION_DAYS"] == {"Ref": "ProfileRetentionDays"}
    assert ingest["QUARANTINE_RETENTION_DAYS"] == {"Ref": "QuarantineRetentionDays"}
    assert TEMPLATE.parameter_default("QuarantineRetentionDays") == "14"
    for function in ("ServeFunction", "EraseFunction"):
        variables = properties(function)["Environment"]["Variables"]
        assert variables["ERASURE_LOG_RETENTION_DAYS"] == {"Ref": "ErasureLogRetentionDays"}


def test_the_profile_routes_pass_the_cdn_uncached_with_the_identity_forwarded() -> None:
    config = properties("Distribution")["DistributionConfig"]
    [behaviour] = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "/v1/profile"]
    assert behaviour["TargetOriginId"] == "serve"
    assert "DELETE" in behaviour["AllowedMethods"]
    assert behaviour["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # Managed-CachingDisabled
    assert behaviour["OriginRequestPolicyId"] == {"Ref": "FragmentOriginRequestPolicy"}
    assert {"/v1/profile"} <= set(serve_app.app.openapi()["paths"])


def yaml_parameter(name: str) -> dict[str, Any]:
    from infra.local.template import load_document

    document = load_document(ROOT / "template.yaml")
    parameter: dict[str, Any] = document["Parameters"][name]
    return parameter


# -- the collector ------------------------------------------------------------------------------------

COLLECT_PRUNED = ("onnxruntime", "numpy", "markupsafe", "pynamodb")
GLUE_PRUNED = ("fastapi", "mangum")
# AWS's managed cache policy "CachingDisabled".
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"


def test_the_collector_and_serve_read_the_identity_under_the_names_the_edge_forwards() -> None:
    from collect import app as collect_app

    for app, path, method in (
        (collect_app.app, "/v1/events", "post"),
        (serve_app.app, "/v1/fragments/{slot}", "get"),
        (serve_app.app, "/v1/profile", "delete"),
    ):
        route = app.openapi()["paths"][path][method]
        read = {(p["in"], p["name"]) for p in route["parameters"]}
        assert {("cookie", names.IDENTITY_COOKIE), ("header", names.IDENTITY_HEADER)} <= read
    assert mangum_wrapped_for_metrics((ROOT / "functions/collect/handler.py").read_text())


def test_the_collector_is_reached_same_origin_uncached_with_the_identity_forwarded() -> None:
    config = properties("Distribution")["DistributionConfig"]
    [behaviour] = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "/v1/events"]
    [origin] = [o for o in config["Origins"] if o["Id"] == behaviour["TargetOriginId"]]
    assert "CollectFunctionUrl" in str(origin["DomainName"])
    assert "POST" in behaviour["AllowedMethods"]
    # A redirect to https would turn the POST into a GET
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert behaviour["CachePolicyId"] == CACHING_DISABLED
    assert behaviour["OriginRequestPolicyId"] == {"Ref": "CollectOriginRequestPolicy"}
    policy = properties("CollectOriginRequestPolicy")["OriginRequestPolicyConfig"]
    assert policy["CookiesConfig"] == {"CookieBehavior": "all"}
    # The token header, and the body hash Origin Access Control signs a POST with
    assert {names.IDENTITY_HEADER, "x-amz-content-sha256"} <= set(policy["HeadersConfig"]["Headers"])


def test_the_collector_url_is_signed_by_cloudfront_and_allows_the_shop_origin() -> None:
    url = properties("CollectFunction")["FunctionUrlConfig"]
    assert url["AuthType"] == "AWS_IAM"
    assert url["Cors"]["AllowOrigins"] == [{"Ref": "ShopOrigin"}]
    assert url["Cors"]["AllowCredentials"] is True
    assert url["Cors"]["AllowMethods"] == ["POST"]
    assert {"content-type", names.IDENTITY_HEADER} <= set(url["Cors"]["AllowHeaders"])
    for permission in ("CollectUrlInvokePermission", "CollectInvokePermission"):
        assert properties(permission)["Principal"] == "cloudfront.amazonaws.com"
        assert properties(permission)["FunctionName"] == {"Ref": "CollectFunction"}


def test_the_collector_may_only_write_the_stream_and_read_the_identity_key() -> None:
    [policy] = properties("CollectRole")["Policies"]
    grants = {
        statement["Sid"]: (statement["Action"], statement["Resource"])
        for statement in policy["PolicyDocument"]["Statement"]
    }
    assert grants["WriteStream"] == ("kinesis:PutRecords", {"Fn::GetAtt": ["EventStream", "Arn"]})
    assert grants["IdentityKey"][0] == "ssm:GetParameter"
    assert "${IdentityKeyParameterName}" in str(grants["IdentityKey"][1])
    assert set(grants) == {"Logs", "WriteStream", "IdentityKey"}
    assert properties("CollectFunction")["Role"] == {"Fn::GetAtt": ["CollectRole", "Arn"]}


def test_the_collector_ships_its_web_stack_only() -> None:
    collect = (ROOT / "functions/requirements-collect.txt").read_text()
    for package in ("fastapi", "mangum", "pydantic", "aws-lambda-powertools"):
        assert re.search(rf"^{package}==", collect, re.M), package
    for package in (*COLLECT_PRUNED, "boto3", "botocore", "scikit-learn"):
        assert not re.search(rf"^{package}==", collect, re.M), package


def test_the_collector_failures_are_alarmed() -> None:
    alarmed = [
        (alarm.properties.get("MetricName"), str(alarm.properties.get("Dimensions")))
        for alarm in TEMPLATE.resources_of_type("AWS::CloudWatch::Alarm").values()
    ]
    for metric in ("Errors", "Throttles", "Url5xxCount"):
        assert (metric, str([{"Name": "FunctionName", "Value": {"Ref": "CollectFunction"}}])) in alarmed, metric
    assert any(metric == "EventsFailed" for metric, _ in alarmed)


# -- abuse limits and edge security (issue 21) ------------------------------------------------------------


def test_every_function_has_a_concurrency_cap_and_the_collectors_is_a_parameter() -> None:
    functions = TEMPLATE.resources_of_type("AWS::Serverless::Function")
    assert functions
    for logical_id, resource in functions.items():
        assert "ReservedConcurrentExecutions" in resource.properties, logical_id
    assert properties("CollectFunction")["ReservedConcurrentExecutions"] == {"Ref": "CollectReservedConcurrency"}


def test_a_web_acl_with_a_per_address_rate_limit_on_events_is_attached_to_the_distribution() -> None:
    acl = TEMPLATE.resource("WebAcl")
    assert acl.properties["Scope"] == "CLOUDFRONT"
    [events] = [rule for rule in acl.properties["Rules"] if rule["Name"] == "events-per-address"]
    rate = events["Statement"]["RateBasedStatement"]
    assert (rate["AggregateKeyType"], rate["Limit"]) == ("IP", {"Ref": "EventsRateLimitPer5Min"})
    assert rate["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/v1/events"
    assert "Block" in events["Action"]
    attached = properties("Distribution")["DistributionConfig"]["WebACLId"]
    # The operator's ACL when given, else the stack's own (us-east-1 only)
    assert attached == {
        "Fn::If": [
            "HasWebAclArn",
            {"Ref": "WebAclArn"},
            {"Fn::If": ["CreatesWebAcl", {"Fn::GetAtt": ["WebAcl", "Arn"]}, {"Ref": "AWS::NoValue"}]},
        ]
    }


def test_tables_holding_personal_data_use_the_customer_managed_key() -> None:
    for logical_id in ("ProfilesTable", "QuarantineTable", "ErasureLogTable"):
        sse = properties(logical_id)["SSESpecification"]
        assert (sse["SSEType"], sse["KMSMasterKeyId"]) == ("KMS", {"Ref": "DataKey"}), logical_id
    assert properties("DataKey")["EnableKeyRotation"] is True


def test_lint_runs_checkov_offline_on_the_template() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "$(CHECKOV) --config-file .checkov.yaml" in makefile
    config = (ROOT / ".checkov.yaml").read_text()
    assert "skip-download: true" in config
    assert "template.yaml" in config
