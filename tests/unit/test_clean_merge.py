"""Incremental clean: a delivery merged into silver and the quarantine equals one full clean.

The stage MERGEs ``upserts`` into silver on the dedupe key and appends ``quarantined``; here both
are applied to DataFrames, so the specification is the transform's alone, on tiny inline rows.
"""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from deepspark.etl.clean import clean_table, mark_rules, merge_marked, rival_rows
from tests.unit.test_clean import KEY, SPEC, SRC

EARLIER = [
    (1, "N1", "AA", 2013, 1, 1, 517, 2.0, "x"),  # survivor until a smaller row of its key comes
    (7, "N7", "AA", None, None, None, None, 5.0, "w"),  # a key holding a null (no clock fields)
    (9, "N9", "DL", 2013, 1, 1, 517, 1440.0, "u"),
    (9, "N9", "DL", 2013, 1, 1, 517, 1500.0, "u"),  # broken (range), its key's survivor aside
    (4, "N4", "UA", 2013, 7, 1, 1200, 3.0, None),  # a key the delivery does not touch
    (6, "N6", "UA", 2013, 7, 1, 1300, 8.0, "b"),
    (6, "N6", "UA", 2013, 7, 1, 1300, 9.0, "a"),  # a duplicate already in the quarantine
]
DELIVERY = [
    (1, "N1", "AA", 2013, 1, 1, 517, 1.0, "z"),  # smaller: displaces the earlier survivor
    (7, "N7", "AA", None, None, None, None, 4.0, "w"),  # the same, on a key with a null
    (9, "N9", "DL", 2013, 1, 1, 517, 1440.0, "u"),  # re-delivered as it was: a duplicate
    (6, "N6", "UA", 2013, 7, 1, 1300, 8.5, "c"),  # larger than the survivor: a duplicate
    (5, None, "B6", 2013, 7, 1, 2400, None, None),  # a new key...
    (5, None, "B6", 2013, 7, 1, 2400, 9.0, None),  # ...twice in the delivery
    (3, "N3", "UA", 2013, 13, 1, 600, 1.0, "y"),  # broken (no such month)
]


def merged(silver: DataFrame, quarantine: DataFrame, earlier: DataFrame, delivery: DataFrame):
    """silver and the quarantine after the delivery, as the stage's MERGE and append leave them."""
    new = mark_rules(delivery, SPEC, key=KEY)
    rivals = rival_rows(mark_rules(earlier, SPEC, key=KEY), new, SPEC)
    upserts, quarantined = merge_marked(rivals, new, SPEC, source="flights")
    keys = upserts.select(*(F.col(k).alias(f"_{k}") for k in SPEC.dedupe))
    on = [F.col(k).eqNullSafe(F.col(f"_{k}")) for k in SPEC.dedupe]
    return silver.join(keys, on, "left_anti").unionByName(upserts), quarantine.unionByName(
        quarantined
    )


@pytest.mark.parametrize("order", ["as delivered", "reversed"])
def test_a_merged_delivery_equals_a_full_clean(spark, order):
    first, second = (EARLIER, DELIVERY) if order == "as delivered" else (DELIVERY, EARLIER)
    earlier, delivery = spark.createDataFrame(first, SRC), spark.createDataFrame(second, SRC)
    # The tables as the earlier run left them: stored rows, as the stage reads them back.
    silver, quarantine = (
        spark.createDataFrame(df.collect(), df.schema)
        for df in clean_table(earlier, SPEC, source="flights", key=KEY)
    )
    got_silver, got_quarantine = merged(silver, quarantine, earlier, delivery)
    want_silver, want_quarantine = clean_table(
        earlier.unionByName(delivery), SPEC, source="flights", key=KEY
    )
    got, want = got_silver.collect(), want_silver.collect()
    got_bad, want_bad = got_quarantine.collect(), want_quarantine.collect()
    assertDataFrameEqual(got, want)
    assertDataFrameEqual(got_bad, want_bad)
    # Per delivery, rows in = rows silver gained + rows the quarantine gained.
    assert len(second) == len(got) - silver.count() + len(got_bad) - quarantine.count()


def test_a_displaced_survivor_moves_to_the_quarantine_as_a_duplicate(spark):
    earlier = spark.createDataFrame(EARLIER, SRC)
    new = mark_rules(spark.createDataFrame(DELIVERY, SRC), SPEC, key=KEY)
    rivals = rival_rows(mark_rules(earlier, SPEC, key=KEY), new, SPEC)
    # Only the earlier rows that passed and share a key with the delivery's passing rows.
    assert sorted(r["delay"] for r in rivals.collect()) == [2.0, 5.0, 8.0, 9.0, 1440.0]
    upserts, quarantined = merge_marked(rivals, new, SPEC, source="flights")
    # Replaced or new keys only: flight 9 and 6 keep their survivors, so silver keeps its rows.
    assert sorted((r["flight"], r["delay"]) for r in upserts.collect()) == [
        (1, 1.0),
        (5, None),
        (7, 4.0),
    ]
    reasons = sorted(
        (r["rule"], '"delay":2.0' in r["record"] or '"delay":5.0' in r["record"])
        for r in quarantined.collect()
    )
    # Two displaced survivors (1 and 7), three duplicates of the delivery, one broken row.
    assert reasons == [("duplicate", False)] * 3 + [("duplicate", True)] * 2 + [
        ("timestamp:dep_time", False)
    ]
