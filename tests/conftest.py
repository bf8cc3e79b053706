"""Session-wide setup shared by every test layer."""

from __future__ import annotations

import os

from infra.local.template import Template


def _apply_template_globals() -> None:
    # In Lambda the function's environment exists before any module is imported; powertools reads its
    # service name and metrics namespace at import. Test modules import handler code at collection, so
    # the template's global environment is applied first, here, exactly as the template declares it.
    template = Template.load()
    resolver = template.resolver()
    for name, value in template.global_environment.items():
        os.environ.setdefault(name, resolver.resolve_string(value))


_apply_template_globals()
