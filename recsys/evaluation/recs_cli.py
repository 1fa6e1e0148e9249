"""`python -m recsys evaluate-recs` and `python -m recsys tune`: recommenders on an interactions file.

Both read a CSV, TSV or Parquet file of interactions, split it (see `splits`)
and print one JSON object on stdout; progress goes to stderr. A file without a
header row, such as MovieLens' ``u.data`` (user, item, rating, timestamp,
tab-separated), is read with ``--no-header`` and its columns named by position::

    python -m recsys evaluate-recs --interactions u.data --no-header --sep '\\t' \\
        --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --split temporal --algo ease

(when every column given is a number and some are not names in the first row,
the file is read as headerless anyway, with a note on stderr).

Like `recsys.cli`, each command imports what it runs inside its function, so that the
others start without loading the models' libraries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads only when a command runs, not for every `python -m recsys`
    import pandas as pd

SPLITS = ("stratified", "temporal", "time")
_SEPARATORS = {"\\t": "\t", "tab": "\t", "\\s+": r"\s+", "space": " ", "comma": ",", "semicolon": ";"}


class InputError(ValueError):
    """An input a user can fix: the message says what and where."""


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("the interactions file")
    data.add_argument("--interactions", metavar="FILE",
                      help="CSV, TSV or Parquet: one row per interaction (repeats are summed)")
    data.add_argument("--user-col", default="user_id", metavar="C", help="user column (default user_id)")
    data.add_argument("--item-col", default="product_id", metavar="C",
                      help="product column (default product_id)")
    data.add_argument("--rating-col", metavar="C",
                      help="rating column: the rating is then the weight and is kept for rating "
                           "models; without it every row weighs 1")
    data.add_argument("--time-col", metavar="C",
                      help="timestamp column: dates, or numbers read as Unix seconds "
                           "(default: 'timestamp' when the file has it)")
    data.add_argument("--sep", metavar="S",
                      help=r"delimiter of a text file: ',', ';', '\t' (or 'tab'), '\s+' for runs of "
                           "spaces (default: guessed)")
    data.add_argument("--no-header", action="store_true",
                      help="the file has no header row: name columns by position from 0, e.g. "
                           "--user-col 0 --item-col 1 (MovieLens u.data)")
    data.add_argument("--catalog", metavar="FILE",
                      help="products with product_id and title columns, for algorithms that need "
                           "product texts (semantic) and as the coverage denominator")
    split = parser.add_argument_group("the split")
    split.add_argument("--split", choices=SPLITS, default="stratified",
                       help="stratified: a random --test-frac of each user's products; temporal: each "
                            "user's --n-last latest products; time: everything after --cutoff (or "
                            "after the 1 - --test-frac time quantile). Default stratified")
    split.add_argument("--test-frac", type=float, default=0.25, help="default 0.25")
    split.add_argument("--n-last", type=int, default=1,
                       help="products per user held out by the temporal split (default 1)")
    split.add_argument("--cutoff", metavar="TIME", help="the time split's cutoff, e.g. 2011-11-01")
    split.add_argument("--min-interactions", type=int, default=1,
                       help="stratified: users with fewer interactions stay wholly in train")
    split.add_argument("--seed", type=int, default=42, help="default 42")
    split.add_argument("--k", type=int, default=10, help="length of the recommendation lists (default 10)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `evaluate-recs` on the `python -m recsys` subparsers."""
    parser = subparsers.add_parser(
        "evaluate-recs", help="split interactions, fit a recommender and score its top-k lists",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", required=True, metavar="NAME",
                        help="a registered algorithm, 'all' (every one that can run on the inputs; "
                             "prints a JSON list) or 'list' (prints the names)")
    _add_data_arguments(parser)
    parser.add_argument("--latency-users", type=int, default=200,
                        help="test users timed one recommend() call each (default 200; 0: none)")
    parser.add_argument("--preset", metavar="NAME",
                        help="with --algo hybrid: fuse as the stored recommendations preset NAME "
                             "(weights, method, rules) says")
    parser.add_argument("--preset-version", type=int, metavar="N", help="default: the latest")
    parser.set_defaults(func=run)
    return parser


def add_tune_parser(subparsers) -> argparse.ArgumentParser:
    """Register `tune` on the `python -m recsys` subparsers."""
    parser = subparsers.add_parser(
        "tune", help="search an algorithm's parameters on a validation split (nDCG@k)",
        description="Split the file into train and test, split train again into fit and validation "
                    "parts of the same kind, score each config of the algorithm's search_space on "
                    "validation by nDCG@k, then refit the best and the default config on train and "
                    "score both on test. Surprise models are also searched on RMSE by Surprise's "
                    "GridSearchCV. Prints one JSON object and writes it under var/tuning/.")
    parser.add_argument("--algo", required=True, metavar="NAME", help="a registered algorithm")
    _add_data_arguments(parser)
    parser.add_argument("--max-configs", type=int, metavar="N",
                        help="try at most N configs, drawn at random with --seed (default: all)")
    parser.add_argument("--surprise-cv", type=int, default=3,
                        help="folds of Surprise's GridSearchCV for rating models (default 3)")
    parser.add_argument("--out", metavar="FILE",
                        help="where to write the JSON (default var/tuning/<file>-<algo>.json)")
    parser.set_defaults(func=run_tune)
    return parser


# --- reading ---------------------------------------------------------------------


def read_interactions(path: str | Path, *, user_col: str = "user_id", item_col: str = "product_id",
                      rating_col: str | None = None, time_col: str | None = None,
                      sep: str | None = None, no_header: bool = False) -> pd.DataFrame:
    """An interactions frame (user_id, product_id, weight; rating, timestamp when given) from a file.

    Raises `InputError` naming the file, and the column or row, when it
    cannot be read or lacks a column.
    """
    import pandas as pd

    from recsys.data.readers import read_table
    from recsys.data.report import IngestError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: cannot be opened: there is no file {path}")
    sep = _SEPARATORS.get(sep, sep) if sep else None
    wanted = {"--user-col": user_col, "--item-col": item_col, "--rating-col": rating_col,
              "--time-col": time_col}
    asked = [c for c in wanted.values() if c is not None]
    by_position = all(c.isdigit() for c in asked)
    if not no_header:
        try:
            frame, _ = read_table(path, sep=sep)
        except IngestError as error:
            if not by_position:
                raise InputError(error.report.message()) from None
            frame = None  # perhaps a first row of data (e.g. a repeated value) read as a header
        if by_position and (frame is None or not all(c in frame.columns for c in asked)):
            logging.getLogger(__name__).warning(
                "note: %s has no header with the columns %s; reading it as a file without a header row "
                "(columns by position; say --no-header to skip this guess)", path.name, ", ".join(asked))
            no_header = True
    if no_header:
        frame = _read_headerless(path, sep)
    if time_col is None and "timestamp" in frame.columns:
        time_col = wanted["--time-col"] = "timestamp"
    defaults = {"--user-col": "user_id", "--item-col": "product_id"}
    for option, column in wanted.items():
        if column is not None and column not in frame.columns:
            given = f"the default of {option}" if defaults.get(option) == column else f"given as {option}"
            numbered = " (numbered from 0: the file has no header row)" if no_header else ""
            raise InputError(f"{path.name}: has no column '{column}' ({given}); its columns are "
                             f"{list(frame.columns)}{numbered}")
    interactions = pd.DataFrame({"user_id": _ids(frame[user_col]), "product_id": _ids(frame[item_col])})
    if rating_col is not None:
        rating = _numbers(frame[rating_col], path.name, rating_col)
        interactions["weight"] = rating
        interactions["rating"] = rating
    else:
        interactions["weight"] = 1.0
    if time_col is not None:
        interactions["timestamp"] = _times(frame[time_col], path.name, time_col)
    missing = interactions["user_id"].isna() | interactions["product_id"].isna()
    if missing.any():
        logging.getLogger(__name__).warning("%s: %d rows without a user or a product id were skipped",
                                            path.name, int(missing.sum()))
        interactions = interactions[~missing].reset_index(drop=True)
    if interactions.empty:
        raise InputError(f"{path.name}: no row has both a user and a product id")
    return interactions


def _read_headerless(path: Path, sep: str | None):
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        raise InputError(f"{path.name}: a Parquet file always has column names; drop --no-header")
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, na_values=[""],
                            engine="python" if sep is None or len(sep) > 1 else "c")
    except OSError as error:
        raise InputError(f"{path.name}: cannot be opened: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path.name}: is not UTF-8 text ({error.reason})") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path.name}: is empty") from None
    except pd.errors.ParserError as error:
        raise InputError(f"{path.name}: is not a well-formed delimited table: {error}") from None
    frame.columns = [str(i) for i in range(frame.shape[1])]
    return frame


def _ids(values):
    text = values.astype("string").str.strip()
    return text.where(text != "").astype(object)


def _numbers(values, file: str, column: str):
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise InputError(f"{file}, row {row + 1}, column '{column}': is not a number "
                         f"(value {values.iloc[row]!r})")
    return numbers.astype("float64")


def _times(values, file: str, column: str):
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return pd.to_datetime(numbers, unit="s")
    times = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = times.isna() & values.notna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise InputError(f"{file}, row {row + 1}, column '{column}': is not a date or time "
                         f"(value {values.iloc[row]!r})")
    return times


def _read_catalog(path: str | None):
    if path is None:
        return None
    from recsys.data.readers import read_table
    from recsys.data.report import IngestError

    try:
        frame, _ = read_table(Path(path))
    except IngestError as error:
        raise InputError(error.report.message()) from None
    missing = [c for c in ("product_id", "title") if c not in frame.columns]
    if missing:
        raise InputError(f"{Path(path).name}: the catalog needs the column(s) {missing}; "
                         f"it has {list(frame.columns)}")
    return frame


def _load(args):
    from recsys.evaluation.splits import SplitConfig, split_interactions

    if not args.interactions:
        raise InputError("give the interactions file with --interactions FILE")
    interactions = read_interactions(
        args.interactions, user_col=args.user_col, item_col=args.item_col, rating_col=args.rating_col,
        time_col=args.time_col, sep=args.sep, no_header=args.no_header)
    if args.split != "stratified" and "timestamp" not in interactions:
        raise InputError(f"{Path(args.interactions).name}: the {args.split} split needs a timestamp; "
                         "name its column with --time-col")
    if args.k <= 0:
        raise InputError(f"--k must be positive, not {args.k}")
    config = SplitConfig(kind=args.split, test_frac=args.test_frac, n_last=args.n_last,
                         cutoff=args.cutoff, min_interactions=args.min_interactions, seed=args.seed)
    logging.getLogger(__name__).info("%s: %s interactions of %s users and %s products; %s split",
                                     Path(args.interactions).name, f"{len(interactions):,}",
                                     f"{interactions['user_id'].nunique():,}",
                                     f"{interactions['product_id'].nunique():,}", args.split)
    try:
        train, test = split_interactions(interactions, config)
    except ValueError as error:  # a cutoff outside the data, a fraction outside (0, 1), a bad date
        raise InputError(f"{Path(args.interactions).name}: cannot make the {args.split} split: "
                         f"{error}") from None
    return config, train, test, _read_catalog(args.catalog)


# --- commands --------------------------------------------------------------------


@contextlib.contextmanager
def _cli_output():
    """Progress to stderr; anything a library prints goes there too, so stdout stays one JSON."""
    logger = logging.getLogger("recsys")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def _check_algo(name: str, allowed: tuple[str, ...] = ()) -> None:
    from recsys.recommenders import names

    if name not in names() and name not in allowed:
        choices = ", ".join([*names(), *allowed])
        raise InputError(f"unknown algorithm '{name}'; choose one of {choices}")


def run(args) -> int:
    """`evaluate-recs`: print the evaluation as one JSON object (a list for --algo all)."""
    from recsys.recommenders import names

    if args.algo == "list":
        _print(names())
        return 0
    try:
        with _cli_output():
            _check_algo(args.algo, ("all",))
            if getattr(args, "preset", None) and args.algo != "hybrid":
                raise InputError(f"--preset configures the hybrid; use it with --algo hybrid, "
                                 f"not {args.algo}")
            output = _evaluate(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print(output)
    return 0


def _evaluate(args):
    from recsys.evaluation.recs import cannot_run, evaluate_recommender
    from recsys.recommenders import names

    params = None
    if getattr(args, "preset", None):
        from recsys.fusion.presets import preset_config

        try:
            fusion = preset_config("recommendations", args.preset, args.preset_version)
        except LookupError as error:
            raise InputError(str(error)) from None
        params = {"fusion": fusion.to_dict()}
    config, train, test, catalog = _load(args)
    log = logging.getLogger(__name__)
    algorithms = names() if args.algo == "all" else [args.algo]
    results = []
    for name in algorithms:
        reason = cannot_run(name, catalog)
        if reason:
            if args.algo != "all":
                raise InputError(f"{reason}; give one with --catalog FILE")
            log.warning("skipping %s: %s", name, reason)
            continue
        try:
            result = evaluate_recommender(name, train, test, k=args.k, catalog=catalog, seed=args.seed,
                                          latency_users=args.latency_users,
                                          params=params if name == "hybrid" else None)
        except Exception as error:  # noqa: BLE001 - one algorithm failing on these data must not stop the rest
            problem = f"{name} failed on {Path(args.interactions).name}: {type(error).__name__}: {error}"
            if args.algo != "all":
                raise InputError(problem) from None
            log.warning("skipping %s", problem)
            continue
        results.append({**result, "file": Path(args.interactions).name,
                        "split": {**config.to_dict(), **test.attrs.get("split", {})}})
    return results if args.algo == "all" else results[0]


def run_tune(args) -> int:
    """`tune`: print the search's result as one JSON object."""
    try:
        with _cli_output():
            _check_algo(args.algo)
            output = _tune(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print(output)
    return 0


def _tune(args):
    from recsys.evaluation.recs import cannot_run
    from recsys.evaluation.tuning import TUNING_DIR, tune

    if args.max_configs is not None and args.max_configs < 1:
        raise InputError(f"--max-configs must be 1 or more, not {args.max_configs}")
    config, train, test, catalog = _load(args)
    reason = cannot_run(args.algo, catalog)
    if reason:
        raise InputError(f"{reason}; give one with --catalog FILE")
    out = Path(args.out) if args.out else TUNING_DIR / f"{Path(args.interactions).stem}-{args.algo}.json"
    try:
        result = tune(args.algo, train, config, args.k, max_configs=args.max_configs, seed=args.seed,
                      catalog=catalog, test=test, surprise_cv=args.surprise_cv, save_to=out)
    except (ValueError, ArithmeticError) as error:
        raise InputError(f"{args.algo} cannot be tuned on {Path(args.interactions).name}: "
                         f"{type(error).__name__}: {error}") from None
    return {**result, "file": Path(args.interactions).name}
