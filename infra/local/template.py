"""template.yaml as typed data, plus a resolver for the intrinsic functions the local stack meets.

template.yaml is the one source of truth: the local stack reads key schemas, TTL attributes, the stream's mode,
the archive's delivery prefix and every function's environment from here instead of re-typing them.

The YAML is read with cfn-flip, which expands CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...),
rather than with cfn-lint's decoder: importing ``cfnlint`` costs seconds (its package pulls in the whole rule
engine), which every test session and every demo start would pay. A unit test checks that both read template.yaml
identically; what cfn-flip lets by (duplicate keys, say) `make lint` refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from cfn_tools import dump_json, load_yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

# What CloudFormation's pseudo parameters resolve to on the loopback stack; moto's default account id.
PSEUDO_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::StackName": "local",
        "AWS::URLSuffix": "amazonaws.com",
    }
)

FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template cannot be read, or an expression in it cannot be resolved."""


class UnresolvedReferenceError(TemplateError):
    """A Ref or Fn::GetAtt points at something the resolver was given no value for."""


def load_document(path: Path | str) -> dict[str, Any]:
    """The template as plain dicts and lists, short tags expanded to their long form."""
    try:
        # Through cfn-flip's JSON form: plain dicts and lists, exactly as the template written in JSON would read.
        document = json.loads(dump_json(load_yaml(Path(path).read_text(encoding="utf-8"))))
    except OSError as err:
        raise TemplateError(f"cannot read template {path}: {err}") from err
    except yaml.YAMLError as err:
        raise TemplateError(f"{path}: {err}") from err
    if not isinstance(document, dict):
        raise TemplateError(f"{path}: a template is a mapping at the top level")
    return document


def _string(value: Any, where: str) -> str:
    """A scalar as CloudFormation hands it to Ref and Sub: booleans lower case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__} {value!r}")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    # CloudFormation hands every parameter value to Ref as a string (Number included).
    default: str | None
    allowed_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    logical_id: str
    type: str
    properties: Mapping[str, Any]
    condition: str | None = None


class Resolver:
    """Evaluates Ref, Fn::GetAtt and Fn::Sub (its string form) against given values.

    Those three are all that the resources the local stack creates, the functions' environments and the
    retraining job's arguments use. Written by hand because the resolvers that exist (cfn-lint's, SAM's, moto's)
    come with their whole engines and resolve against a deployed stack's objects, not a map of local names.
    ``refs`` is what ``Ref`` to a resource returns (its name); ``attributes`` what ``Fn::GetAtt`` returns, keyed
    ``"LogicalId.Attribute"``.
    """

    SUPPORTED = ("Ref", "Fn::GetAtt", "Fn::Sub")

    def __init__(
        self,
        *,
        parameters: Mapping[str, str | list[str]],
        refs: Mapping[str, str],
        attributes: Mapping[str, str],
        resource_ids: frozenset[str] = frozenset(),
    ) -> None:
        self._values: dict[str, str | list[str]] = {**PSEUDO_PARAMETERS, **refs, **parameters}
        self._attributes = dict(attributes)
        self._resource_ids = resource_ids | frozenset(refs)

    def resolve(self, node: Any, where: str = "template") -> Any:
        """``node`` with every intrinsic function replaced by its value (plain str, list, dict)."""
        if isinstance(node, dict) and len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return self._ref(argument, f"{where}.Ref")
            if key == "Fn::GetAtt":
                return self._get_att(argument, f"{where}.{key}")
            if key == "Fn::Sub":
                return self._sub(argument, f"{where}.{key}")
            if isinstance(key, str) and key.startswith("Fn::"):
                raise TemplateError(f"{where}: {key} is not supported locally (supported: {', '.join(self.SUPPORTED)})")
        if isinstance(node, dict):
            return {key: self.resolve(value, f"{where}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(node)]
        return node

    def resolve_string(self, node: Any, where: str = "template") -> str:
        return _string(self.resolve(node, where), where)

    def _ref(self, target: Any, where: str) -> str | list[str]:
        if not isinstance(target, str):
            raise TemplateError(f"{where}: Ref takes a logical id, got {target!r}")
        if target in self._values:
            return self._values[target]
        if target in self._resource_ids:
            raise UnresolvedReferenceError(f"{where}: no physical name given for resource {target!r}")
        raise UnresolvedReferenceError(f"{where}: {target!r} is not a parameter, pseudo parameter or resource")

    def _get_att(self, argument: Any, where: str) -> str:
        key = argument if isinstance(argument, str) else ".".join(map(str, argument))
        if key not in self._attributes:
            raise UnresolvedReferenceError(f"{where}: no value given for {key}")
        return self._attributes[key]

    def _sub(self, text: Any, where: str) -> str:
        if not isinstance(text, str):
            raise TemplateError(f"{where}: only the string form of Fn::Sub is supported locally, got {text!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # "${!Literal}" is CloudFormation's escape for a literal "${Literal}".
                return "${" + name[1:] + "}"
            if "." in name and name not in self._values:
                return self._get_att(name, where)
            return _string(self._ref(name, where), f"{where}.${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, text)


@dataclass(frozen=True)
class Template:
    parameters: Mapping[str, Parameter]
    resources: Mapping[str, Resource]
    # Globals.Function.Environment.Variables, unresolved.
    global_environment: Mapping[str, Any]

    @classmethod
    def load(cls, path: Path | str = TEMPLATE_PATH) -> Template:
        return cls.from_document(load_document(path))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Template:
        parameters = {
            name: Parameter(
                name=name,
                type=str(spec.get("Type", "String")),
                default=None if spec.get("Default") is None else _string(spec["Default"], f"Parameters.{name}"),
                allowed_values=tuple(_string(v, f"Parameters.{name}") for v in spec.get("AllowedValues") or ()),
            )
            for name, spec in (document.get("Parameters") or {}).items()
        }
        resources: dict[str, Resource] = {}
        for logical_id, spec in (document.get("Resources") or {}).items():
            if not isinstance(spec, dict) or "Type" not in spec:
                raise TemplateError(f"Resources.{logical_id} has no Type")
            properties = spec.get("Properties") or {}
            resources[logical_id] = Resource(logical_id, str(spec["Type"]), properties, spec.get("Condition"))
        function_globals = (document.get("Globals") or {}).get("Function") or {}
        environment = (function_globals.get("Environment") or {}).get("Variables") or {}
        return cls(MappingProxyType(parameters), MappingProxyType(resources), MappingProxyType(environment))

    def resources_of_type(self, resource_type: str) -> dict[str, Resource]:
        """Resources of one type by logical id, in template order."""
        return {rid: res for rid, res in self.resources.items() if res.type == resource_type}

    def resource(self, logical_id: str) -> Resource:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"no resource {logical_id!r} in the template") from None

    def parameter_default(self, name: str) -> str:
        """A parameter's default as Ref would see it with no override."""
        parameter = self.parameters.get(name)
        if parameter is None or parameter.default is None:
            raise TemplateError(f"parameter {name!r} is not in the template or has no default")
        return parameter.default

    def parameter_values(self, overrides: Mapping[str, str] | None = None) -> dict[str, str | list[str]]:
        """Every parameter's value (override, else default) as Ref sees it; lists for list types."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise TemplateError(f"overrides for unknown parameters: {sorted(unknown)}")
        values: dict[str, str | list[str]] = {}
        for name, parameter in self.parameters.items():
            value = overrides.get(name, parameter.default)
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no override")
            if parameter.allowed_values and value not in parameter.allowed_values:
                raise TemplateError(f"parameter {name}={value!r} is not one of {parameter.allowed_values}")
            is_list = parameter.type == "CommaDelimitedList" or parameter.type.startswith("List<")
            values[name] = value.split(",") if is_list else value
        return values

    def resolver(
        self,
        refs: Mapping[str, str] | None = None,
        *,
        arns: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> Resolver:
        """A resolver over this template's parameters; ``arns`` (logical id -> ARN) answer ``X.Arn``."""
        return Resolver(
            parameters=self.parameter_values(parameter_overrides),
            refs=refs or {},
            attributes={f"{logical_id}.Arn": arn for logical_id, arn in (arns or {}).items()},
            resource_ids=frozenset(self.resources),
        )

    def function_environment(
        self, logical_id: str, physical_names: Mapping[str, str], parameter_overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Globals' environment merged with the function's own (the function wins), resolved to strings.

        ``physical_names`` is what ``Ref`` to each resource returns.
        """
        resource = self.resource(logical_id)
        if resource.type not in FUNCTION_TYPES:
            raise TemplateError(f"{logical_id} is a {resource.type}, not a function")
        own = (resource.properties.get("Environment") or {}).get("Variables") or {}
        resolver = self.resolver(physical_names, parameter_overrides=parameter_overrides)
        return {
            name: resolver.resolve_string(value, f"{logical_id}.Environment.{name}")
            for name, value in {**self.global_environment, **own}.items()
        }
