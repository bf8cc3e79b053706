"""The loopback AWS stack: a moto server child process holding the resources template.yaml defines.

Tests and the demo talk to it over real HTTP with ordinary boto3/pynamodb clients; product code needs no
endpoint knob because botocore honours ``AWS_ENDPOINT_URL`` for every service (see ``aws_env()``).

    with LocalStack() as stack:
        table = stack.physical_names["ProfilesTable"]
        stack.client("dynamodb").describe_table(TableName=table)

Differences from AWS, on purpose:
- An ON_DEMAND Kinesis stream is created PROVISIONED with ``shard_count`` shards (default 2): moto gives
  on-demand streams a fixed 4 shards and refuses to reshard them, and a small known count makes
  per-shard behaviour (ordering, watermarks, partial failures) deterministic in tests.
- Every template parameter named ``*ParameterName`` is an SSM SecureString holding a random value
  generated once per ``start()``; ``reset()`` re-creates it with the same value, so secrets read at the
  beginning of a session stay valid after a reset.
- Functions are not created: local runs call handlers in-process or through the event-source poller, with
  ``function_env()`` as their environment.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

from infra.local.template import DEFAULT_PSEUDO_PARAMETERS, FUNCTION_TYPES, Resolver, Resource, Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
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

NAME_PROPERTY: Mapping[str, str] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SSM::Parameter": "Name",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
}

# Topics and queues first: other resources may point at their ARNs (dead letters, notifications).
_CREATION_ORDER = ("AWS::SNS::Topic", "AWS::SQS::Queue")
# Last: a delivery stream names the bucket it writes to.
_CREATED_LAST = ("AWS::KinesisFirehose::DeliveryStream",)

_SSM_NAME_PARAMETER_SUFFIX = "ParameterName"
_STARTUP_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.05
_STDERR_TAIL_CHARS = 4000

# CloudFormation-only table properties that have no local effect; listed so the log can say so.
_IGNORED_TABLE_PROPERTIES = frozenset(
    {"ContributorInsightsSpecification", "KinesisStreamSpecification", "ResourcePolicy", "ImportSourceSpecification"}
)


class LocalStackError(RuntimeError):
    """The local stack could not start, provision or stop."""


def conflicting_env_vars(environ: Mapping[str, str]) -> list[str]:
    """Names in ``environ`` that must be removed for ``aws_env()`` to take full effect."""
    return [name for name in environ if name in CONFLICTING_ENV_VARS or name.startswith(CONFLICTING_ENV_PREFIXES)]


def kebab_case(logical_id: str) -> str:
    """ProfilesTable -> profiles-table; SQSQueue -> sqs-queue (valid for every service's names)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", logical_id)
    return re.sub(r"[^a-z0-9-]+", "-", spaced.lower()).strip("-")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the server when this process dies, even by SIGKILL.

    atexit covers normal exits and exceptions; this covers a killed test run. libc is resolved here, in
    the parent, so the child does nothing between fork and exec but one system call. Linux ties this to
    the thread that started the server: start the stack from a thread that lives as long as it should.
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


def _serves_port(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the socket listening on ``port``; None where /proc cannot tell.

    An answer on the port proves nothing by itself: while our server still imports moto, another moto
    server (a parallel test session) may be the one answering, and provisioning or resetting it would
    clobber that session's data.
    """
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # Fields: sl, local address (hex ip:hex port), remote address, state (0A = LISTEN), ..., inode.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening.add(fields[9])
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    if not listening:
        return None if not Path("/proc/net/tcp").exists() else False
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:[") and target[len("socket:[") : -1] in listening:
            return True
    return False


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-_STDERR_TAIL_CHARS:]


def _wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise LocalStackError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(_POLL_INTERVAL_S)


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class LocalStack:
    """A moto server on loopback with template.yaml's tables, streams, buckets, queues, topics and secrets."""

    def __init__(
        self,
        template: Template | None = None,
        *,
        shard_count: int = DEFAULT_SHARD_COUNT,
        host: str = "127.0.0.1",
        port: int | None = None,
        region: str = DEFAULT_REGION,
        name_prefix: str = "local",
        parameter_overrides: Mapping[str, str] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        if shard_count < 1:
            raise ValueError("shard_count must be at least 1")
        self.template = template if template is not None else Template.load()
        self.shard_count = shard_count
        self.host = host
        self.region = region
        self.name_prefix = name_prefix
        self.startup_timeout_s = startup_timeout_s
        self.parameter_overrides = dict(parameter_overrides or {})
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        # boto3 clients are thread-safe, creating them from one Session is not.
        self._clients_lock = threading.Lock()
        self._secret_values: dict[str, str] = {}
        self._account_id = os.environ.get("MOTO_ACCOUNT_ID") or DEFAULT_PSEUDO_PARAMETERS["AWS::AccountId"]
        self.physical_names: dict[str, str] = self._physical_names()
        self.arns: dict[str, str] = {}
        # What Ref returns per resource where that is not its name (queue URLs, topic ARNs).
        self._ref_overrides: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        """Start the server and create every resource; on any failure the server is stopped again."""
        if self._process is not None:
            raise LocalStackError(f"already running (pid {self._process.pid})")
        self._launch()
        try:
            self._session = boto3.session.Session(
                aws_access_key_id=FAKE_CREDENTIAL,
                aws_secret_access_key=FAKE_CREDENTIAL,
                aws_session_token=FAKE_CREDENTIAL,
                region_name=self.region,
            )
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
        self._session = None
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
        with self._opener().open(request, timeout=10) as response:
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
    def account_id(self) -> str:
        return self._account_id

    @property
    def log_path(self) -> Path | None:
        """The server's stderr (one line per request), deleted by stop()."""
        return self._log_path

    @property
    def secret_parameter_names(self) -> list[str]:
        """SSM names of every template parameter called ``*ParameterName``, after overrides."""
        values = self.template.parameter_values(self.parameter_overrides)
        return [str(values[name]) for name in self.template.parameters if name.endswith(_SSM_NAME_PARAMETER_SUFFIX)]

    @property
    def secret_values(self) -> dict[str, str]:
        """SSM name -> the random value stored there for this run (local test secrets only)."""
        return dict(self._secret_values)

    @property
    def refs(self) -> dict[str, str]:
        """What ``Ref`` returns per resource: the name, or a queue's URL, or a topic's ARN."""
        return {**self.physical_names, **self._ref_overrides}

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
                assert self._session is not None
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
        for host in (self.host, "127.0.0.1", "localhost"):
            if host not in no_proxy:
                no_proxy.append(host)
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
        for name in conflicting_env_vars(env):
            del env[name]
        env.update(self.aws_env())
        return env

    def apply_env(self, environ: MutableMapping[str, str]) -> None:
        """Point ``environ`` (e.g. os.environ) at this stack in place."""
        for name in conflicting_env_vars(environ):
            del environ[name]
        environ.update(self.aws_env())

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The function's template environment resolved against the local names, plus ``aws_env()``."""
        env = self.template.function_environment(
            logical_id,
            self.refs,
            self.parameter_overrides,
            arns=self.arns,
            pseudo_parameters=self._pseudo_parameters(),
        )
        env.update(self.aws_env())
        return env

    # -- server process ----------------------------------------------------------------------------

    def _launch(self) -> None:
        attempts = 1 if self._requested_port is not None else _STARTUP_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port(self.host)
            try:
                self._spawn(port)
                return
            except LocalStackError as err:
                # Another process can take the free port between our probe and the server's bind.
                if attempt < attempts and "Address already in use" in str(err):
                    logger.warning("port %d was taken before moto bound it; retrying", port)
                    continue
                raise

    def _spawn(self, port: int) -> None:
        fd, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self._log_path = Path(log_name)
        env = dict(os.environ)
        for name in [*conflicting_env_vars(env), "AWS_ENDPOINT_URL"]:
            env.pop(name, None)
        # Pinned rather than asked of STS afterwards: that first STS call costs moto a third of a second.
        env["MOTO_ACCOUNT_ID"] = self._account_id
        # moto's server, with one emulator bug fixed before it serves (see infra/local/moto_main.py).
        command = [sys.executable, "-m", "infra.local.moto_main", "-H", self.host, "-p", str(port)]
        with os.fdopen(fd, "wb") as log:
            # stderr goes to a file, not a pipe: werkzeug logs every request there and would block on a
            # full pipe nobody reads.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent_hook(),
            )
        self._port = port
        atexit.register(self.stop)
        logger.info("started moto server pid %d on %s", self._process.pid, self.endpoint_url)
        try:
            self._wait_until_answering()
        except LocalStackError as err:
            output = _tail(self._log_path)
            self.stop()
            raise LocalStackError(
                f"moto server did not come up on {self.host}:{port} ({err}); its output:\n{output}"
            ) from None

    def _wait_until_answering(self) -> None:
        process = self._process
        assert process is not None
        url = f"{self.endpoint_url}/moto-api/"
        opener = self._opener()
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if process.poll() is not None:
                raise LocalStackError(f"moto server exited with code {process.returncode}")
            try:
                with opener.open(url, timeout=1) as response:
                    answered = response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                answered = False
            if answered and _serves_port(process.pid, self.port) is not False:
                return
            if time.monotonic() > deadline:
                raise LocalStackError(f"no answer from {url} within {self.startup_timeout_s:.0f} s")
            time.sleep(_POLL_INTERVAL_S)

    @staticmethod
    def _opener() -> urllib.request.OpenerDirector:
        # No proxy handler: a proxy from the environment must never see loopback traffic.
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _require_running(self) -> None:
        if self._process is None:
            raise LocalStackError("the stack is not running; use start() or a with block")

    # -- names -------------------------------------------------------------------------------------

    def _pseudo_parameters(self) -> dict[str, str]:
        return {
            **DEFAULT_PSEUDO_PARAMETERS,
            "AWS::AccountId": self._account_id,
            "AWS::Region": self.region,
            "AWS::StackName": self.name_prefix,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self._account_id}:stack/"
            f"{self.name_prefix}/{self.name_prefix}",
        }

    def _physical_names(self) -> dict[str, str]:
        """Logical id -> name: the template's explicit name if it has one, else ``<prefix>-<kebab-id>``."""
        resolver = self.template.resolver(
            parameter_overrides=self.parameter_overrides, pseudo_parameters=self._pseudo_parameters()
        )
        names: dict[str, str] = {}
        for logical_id, resource in self.template.resources.items():
            explicit = NAME_PROPERTY.get(resource.type)
            if explicit and explicit in resource.properties:
                names[logical_id] = resolver.resolve_string(resource.properties[explicit], f"{logical_id}.{explicit}")
                continue
            name = f"{self.name_prefix}-{kebab_case(logical_id)}"
            fifo = resource.properties.get("FifoQueue") or resource.properties.get("FifoTopic")
            if resource.type in ("AWS::SQS::Queue", "AWS::SNS::Topic") and fifo in (True, "true"):
                name += ".fifo"
            names[logical_id] = name
        return names

    def _predicted_arn(self, resource: Resource) -> str | None:
        name = self.physical_names[resource.logical_id]
        scope = f"{self.region}:{self._account_id}"
        formats = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{scope}:table/{name}",
            "AWS::Kinesis::Stream": f"arn:aws:kinesis:{scope}:stream/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{scope}:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{scope}:{name}",
            "AWS::SSM::Parameter": f"arn:aws:ssm:{scope}:parameter/{name.lstrip('/')}",
            "AWS::KinesisFirehose::DeliveryStream": f"arn:aws:firehose:{scope}:deliverystream/{name}",
            # Roles are not created locally; a delivery stream still names its role's ARN.
            "AWS::IAM::Role": f"arn:aws:iam::{self._account_id}:role/{name}",
        }
        if resource.type in FUNCTION_TYPES:
            return f"arn:aws:lambda:{scope}:function:{name}"
        return formats.get(resource.type)

    # -- provisioning ------------------------------------------------------------------------------

    def _provision(self) -> None:
        started = time.perf_counter()
        self.arns = {}
        self._ref_overrides = {}
        for resource in self.template.resources.values():
            arn = self._predicted_arn(resource)
            if arn is not None:
                self.arns[resource.logical_id] = arn
            if resource.type == "AWS::SNS::Topic" and arn is not None:
                self._ref_overrides[resource.logical_id] = arn

        creators: dict[str, Callable[[Resource, Resolver], None]] = {
            "AWS::SNS::Topic": self._create_topic,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::Kinesis::Stream": self._create_stream,
            "AWS::S3::Bucket": self._create_bucket,
            "AWS::SSM::Parameter": self._create_ssm_parameter,
            "AWS::KinesisFirehose::DeliveryStream": self._create_delivery_stream,
        }

        def rank(resource: Resource) -> int:
            if resource.type in _CREATION_ORDER:
                return _CREATION_ORDER.index(resource.type)
            return len(_CREATION_ORDER) + (resource.type in _CREATED_LAST)

        resources = sorted(self.template.resources.values(), key=rank)
        for resource in resources:
            creator = creators.get(resource.type)
            if creator is None:
                logger.info("not created locally: %s %s", resource.type, resource.logical_id)
                continue
            if resource.condition is not None:
                raise LocalStackError(
                    f"{resource.logical_id} has Condition {resource.condition!r}; conditions are not evaluated locally"
                )
            # A fresh resolver per resource: queue URLs and real ARNs land in the maps as they are created.
            resolver = self.template.resolver(
                self.refs,
                arns=self.arns,
                parameter_overrides=self.parameter_overrides,
                pseudo_parameters=self._pseudo_parameters(),
            )
            creator(resource, resolver)

        for name, value in self._secret_values.items():
            self.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
            logger.info("put SSM SecureString %s (random, local only)", name)
        logger.info("provisioned local stack in %.2f s", time.perf_counter() - started)

    def _properties(self, resource: Resource, resolver: Resolver) -> dict[str, Any]:
        resolved = resolver.resolve(dict(resource.properties), resource.logical_id)
        assert isinstance(resolved, dict)
        return resolved

    def _create_table(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        billing_mode = props.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing_mode,
        }
        if billing_mode == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
        if "GlobalSecondaryIndexes" in props:
            request["GlobalSecondaryIndexes"] = [
                _index(index, with_throughput=billing_mode == "PROVISIONED")
                for index in props["GlobalSecondaryIndexes"]
            ]
        if "LocalSecondaryIndexes" in props:
            request["LocalSecondaryIndexes"] = [
                _index(index, with_throughput=False) for index in props["LocalSecondaryIndexes"]
            ]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        sse = props.get("SSESpecification")
        if sse:
            request["SSESpecification"] = {
                key: value
                for key, value in {
                    "Enabled": sse.get("SSEEnabled"),
                    "SSEType": sse.get("SSEType"),
                    "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
                }.items()
                if value is not None
            }
        for key in ("TableClass", "DeletionProtectionEnabled", "Tags"):
            if key in props:
                request[key] = props[key]
        ignored = _IGNORED_TABLE_PROPERTIES & set(props)
        if ignored:
            logger.debug("%s: ignored locally: %s", resource.logical_id, sorted(ignored))

        dynamodb = self.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        _wait_until(
            lambda: dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE",
            30,
            f"table {name} to become ACTIVE",
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled") in (True, "true"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled") in (True, "true"):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        self.arns[resource.logical_id] = description["TableArn"]
        logger.info("created DynamoDB table %s (ttl=%s)", name, ttl["AttributeName"] if ttl else None)

    def _create_stream(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        shards = self.shard_count if mode == "ON_DEMAND" else int(props.get("ShardCount", 1))
        kinesis = self.client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=shards, StreamModeDetails={"StreamMode": "PROVISIONED"})

        def active() -> bool:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            return summary["StreamStatus"] == "ACTIVE"

        _wait_until(active, 30, f"stream {name} to become ACTIVE")
        retention = int(props.get("RetentionPeriodHours", 24))
        if retention > 24:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
        encryption = props.get("StreamEncryption")
        if encryption:
            kinesis.start_stream_encryption(
                StreamName=name, EncryptionType=encryption["EncryptionType"], KeyId=encryption["KeyId"]
            )
            _wait_until(active, 30, f"stream {name} to become ACTIVE after encryption")
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        self.arns[resource.logical_id] = summary["StreamARN"]
        logger.info("created Kinesis stream %s with %d shards (template mode %s)", name, shards, mode)

    def _create_bucket(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
            )
        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
        encryption = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
        if encryption:
            rules: list[Any] = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in encryption
            ]
            configuration: Any = {"Rules": rules}
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=configuration)
        public_access = props.get("PublicAccessBlockConfiguration")
        if public_access:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=public_access)
        logger.info("created S3 bucket %s (versioning=%s)", name, versioning or "off")

    def _create_queue(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        attributes = {key: _attribute_string(value) for key, value in props.items() if key not in ("QueueName", "Tags")}
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._ref_overrides[resource.logical_id] = url
        self.arns[resource.logical_id] = arn
        logger.info("created SQS queue %s", name)

    def _create_topic(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        attributes = {
            key: _attribute_string(props[key])
            for key in ("DisplayName", "FifoTopic", "ContentBasedDeduplication", "KmsMasterKeyId")
            if key in props
        }
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self._ref_overrides[resource.logical_id] = arn
        self.arns[resource.logical_id] = arn
        if "Subscription" in props:
            logger.info("%s: subscriptions are not created locally", resource.logical_id)
        logger.info("created SNS topic %s", name)

    def _create_delivery_stream(self, resource: Resource, resolver: Resolver) -> None:
        """A DirectPut delivery stream to the template's bucket. moto writes every PutRecordBatch straight to S3 as
        one object under `<prefix>YYYY/MM/DD/HH/` (no buffering, compression or processing), so the prefix is cut
        at the folder holding its first dynamic-partitioning expression: `events/dt=!{...}/` becomes `events/`."""
        props = resource.properties
        if props.get("DeliveryStreamType", "DirectPut") != "DirectPut":
            raise LocalStackError(f"{resource.logical_id}: only DirectPut delivery streams are created locally")
        where = f"{resource.logical_id}.ExtendedS3DestinationConfiguration"
        destination = props["ExtendedS3DestinationConfiguration"]
        prefix = resolver.resolve_string(destination.get("Prefix", ""), f"{where}.Prefix")
        if "!{" in prefix:
            prefix = prefix[: prefix.rfind("/", 0, prefix.index("!{")) + 1]
        name = self.physical_names[resource.logical_id]
        firehose = self.client("firehose")
        arn = firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "BucketARN": resolver.resolve_string(destination["BucketARN"], f"{where}.BucketARN"),
                "RoleARN": resolver.resolve_string(destination["RoleARN"], f"{where}.RoleARN"),
                "Prefix": prefix,
                "CompressionFormat": "UNCOMPRESSED",
            },
        )["DeliveryStreamARN"]
        self.arns[resource.logical_id] = arn
        logger.info("created Firehose delivery stream %s (to prefix %r)", name, prefix)

    def _create_ssm_parameter(self, resource: Resource, resolver: Resolver) -> None:
        props = self._properties(resource, resolver)
        name = self.physical_names[resource.logical_id]
        self.client("ssm").put_parameter(
            Name=name,
            Value=_attribute_string(props["Value"]),
            Type=props.get("Type", "String"),
            Overwrite=True,
        )
        logger.info("created SSM parameter %s", name)


def _throughput(spec: Mapping[str, Any] | None) -> dict[str, int]:
    spec = spec or {}
    return {
        "ReadCapacityUnits": int(spec.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(spec.get("WriteCapacityUnits", 5)),
    }


def _index(spec: Mapping[str, Any], *, with_throughput: bool) -> dict[str, Any]:
    index: dict[str, Any] = {key: spec[key] for key in ("IndexName", "KeySchema", "Projection") if key in spec}
    if with_throughput:
        index["ProvisionedThroughput"] = _throughput(spec.get("ProvisionedThroughput"))
    return index
