"""Online experiments on live traffic: interleaving and A/B tests of search presets, and live events.

- `assignment`: which sessions an experiment takes (stable hash) and which arm an A/B session gets;
  team-draft interleaving of two lists, and the credit of a list's clicks;
- `analysis`: the reports' statistics (sign test of interleaving wins, two-proportion tests of
  A/B rates, sessions still needed for a stated effect);
- `live`: events as the REST service takes them (`POST /events`): checked one by one, and the
  in-memory views that follow them (a session's recent products, live popularity);
- `service`: experiments by database URL (create, list, stop, report, promote the winner) and the
  live events fed into the search log; `cli`: ``python -m recsys experiments ...``.
"""
