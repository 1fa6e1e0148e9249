"""The Online Retail adapter: invoice lines in, a catalog and purchase events out.

The UCI Online Retail file has one row per invoice line: InvoiceNo, StockCode,
Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country. From it:

- Catalog: one product per StockCode (upper-cased, so '85123a' and '85123A' are
  one product). The title is the most frequent Description among lines with a
  positive price (adjustment lines carry notes such as 'damaged' at price 0);
  the price is the median positive UnitPrice. Postage, fees, manual entries,
  discounts and gift vouchers (POST, DOT, M, D, C2, S, B, BANK CHARGES,
  AMAZONFEE, CRUK, PADS, gift_0001_*) are not products and are dropped.
- Events: every remaining line with a customer becomes a `purchase` event of
  the customer and the product, valued at the quantity, at the invoice time,
  with the invoice number as its session.
- Cancellations (InvoiceNo starting with 'C') and returns or stock adjustments
  (negative quantities) are dropped. They are not netted against the original
  purchase: many originals fall before the data starts, and a bought-then-
  returned product still tells us what the customer was interested in.
- Anonymous customers (no CustomerID, about a quarter of the lines) cannot be
  tied to a user: their lines feed the catalog (titles and prices) but not the
  events, and the report counts them under `missing_ids`.
- Each customer's country (the most frequent one on their lines) is kept on the
  users table.
- Category: the file has none, so each product gets one from the words of its
  title (`product_category`: the first group in `CATEGORY_WORDS` with a word in
  the title, e.g. "WHITE HANGING HEART T-LIGHT HOLDER" is "Candles & lights"),
  "Other" when no group matches. It is a heuristic for the demo's cards and
  category rules, not ground truth.
"""

from __future__ import annotations

from pathlib import Path

import re

import pandas as pd

from recsys.data.clean import DEFAULT_NON_PRODUCT_CODES, CleaningConfig
from recsys.data.ingest import IngestOptions, IngestResult, Prepared, prepare, store
from recsys.data.readers import read_table
from recsys.data.report import IngestError, IngestReport, Problem

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
           "UnitPrice", "CustomerID", "Country")
DEMO_FILE = Path(__file__).resolve().parents[2] / "data" / "online_retail.parquet"
CATALOG_MAPPING = {"StockCode": "product_id", "Description": "title", "UnitPrice": "price"}
EVENTS_MAPPING = {"CustomerID": "user_id", "StockCode": "product_id", "Quantity": "value",
                  "InvoiceDate": "timestamp", "InvoiceNo": "session_id", "UnitPrice": "price",
                  "Country": "country"}


# Manual entries, discounts, carriage, samples, bad-debt adjustments and cushion pads
# priced at a tenth of a penny: charges and book-keeping in this shop, not products.
ONLINE_RETAIL_NON_PRODUCT_CODES = DEFAULT_NON_PRODUCT_CODES + ("M", "D", "C2", "S", "B", "PADS")


# Checked in this order: seasonal first ("CHRISTMAS CANDLE" is Christmas), decor last.
CATEGORY_WORDS: tuple[tuple[str, frozenset[str]], ...] = tuple((name, frozenset(words.split())) for name, words in (
    ("Christmas", "CHRISTMAS XMAS ADVENT SANTA REINDEER SNOWFLAKE BAUBLE NATIVITY"),
    ("Easter", "EASTER"),
    ("Jewellery", "NECKLACE NECKLACE. EARRINGS BRACELET RING CHARM BEAD BEADS DIAMANTE BROOCH HAIR"),
    ("Candles & lights", "CANDLE CANDLES T-LIGHT T-LIGHTS LANTERN LIGHTS LIGHT NIGHTLIGHT TEALIGHT LAMP"),
    ("Bags", "BAG BAGS PURSE SHOPPER TOTE"),
    ("Cards & wrapping", "CARD CARDS WRAP PAPER ENVELOPE ENVELOPES RIBBONS RIBBON TAGS STICKER STICKERS"),
    ("Stationery", "NOTEBOOK PENCIL PENCILS PEN PENS ERASER CALENDAR DIARY NOTEPAD NOTEBOOKS"),
    ("Party", "PARTY BIRTHDAY BALLOON BALLOONS BUNTING GARLAND CONFETTI"),
    ("Toys & games", "TOY TOYS DOLLY GAME GAMES PUZZLE SPACEBOY JIGSAW SKITTLES DOMINOES PLAYHOUSE "
                     "KIDS CHILDRENS CHILDS"),
    ("Kitchen & dining", "MUG MUGS CUP CUPS TEA TEACUP BOWL BOWLS PLATE PLATES CUTLERY JAR JARS CAKE "
                         "BAKING NAPKINS KITCHEN PANTRY TEAPOT COFFEE TRAY TUMBLER SPOON SPOONS LUNCH "
                         "TEATIME RECIPE JUG EGG CAKESTAND"),
    ("Garden", "GARDEN PLANT PLANTER WATERING FEEDER DOORMAT"),
    ("Textiles", "APRON TOWEL TOWELS BLANKET THROW SCARF GLOVES QUILT"),
    ("Home decor", "CUSHION FRAME CLOCK MIRROR SIGN HOOK HOOKS DRAWER CABINET VASE ORNAMENT DECORATION "
                   "WALL DOORSTOP HANGING HOLDER STORAGE BOX BOXES"),
))


def product_category(title: str) -> str:
    """The demo's category of a product from the words of its title (see the module docstring).

    >>> product_category("WHITE HANGING HEART T-LIGHT HOLDER"), product_category("PAPER CHAIN KIT 50'S CHRISTMAS")
    ('Candles & lights', 'Christmas')
    >>> product_category("ASSORTED COLOURS SILK FAN")
    'Other'
    """
    words = set(re.split(r"[\s,/]+", str(title).upper()))
    return next((name for name, group in CATEGORY_WORDS if words & group), "Other")


def cleaning_config() -> CleaningConfig:
    return CleaningConfig(id_case="upper", default_event_type="purchase",
                          non_product_codes=ONLINE_RETAIL_NON_PRODUCT_CODES)


def prepare_online_retail(frame: pd.DataFrame, *, file: str, fmt: str) -> list[Prepared]:
    """Turn invoice lines into a prepared catalog and prepared purchase events."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        report = IngestReport(file=file, kind="online_retail", rows_in=len(frame))
        for column in missing:
            report.add_problem(Problem(file, f"column '{column}' of the Online Retail format is "
                                             f"missing; the file has {list(frame.columns)}",
                                       column=column))
        raise IngestError(report)
    config = cleaning_config()
    catalog = prepare(frame, IngestOptions("catalog", CATALOG_MAPPING, cleaning=config),
                      file=file, fmt=fmt)
    catalog.frame["category"] = catalog.frame["title"].map(product_category)
    lines = frame.assign(is_cancellation=frame["InvoiceNo"].astype("string").str.upper()
                         .str.startswith("C"))
    events = prepare(lines, IngestOptions("events", {**EVENTS_MAPPING,
                                                     "is_cancellation": "is_cancellation"},
                                          cleaning=config),
                     file=file, fmt=fmt, known_products=set(catalog.frame["product_id"]))
    return [catalog, events]


def ingest_online_retail(
    source: str | Path | bytes = DEMO_FILE,
    *,
    actor: str,
    filename: str | None = None,
    dry_run: bool = False,
    url: str | None = None,
    activate: bool = True,
) -> IngestResult:
    """Ingest an Online Retail file as a catalog version and an events version (both made active
    unless `activate` is False)."""
    filename = filename or (Path(source).name if isinstance(source, (str, Path)) else "upload")
    frame, fmt = read_table(source, filename)
    prepared = prepare_online_retail(frame, file=filename, fmt=fmt)
    reports = [p.report for p in prepared]
    if dry_run:
        return IngestResult(reports, [])
    return IngestResult(reports, store(prepared, source=filename, actor=actor, url=url, activate=activate))
