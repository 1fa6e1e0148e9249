"""What the pages and the command line ask of the workbench, by URL of a database.

Each module is one area (`datasets`, `presets`, `monitoring`, `evaluation`); with
`recsys.accounts`, `recsys.jobs`, `recsys.active`, `recsys.engines`, `recsys.model_registry`,
`recsys.alerts` and `recsys.serving.keys` they are all that `ui/` and `pages/` call: they open the
database sessions, so that the screens never do and SQL stays in `db/`.
"""

from db.engine import database_url, upgrade

__all__ = ["database_url", "upgrade"]
