"""The loopback AWS stack: a moto server child process holding what the local product uses of template.yaml.

Tests and the demo talk to it over real HTTP with ordinary boto3/pynamodb clients; product code needs no
endpoint knob because botocore honours ``AWS_ENDPOINT_URL`` for every service (see ``aws_env()``).

    with LocalStack() as stack:
        table = stack.physical_names["ProfilesTable"]
        stack.client("dynamodb").describe_table(TableName=table)

Created from the template: its DynamoDB tables, Kinesis streams, S3 buckets and Firehose delivery streams, and
the SSM parameters its ``*ParameterName`` parameters name. Nothing else (roles, alarms, the edge, functions: local
runs call handlers in-process or through the event-source poller, with ``function_env()`` as their environment).
Differences from AWS, on purpose:
- An ON_DEMAND Kinesis stream is created PROVISIONED with ``shard_count`` shards (default 2): moto gives
  on-demand streams a fixed 4 shards and refuses to reshard them, and a small known count makes
  per-shard behaviour (ordering, watermarks, partial failures) deterministic in tests.
- Every template parameter named ``*ParameterName`` is an SSM SecureString holding a random value
  generated once per ``start()``; ``reset()`` re-creates it with the same value, so secrets read at the
  beginning of a session stay valid after a reset.
- Encryption, backups, access logging and lifecycle rules have no local effect and are not set up.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

from infra.local.template import PSEUDO_PARAMETERS, Resolver, Resource, Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

logger = logging.getLogger(__name__)

DEFAULT_REGION = PSEUDO_PARAMETERS["AWS::Region"]
ACCOUNT_ID = PSEUDO_PARAMETERS["AWS::AccountId"]
NAME_PREFIX = PSEUDO_PARAMETERS["AWS::StackName"]
FAKE_CREDENTIAL = "testing"
DEFAULT_SHARD_COUNT = 2

# Variables that would override or break AWS_ENDPOINT_URL and the fake credentials if inherited from a
# developer's shell (a named profile that does not exist here, per-service endpoints pointing elsewhere).
CONFLICTING_ENV_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
CONFLICTING_ENV_PREFIXES = ("AWS_ENDPOINT_URL_",)

# The resource types created locally, with the property that names one explicitly and the ARN it gets; roles are
# not created, but a delivery stream names one.
NAME_PROPERTY: Mapping[str, str] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
}
_ARN_FORMATS: Mapping[str, str] = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::Kinesis::Stream": "arn:aws:kinesis:{region}:{account}:stream/{name}",
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::KinesisFirehose::DeliveryStream": "arn:aws:firehose:{region}:{account}:deliverystream/{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
}

_SSM_NAME_PARAMETER_SUFFIX = "ParameterName"
# What werkzeug (moto's server) prints once its socket listens.
_RUNNING_ON = re.compile(r"Running on http://[^\s:]+:(\d+)")
_POLL_INTERVAL_S = 0.05
_STDERR_TAIL_CHARS = 4000


class LocalStackError(RuntimeError):
    """The local stack could not start, provision or stop."""


def conflicting_env_vars(environ: Mapping[str, str]) -> list[str]:
    """Names in ``environ`` that must be removed for ``aws_env()`` to take full effect."""
    return [name for name in environ if name in CONFLICTING_ENV_VARS or name.startswith(CONFLICTING_ENV_PREFIXES)]


def kebab_case(logical_id: str) -> str:
    """ProfilesTable -> profiles-table; SQSQueue -> sqs-queue (valid for every service's names)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", logical_id)
    return re.sub(r"[^a-z0-9-]+", "-", spaced.lower()).strip("-")


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the server when this process dies, even by SIGKILL.

    atexit covers normal exits and exceptions; this covers a killed test run. libc is resolved here, in
    the parent, so the child does nothing between fork and exec but one system call (by hand: one prctl call is
    not worth a dependency). Linux ties this to the thread that started the server: start the stack from a
    thread that lives as long as it should.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise LocalStackError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(_POLL_INTERVAL_S)


class LocalStack:
    """A moto server on loopback with template.yaml's tables, streams, buckets, delivery streams and secrets."""

    host = "127.0.0.1"
    region = DEFAULT_REGION
    startup_timeout_s = 15.0

    def __init__(
        self,
        template: Template | None = None,
        *,
        shard_count: int = DEFAULT_SHARD_COUNT,
        port: int | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> None:
        if shard_count < 1:
            raise ValueError("shard_count must be at least 1")
        self.template = template if template is not None else Template.load()
        self.shard_count = shard_count
        self.parameter_overrides = dict(parameter_overrides or {})
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIAL,
            aws_secret_access_key=FAKE_CREDENTIAL,
            aws_session_token=FAKE_CREDENTIAL,
            region_name=self.region,
        )
        self._clients: dict[str, Any] = {}
        # boto3 clients are thread-safe, creating them from one Session is not.
        self._clients_lock = threading.Lock()
        self._secret_values: dict[str, str] = {}
        # What Ref returns per resource: the template's explicit name if it has one, else ``local-<kebab-id>``.
        resolver = self.template.resolver(parameter_overrides=self.parameter_overrides)
        self.physical_names: dict[str, str] = {
            logical_id: resolver.resolve_string(resource.properties[NAME_PROPERTY[resource.type]], logical_id)
            if NAME_PROPERTY.get(resource.type) in resource.properties
            else f"{NAME_PREFIX}-{kebab_case(logical_id)}"
            for logical_id, resource in self.template.resources.items()
        }
        self.arns: dict[str, str] = {
            logical_id: _ARN_FORMATS[resource.type].format(
                name=self.physical_names[logical_id], region=self.region, account=ACCOUNT_ID
            )
            for logical_id, resource in self.template.resources.items()
            if resource.type in _ARN_FORMATS
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        """Start the server and create every resource; on any failure the server is stopped again."""
        if self._process is not None:
            raise LocalStackError(f"already running (pid {self._process.pid})")
        self._spawn()
        try:
            self._secret_values = {name: secrets.token_hex(32) for name in self.secret_parameter_names}
            self._provision()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 5 s); safe to call more than once."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        with self._clients_lock:
            self._clients.clear()
        self._port = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    logger.warning("moto server pid %d ignored SIGTERM; killing it", process.pid)
                    process.kill()
                    process.wait(timeout=5)
            logger.info("stopped moto server pid %d (exit code %s)", process.pid, process.returncode)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def reset(self) -> None:
        """Drop all data (moto's global reset), then re-create every resource under the same names."""
        self._require_running()
        # S310: the URL is built from our own loopback endpoint, always http.
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        # No proxy handler: a proxy from the environment must never see loopback traffic.
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
            if response.status != 200:
                raise LocalStackError(f"moto reset answered {response.status}")
        logger.info("reset moto server; re-creating resources")
        self._provision()

    # -- addresses and clients ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalStackError("the stack has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def secret_parameter_names(self) -> list[str]:
        """SSM names of every template parameter called ``*ParameterName``, after overrides."""
        values = self.template.parameter_values(self.parameter_overrides)
        return [str(values[name]) for name in self.template.parameters if name.endswith(_SSM_NAME_PARAMETER_SUFFIX)]

    @property
    def secret_values(self) -> dict[str, str]:
        """SSM name -> the random value stored there for this run (local test secrets only)."""
        return dict(self._secret_values)

    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["kinesis"]) -> KinesisClient: ...
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["ssm"]) -> SSMClient: ...
    @overload
    def client(self, service: str) -> Any: ...

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` talking to this stack (one per service, shared, thread-safe)."""
        self._require_running()
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(  # type: ignore[call-overload]
                    service,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        # An empty mapping, unlike None, keeps botocore from sending loopback via HTTP(S)_PROXY.
                        proxies={},
                        connect_timeout=2,
                        read_timeout=30,
                        retries={"mode": "standard", "max_attempts": 3},
                    ),
                )
            return self._clients[service]

    def aws_env(self) -> dict[str, str]:
        """Environment variables that point any boto3/botocore/pynamodb client at this stack.

        Also remove ``conflicting_env_vars()`` from the target environment (``child_env`` does both).
        """
        no_proxy = [p for p in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if p]
        no_proxy += [host for host in dict.fromkeys((self.host, "127.0.0.1", "localhost")) if host not in no_proxy]
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIAL,
            "AWS_SESSION_TOKEN": FAKE_CREDENTIAL,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # A developer's ~/.aws config could name other endpoints or regions; nothing here should read it.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # Never ask the instance metadata service for anything.
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": ",".join(no_proxy),
            "no_proxy": ",".join(no_proxy),
        }

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A complete environment for a child process: ``base`` (default os.environ) aimed at this stack."""
        env = dict(os.environ if base is None else base)
        self.apply_env(env)
        return env

    def apply_env(self, environ: MutableMapping[str, str]) -> None:
        """Point ``environ`` (e.g. os.environ) at this stack in place."""
        for name in conflicting_env_vars(environ):
            del environ[name]
        environ.update(self.aws_env())

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The function's template environment resolved against the local names, plus ``aws_env()``."""
        env = self.template.function_environment(logical_id, self.physical_names, self.parameter_overrides)
        env.update(self.aws_env())
        return env

    def resolver(self) -> Resolver:
        """Resolves template expressions against this stack's names, ARNs and parameters."""
        return self.template.resolver(self.physical_names, arns=self.arns, parameter_overrides=self.parameter_overrides)

    # -- server process ----------------------------------------------------------------------------

    def _spawn(self) -> None:
        fd, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self._log_path = log_path = Path(log_name)
        env = dict(os.environ)
        for name in [*conflicting_env_vars(env), "AWS_ENDPOINT_URL"]:
            env.pop(name, None)
        # Pinned rather than asked of STS afterwards: that first STS call costs moto a third of a second.
        env["MOTO_ACCOUNT_ID"] = ACCOUNT_ID
        # moto's server, with one emulator bug fixed before it serves (see infra/local/moto_main.py). Port 0 unless
        # one is asked for: the server binds a free port itself and names it in its output, so no other process
        # can take the port first and no other server's answers (a parallel test session's) are taken for ours.
        port = str(self._requested_port or 0)
        command = [sys.executable, "-m", "infra.local.moto_main", "-H", self.host, "-p", port]
        with os.fdopen(fd, "wb") as log:
            # Output goes to a file, not a pipe: werkzeug logs every request there and would block on a full pipe
            # nobody reads.
            self._process = process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent_hook(),
            )
        atexit.register(self.stop)

        def bound() -> bool:
            if process.poll() is not None:
                raise LocalStackError(f"moto server exited with code {process.returncode}")
            running = _RUNNING_ON.search(log_path.read_text(encoding="utf-8", errors="replace"))
            if running:
                self._port = int(running.group(1))
            return running is not None

        try:
            _wait_until(bound, self.startup_timeout_s, "the moto server to listen")
        except LocalStackError as err:
            output = log_path.read_text(encoding="utf-8", errors="replace")[-_STDERR_TAIL_CHARS:]
            self.stop()
            raise LocalStackError(
                f"moto server did not come up on {self.host}:{port} ({err}); its output:\n{output}"
            ) from None
        logger.info("started moto server pid %d on %s", process.pid, self.endpoint_url)

    def _require_running(self) -> None:
        if self._process is None:
            raise LocalStackError("the stack is not running; use start() or a with block")

    # -- provisioning ------------------------------------------------------------------------------

    def _provision(self) -> None:
        started = time.perf_counter()
        resolver = self.resolver()
        # In this order: a delivery stream names the bucket it writes to.
        creators: dict[str, Callable[[Resource, dict[str, Any]], None]] = {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::Kinesis::Stream": self._create_stream,
            "AWS::S3::Bucket": self._create_bucket,
            "AWS::KinesisFirehose::DeliveryStream": self._create_delivery_stream,
        }
        for resource_type, create in creators.items():
            for logical_id, resource in self.template.resources_of_type(resource_type).items():
                if resource.condition is not None:
                    raise LocalStackError(f"{logical_id} has Condition {resource.condition!r}; not evaluated locally")
                create(resource, resolver.resolve(dict(resource.properties), logical_id))
        for name, value in self._secret_values.items():
            self.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
            logger.info("put SSM SecureString %s (random, local only)", name)
        logger.info("provisioned local stack in %.2f s", time.perf_counter() - started)

    def _create_table(self, resource: Resource, props: dict[str, Any]) -> None:
        name = self.physical_names[resource.logical_id]
        # The template's properties of these names have the API's shapes; the rest (encryption, backups,
        # contributor insights) have no local effect.
        keys = ("KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput", "GlobalSecondaryIndexes")
        dynamodb = self.client("dynamodb")
        # moto creates tables and streams ACTIVE: there is nothing to wait for.
        dynamodb.create_table(TableName=name, **{key: props[key] for key in keys if key in props})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled") in (True, "true"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        logger.info("created DynamoDB table %s (ttl=%s)", name, ttl["AttributeName"] if ttl else None)

    def _create_stream(self, resource: Resource, props: dict[str, Any]) -> None:
        name = self.physical_names[resource.logical_id]
        mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        shards = self.shard_count if mode == "ON_DEMAND" else int(props.get("ShardCount", 1))
        self.client("kinesis").create_stream(
            StreamName=name, ShardCount=shards, StreamModeDetails={"StreamMode": "PROVISIONED"}
        )
        logger.info("created Kinesis stream %s with %d shards (template mode %s)", name, shards, mode)

    def _create_bucket(self, resource: Resource, props: dict[str, Any]) -> None:
        name = self.physical_names[resource.logical_id]
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)  # us-east-1 takes no location constraint
        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
        logger.info("created S3 bucket %s (versioning=%s)", name, versioning or "off")

    def _create_delivery_stream(self, resource: Resource, props: dict[str, Any]) -> None:
        """A DirectPut delivery stream to the template's bucket. moto writes every PutRecordBatch straight to S3 as
        one object under `<prefix>YYYY/MM/DD/HH/` (no buffering, compression or processing), so the prefix is cut
        at the folder holding its first dynamic-partitioning expression: `events/dt=!{...}/` becomes `events/`."""
        if props.get("DeliveryStreamType", "DirectPut") != "DirectPut":
            raise LocalStackError(f"{resource.logical_id}: only DirectPut delivery streams are created locally")
        destination = props["ExtendedS3DestinationConfiguration"]
        prefix = destination.get("Prefix", "")
        if "!{" in prefix:
            prefix = prefix[: prefix.rfind("/", 0, prefix.index("!{")) + 1]
        name = self.physical_names[resource.logical_id]
        self.client("firehose").create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "BucketARN": destination["BucketARN"],
                "RoleARN": destination["RoleARN"],
                "Prefix": prefix,
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
        logger.info("created Firehose delivery stream %s (to prefix %r)", name, prefix)
