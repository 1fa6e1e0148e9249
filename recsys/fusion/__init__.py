"""Fusion of ranked lists from several retrievers or recommenders; one file per method.

A fuser takes named, ranked, scored lists (``{"bm25": [(product_id, score), ...]}``,
best first) and returns one list of `FusedItem`s with each source's part in
them; business rules (`rules.py`) apply after. Fusers compose the components
that made the lists and never subclass them. Importing this package registers
every method in `FUSERS`.
"""

from recsys.fusion.base import (FUSERS, NORMALISATIONS, FusedItem, FusionConfig, SourceScore,
                                above_floors, check_sources, fuse, register_fuser, relevance)
from recsys.fusion.rrf import fuse_rrf, fuse_rrf_items, rrf_contribution
from recsys.fusion.rules import (RULE_KINDS, Rule, RuleEffect, RulesResult, apply_rules,
                                 attributes_from, load_attributes, rules_from, save_attributes)
from recsys.fusion.weighted import fuse_weighted, normalise

methods = FUSERS.names

__all__ = ["FUSERS", "NORMALISATIONS", "RULE_KINDS", "FusedItem", "FusionConfig", "Rule", "RuleEffect",
           "RulesResult", "SourceScore", "above_floors", "apply_rules", "attributes_from", "check_sources", "fuse",
           "fuse_rrf", "fuse_rrf_items", "fuse_weighted", "load_attributes", "methods", "normalise",
           "register_fuser", "relevance", "rrf_contribution", "rules_from", "save_attributes"]
