"""The workbench's SQL store: models, engine and sessions, queries and migrations.

This package is the only place SQL lives. Everything else talks to it through
`db.engine` (engines and sessions) and `db.queries` (reads and writes).
"""
