"""render_html writes the fragment's HTML out by hand (no template engine at cold start); the autoescaping jinja2
template it replaced is the oracle: byte-identical output for any fragment, hostile text included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment, select_autoescape

from personalization.fragments import Fragment, FragmentItem, Mode, Reason, render_html

# The template serve rendered until issue 23, verbatim.
TEMPLATE = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
    """<section class="pz-fragment" data-slot="{{ f.slot }}" data-mode="{{ f.mode.value }}" \
data-rules-version="{{ f.rules_version }}"
{%- if f.variant %} data-variant="{{ f.experiment }}:{{ f.variant }}"{% endif %}>
<ol class="pz-items">
{%- for item in f.items %}
<li class="pz-item" data-item-id="{{ item.id }}"><a href="/products/{{ item.id | urlencode }}">{{ item.id }}</a>
{%- if item.category %} <span class="pz-category">{{ item.category }}</span>{% endif %}
{%- if item.price is not none %} <span class="pz-price">{{ "%.2f" | format(item.price) }}</span>{% endif %}</li>
{%- endfor %}
</ol>
</section>
"""
)

# Markup, quotes, entities, slashes, spaces, non-ASCII: everything escaping or URL-quoting must handle.
HOSTILE = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "<script>alert(1)</script>", '"><img src=x>', "a&b", "it's", "a/b c", "ü€😀", "%2F", "0"]),
)
ITEMS = st.builds(
    FragmentItem,
    id=HOSTILE,
    category=st.none() | HOSTILE,
    price=st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 0.005, 1e21]),
    score=st.floats(allow_nan=False, allow_infinity=False),
)
FRAGMENTS = st.builds(
    Fragment,
    slot=HOSTILE,
    mode=st.sampled_from(list(Mode)),
    reason=st.none() | st.sampled_from(list(Reason)),
    model_version=HOSTILE,
    rules_version=HOSTILE,
    experiment=st.none() | HOSTILE,
    variant=st.none() | HOSTILE,
    items=st.lists(ITEMS, max_size=5),
)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(FRAGMENTS)
def test_the_html_is_the_autoescaping_templates_byte_for_byte(fragment: Fragment) -> None:
    assert render_html(fragment) == TEMPLATE.render(f=fragment)


def test_markup_in_any_value_is_escaped() -> None:
    item = FragmentItem(id='"><script>x</script>', category="<b>", price=1.5, score=1.0)
    html = render_html(
        Fragment(slot="s", mode=Mode.PERSONALIZED, model_version="v", experiment="<e>", variant="&", items=[item])
    )
    for markup in ("<script>", "<b>", "<e>"):
        assert markup not in html
    assert 'href="/products/%22%3E%3Cscript%3Ex%3C/script%3E"' in html
    assert 'data-variant="&lt;e&gt;:&amp;"' in html
