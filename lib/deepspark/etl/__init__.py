"""Floor 1: pure ``DataFrame -> DataFrame`` transforms. No I/O, no SparkSession, no collect."""
