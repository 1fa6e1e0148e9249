"""Search trials: query sets, configurations tried on them, blind pooled judging, scorecards.

`querysets` makes query sets (typed, from a file, sampled from the search log or the catalog's
vocabulary); `judging` pools the configurations' results for graders, blind, and measures how the
graders agree; `scorecard` scores each configuration on the consensus grades and compares two;
`service` does all of it by database URL for the Search trials page and the CLI (`cli`).
"""
