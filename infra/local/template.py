"""template.yaml as typed data, plus a resolver for the intrinsic functions the local stack needs.

template.yaml is the one source of truth for resource definitions: the local stack reads key schemas,
TTL attributes, stream settings and function environments from here instead of re-typing them.

The YAML is read with a small PyYAML loader that knows CloudFormation's short tags (``!Ref``, ``!GetAtt``,
``!Sub``, ...) rather than with cfn-lint's decoder: importing ``cfnlint`` costs about four seconds (its
package ``__init__`` pulls in the whole rule engine), which every test session and every demo start would
pay. A unit test checks that both decoders read template.yaml identically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

# What CloudFormation's pseudo parameters resolve to on the loopback stack; moto's default account id.
DEFAULT_PSEUDO_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::StackName": "local",
        "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/local",
        "AWS::URLSuffix": "amazonaws.com",
    }
)

FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template cannot be read, or an expression in it cannot be resolved."""


class UnresolvedReferenceError(TemplateError):
    """A Ref or Fn::GetAtt points at something the resolver was given no value for."""


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """SafeLoader plus CloudFormation short tags; duplicate keys are errors, as in CloudFormation."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise TemplateError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _construct_short_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise TemplateError(f"unexpected YAML node for !{tag_suffix}")
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # The short form "Resource.Attribute" splits at the first dot only (attributes may contain dots).
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_short_tag)


def load_document(path: Path | str) -> dict[str, Any]:
    """The template as plain dicts and lists, short tags expanded to their long form."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise TemplateError(f"cannot read template {path}: {err}") from err
    try:
        document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise TemplateError(f"{path}: {err}") from err
    if not isinstance(document, dict):
        raise TemplateError(f"{path}: a template is a mapping at the top level")
    return document


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    # CloudFormation hands every parameter value to Ref as a string (Number included).
    default: str | None
    description: str = ""
    allowed_values: tuple[str, ...] = ()

    @property
    def is_list(self) -> bool:
        return self.type == "CommaDelimitedList" or self.type.startswith("List<")


@dataclass(frozen=True, slots=True)
class Resource:
    logical_id: str
    type: str
    properties: Mapping[str, Any]
    condition: str | None = None


def _as_parameter_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_parameter_string(item) for item in value)
    return str(value)


def _scalar_to_string(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__} {value!r}")


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::Select, Fn::Split and Fn::Join against given values.

    ``refs`` is what ``Ref`` to a resource returns (a name for tables, streams and buckets; a URL for
    queues; an ARN for topics); ``attributes`` is what ``Fn::GetAtt`` returns, keyed ``"LogicalId.Attr"``.
    """

    SUPPORTED: ClassVar[frozenset[str]] = frozenset(
        {"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Select", "Fn::Split", "Fn::Join"}
    )

    def __init__(
        self,
        *,
        parameters: Mapping[str, str | list[str]],
        refs: Mapping[str, str],
        attributes: Mapping[str, str],
        resource_ids: frozenset[str] = frozenset(),
        pseudo_parameters: Mapping[str, str] = DEFAULT_PSEUDO_PARAMETERS,
    ) -> None:
        self._parameters = dict(parameters)
        self._refs = dict(refs)
        self._attributes = dict(attributes)
        self._resource_ids = resource_ids | frozenset(refs)
        self._pseudo = dict(pseudo_parameters)

    def resolve(self, node: Any, where: str = "template") -> Any:
        """``node`` with every intrinsic function replaced by its value (plain str, list, dict)."""
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, argument),) = node.items()
                if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")):
                    return self._intrinsic(key, argument, where)
            return {key: self.resolve(value, f"{where}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, f"{where}[{index}]") for index, item in enumerate(node)]
        return node

    def resolve_string(self, node: Any, where: str = "template") -> str:
        return _scalar_to_string(self.resolve(node, where), where)

    def _intrinsic(self, name: str, argument: Any, where: str) -> Any:
        where = f"{where}.{name}"
        if name == "Ref":
            return self._ref(argument, where)
        if name == "Fn::GetAtt":
            return self._get_att(argument, where)
        if name == "Fn::Sub":
            return self._sub(argument, where)
        if name == "Fn::Select":
            return self._select(argument, where)
        if name == "Fn::Split":
            return self._split(argument, where)
        if name == "Fn::Join":
            return self._join(argument, where)
        raise TemplateError(f"{where}: {name} is not supported locally (supported: {sorted(self.SUPPORTED)})")

    def _ref(self, target: Any, where: str) -> str | list[str]:
        if not isinstance(target, str):
            raise TemplateError(f"{where}: Ref takes a logical id, got {target!r}")
        if target in self._parameters:
            return self._parameters[target]
        if target in self._pseudo:
            return self._pseudo[target]
        if target in self._refs:
            return self._refs[target]
        if target in self._resource_ids:
            raise UnresolvedReferenceError(f"{where}: no physical name given for resource {target!r}")
        raise UnresolvedReferenceError(f"{where}: {target!r} is not a parameter, pseudo parameter or resource")

    def _get_att(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::GetAtt takes [LogicalId, Attribute], got {argument!r}")
        logical_id = argument[0]
        attribute = self.resolve(argument[1], where)
        key = f"{logical_id}.{attribute}"
        if key not in self._attributes:
            raise UnresolvedReferenceError(f"{where}: no value given for {key}")
        return self._attributes[key]

    def _sub(self, argument: Any, where: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(argument, list):
            if len(argument) != 2 or not isinstance(argument[1], dict):
                raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{variables}}]")
            text = argument[0]
            variables = {name: self.resolve(value, f"{where}.{name}") for name, value in argument[1].items()}
        else:
            text = argument
        if not isinstance(text, str):
            raise TemplateError(f"{where}: Fn::Sub needs a string, got {text!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                # "${!Literal}" is CloudFormation's escape for a literal "${Literal}".
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar_to_string(variables[name], f"{where}.${{{name}}}")
            if "." in name and name not in self._parameters:
                return self._get_att(name, where)
            return _scalar_to_string(self._ref(name, where), f"{where}.${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, text)

    def _select(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Select takes [index, list], got {argument!r}")
        raw_index = self.resolve(argument[0], where)
        try:
            index = int(raw_index)
        except (TypeError, ValueError) as err:
            raise TemplateError(f"{where}: index {raw_index!r} is not an integer") from err
        values = self.resolve(argument[1], where)
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Select needs a list, got {values!r}")
        if not 0 <= index < len(values):
            raise TemplateError(f"{where}: index {index} is out of range for {values!r}")
        return values[index]

    def _split(self, argument: Any, where: str) -> list[str]:
        # CloudFormation rejects anything but exactly [delimiter, source]: there is no maxsplit argument.
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Split takes exactly [delimiter, source], got {argument!r}")
        delimiter = self.resolve_string(argument[0], where)
        source = self.resolve_string(argument[1], where)
        if not delimiter:
            raise TemplateError(f"{where}: Fn::Split needs a non-empty delimiter")
        return source.split(delimiter)

    def _join(self, argument: Any, where: str) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Join takes [delimiter, list], got {argument!r}")
        delimiter = self.resolve_string(argument[0], where)
        values = self.resolve(argument[1], where)
        if not isinstance(values, list):
            raise TemplateError(f"{where}: Fn::Join needs a list, got {values!r}")
        return delimiter.join(_scalar_to_string(value, where) for value in values)


@dataclass(frozen=True)
class Template:
    parameters: Mapping[str, Parameter]
    resources: Mapping[str, Resource]
    # Globals.Function.Environment.Variables, unresolved.
    global_environment: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | str = TEMPLATE_PATH) -> Template:
        return cls.from_document(load_document(path), Path(path))

    @classmethod
    def from_document(cls, document: Mapping[str, Any], path: Path | None = None) -> Template:
        parameters: dict[str, Parameter] = {}
        for name, spec in (document.get("Parameters") or {}).items():
            if not isinstance(spec, dict):
                raise TemplateError(f"Parameters.{name} is not a mapping")
            default = spec.get("Default")
            parameters[name] = Parameter(
                name=name,
                type=str(spec.get("Type", "String")),
                default=None if default is None else _as_parameter_string(default),
                description=str(spec.get("Description", "")),
                allowed_values=tuple(_as_parameter_string(v) for v in spec.get("AllowedValues") or ()),
            )
        resources: dict[str, Resource] = {}
        for logical_id, spec in (document.get("Resources") or {}).items():
            if not isinstance(spec, dict) or "Type" not in spec:
                raise TemplateError(f"Resources.{logical_id} has no Type")
            resources[logical_id] = Resource(
                logical_id=logical_id,
                type=str(spec["Type"]),
                properties=spec.get("Properties") or {},
                condition=spec.get("Condition"),
            )
        function_globals = (document.get("Globals") or {}).get("Function") or {}
        environment = (function_globals.get("Environment") or {}).get("Variables") or {}
        return cls(
            parameters=MappingProxyType(parameters),
            resources=MappingProxyType(resources),
            global_environment=MappingProxyType(dict(environment)),
            path=path,
        )

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
            value = str(value)
            if parameter.allowed_values and value not in parameter.allowed_values:
                raise TemplateError(f"parameter {name}={value!r} is not one of {parameter.allowed_values}")
            values[name] = value.split(",") if parameter.is_list else value
        return values

    def resolver(
        self,
        refs: Mapping[str, str] | None = None,
        *,
        arns: Mapping[str, str] | None = None,
        attributes: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        pseudo_parameters: Mapping[str, str] = DEFAULT_PSEUDO_PARAMETERS,
    ) -> Resolver:
        """A resolver over this template's parameters; ``arns`` (logical id -> ARN) answer ``X.Arn``."""
        all_attributes = {f"{logical_id}.Arn": arn for logical_id, arn in (arns or {}).items()}
        all_attributes.update(attributes or {})
        return Resolver(
            parameters=self.parameter_values(parameter_overrides),
            refs=refs or {},
            attributes=all_attributes,
            resource_ids=frozenset(self.resources),
            pseudo_parameters=pseudo_parameters,
        )

    def function_environment(
        self,
        logical_id: str,
        physical_names: Mapping[str, str],
        parameter_overrides: Mapping[str, str] | None = None,
        *,
        arns: Mapping[str, str] | None = None,
        pseudo_parameters: Mapping[str, str] = DEFAULT_PSEUDO_PARAMETERS,
    ) -> dict[str, str]:
        """Globals' environment merged with the function's own (the function wins), resolved to strings.

        ``physical_names`` is what ``Ref`` to each resource returns.
        """
        resource = self.resource(logical_id)
        if resource.type not in FUNCTION_TYPES:
            raise TemplateError(f"{logical_id} is a {resource.type}, not a function")
        own = (resource.properties.get("Environment") or {}).get("Variables") or {}
        merged = {**self.global_environment, **own}
        resolver = self.resolver(
            physical_names,
            arns=arns,
            parameter_overrides=parameter_overrides,
            pseudo_parameters=pseudo_parameters,
        )
        return {
            name: resolver.resolve_string(value, f"{logical_id}.Environment.{name}") for name, value in merged.items()
        }
