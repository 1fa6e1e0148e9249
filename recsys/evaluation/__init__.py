"""Splits, ranking metrics and the evaluation of recommenders and search."""
