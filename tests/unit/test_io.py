"""Staged outputs that count their own rows, empty outputs without a job, and header reads."""

from __future__ import annotations

import gzip

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.etl.quality import QUARANTINE_SCHEMA
from deepspark.io import FileSystem, staged_outputs


def test_write_counted_returns_the_rows_it_wrote(spark, tmp_path):
    df = spark.createDataFrame([(1, "a"), (2, "b"), (3, None)], "id int, s string")
    final = str(tmp_path / "out")
    with staged_outputs(spark) as out:
        assert out.write_counted(df.filter("id > 1"), final) == 2
        out.commit()
    assertDataFrameEqual(spark.read.parquet(final), df.filter("id > 1"))


def test_write_empty_stages_a_readable_table_of_the_schema(spark, tmp_path):
    final = str(tmp_path / "quarantine")
    with staged_outputs(spark) as out:
        assert out.write_empty(final, QUARANTINE_SCHEMA) == 0
        assert not (tmp_path / "quarantine").exists()  # staged until the commit
        out.commit()
    got = spark.read.parquet(final)
    assert got.count() == 0
    # Spark reads every file column as nullable, whatever the writer said.
    assert got.schema == T.StructType([f.__class__(f.name, f.dataType) for f in QUARANTINE_SCHEMA])
    # The same output Spark would stage: one schema-only data file and the success marker
    # (Hadoop's local file system adds hidden .crc checksums beside them).
    names = sorted(p.name for p in (tmp_path / "quarantine").iterdir() if p.name[0] != ".")
    assert names == ["_SUCCESS", "part-00000-empty.parquet"]


def test_first_line_skips_the_bom_and_decompresses(spark, tmp_path):
    plain, packed, empty = tmp_path / "a.csv", tmp_path / "b.csv.gz", tmp_path / "c.csv"
    plain.write_bytes("\ufeffyear,month\n2013,1\n".encode())
    packed.write_bytes(gzip.compress(b"year;month\r\n2013;1\n"))
    empty.write_bytes(b"")
    fs = FileSystem(spark)
    assert fs.first_line(str(plain)) == "year,month"
    assert fs.first_line(str(packed)) == "year;month"
    assert fs.first_line(str(empty)) is None
