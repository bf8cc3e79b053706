"""The loopback AWS stack, built from template.yaml."""

from infra.local.stack import LocalStack, LocalStackError
from infra.local.template import Resolver, Template, TemplateError, UnresolvedReferenceError

__all__ = ["LocalStack", "LocalStackError", "Resolver", "Template", "TemplateError", "UnresolvedReferenceError"]
