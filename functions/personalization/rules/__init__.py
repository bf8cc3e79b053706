"""Request-time business rules: a JSON document merchandisers edit, checked once, compiled against the catalog
once, then applied to every request in microseconds.

    document = parse_document(raw)                  # RulesError lists every problem, naming rule and field
    engine = RuleEngine(document, catalog)          # per catalog: item sets resolved through indexes
    plan = engine.plan(request)                     # per request: the active rules and the excluded items
    model_candidates(k=plan.pool_size(k), exclude=plan.excluded)   # serve: mask BEFORE scoring
    ruled = plan.apply(candidates, k)               # at most k items, with notes and the rules that acted

A rule is active for a request when it is enabled, every scope it names matches (segment name or id, slot,
journey, experiment variant) and start <= now < end.

Priority order and conflict resolution (docs/rules.md says the same for merchandisers):

1. Filters win over everything. exclude_purchased, exclude_seen, exclude_cart and exclude (and the items
   the person dismissed, always, rules or not) remove items wherever they come from: the model's candidates,
   serve's popularity fallback, a curated list or a pin. A dropped pinned or curated item gets a note naming
   both rules ("pin 'summer' item 123 dropped: excluded by 'exclude-cart'"); when several filters exclude an
   item, the note names the first in document order.
2. curated replaces the candidates. The first active curated rule in document order wins; later active ones
   are noted as ignored. Its items score 1.0 down to 1/n in their listed order, so boosts can still reorder
   them, and the diversity cap and pins still apply.
3. boost multiplies an item's score by its factor (several matching boosts multiply); a negative score is
   divided by it instead, so a boost (factor > 1) never lowers an item and a bury (factor < 1) never raises
   it. Then a stable re-sort by score descending, id ascending. Duplicate candidates keep their best score.
4. diversity: at most max_per_category items of one category among the first top_k recommended (non-pinned)
   items, or among all of them when top_k is omitted, counting every eligible pinned item of the category
   wherever it is pinned (the count then does not depend on k, and a pin never gives its category an extra
   place). Pins win: a pin is placed even when its category is full. An item over the cap is passed over:
   when top_k is shorter than the list, the items passed over come back right after the top_k-th recommended
   item, in rank order; otherwise, or when the window cannot be filled without them, they are left out: the
   cap always holds, and the list is shorter instead (serve asks the model for a larger pool to make that
   rare). The strictest active diversity rule applies (smallest cap, then document order); the others are
   noted as ignored. Items without a category are never capped. As the window counts recommended items, pins
   never shrink it: the cap also holds over the first top_k positions of the output.
5. pin places its items last, at position, position + 1, ... (its excluded items dropped first). Pins claim
   positions in document order; a position claimed already goes to the next free one, and an item pinned
   twice keeps its first place. The list is built in full, then cut to k: when the recommended items run out
   before a pin's position, the pin goes to the end (pins keep their order); a pin within the top k is always
   shown; one past k is not (noted).

So the output never holds more than k items nor the same item twice, and its length is min(k, eligible pins +
the recommended items that the filters and the diversity cap admit). RuledList.applied lists every rule that
removed, re-scored, placed or passed over an item of this list, or replaced it (curated).
"""

from personalization.rules.document import (
    Boost,
    Curated,
    Diversity,
    Exclude,
    ExcludeCart,
    ExcludePurchased,
    ExcludeSeen,
    Match,
    Pin,
    RulesDocument,
    RulesError,
    Scope,
    parse_document,
)
from personalization.rules.engine import SELECTION_CACHE_SIZE, RuleEngine
from personalization.rules.plan import POOL_CAP, RulePlan
from personalization.rules.selection import Exclusions, RuledList, RuleRequest

__all__ = [
    "POOL_CAP",
    "SELECTION_CACHE_SIZE",
    "Boost",
    "Curated",
    "Diversity",
    "Exclude",
    "ExcludeCart",
    "ExcludePurchased",
    "ExcludeSeen",
    "Exclusions",
    "Match",
    "Pin",
    "RuleEngine",
    "RulePlan",
    "RuleRequest",
    "RuledList",
    "RulesDocument",
    "RulesError",
    "Scope",
    "parse_document",
]
