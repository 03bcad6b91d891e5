"""Synthetic feature splits shaped like the features stage's output, written with pyarrow only.

    python benchmarks/datagen_features.py --kind sequence --rows 500000 [--root DIR]

Writes ``root/<kind>-<rows>/train/part-NNNNN.parquet`` (``--files`` files, row groups of about
``--row-group-mb`` MB of decoded data, snappy) and ``root/<kind>-<rows>/_manifest.json``. Columns
as Spark writes them: ``x`` a list of float32 (264 = 24x11 for sequence, 784 = 28x28 for image)
and ``y`` (float32 target / int32 label). A manifest with the same parameters means the data is
reused as is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENERATOR_VERSION = 1  # bump whenever the output changes: manifests decide reuse
KINDS = {
    # x length, x element nullable (as Spark writes it), y type
    "sequence": {"x_len": 24 * 11, "x_shape": [24, 11], "nullable": False, "y": "float32"},
    "image": {"x_len": 28 * 28, "x_shape": [1, 28, 28], "nullable": True, "y": "int32"},
}
CHUNK_ROWS = 65_536  # rows generated at a time (bounds the generator's memory)


def params(kind: str, rows: int, files: int, row_group_mb: int, seed: int) -> dict:
    """Everything that determines the data."""
    return {
        "generator_version": GENERATOR_VERSION,
        "kind": kind,
        "rows": rows,
        "files": files,
        "row_group_mb": row_group_mb,
        "seed": seed,
        **KINDS[kind],
    }


def split_dir(root: Path, kind: str, rows: int) -> Path:
    """Where one size of one kind lives."""
    return Path(root) / f"{kind}-{rows}"


def reusable(out: Path, wanted: dict) -> dict | None:
    """The manifest in ``out`` when its data was generated with ``wanted`` params, else None."""
    path = out / "_manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    return manifest if all(manifest.get(k) == v for k, v in wanted.items()) else None


def schema(kind: str) -> pa.Schema:
    """``x: list<element: float>``, ``y``: the features stage's columns (minus ids and times)."""
    spec = KINDS[kind]
    element = pa.field("element", pa.float32(), nullable=spec["nullable"])
    return pa.schema(
        [
            pa.field("x", pa.list_(element), nullable=spec["nullable"]),
            pa.field("y", pa.float32() if spec["y"] == "float32" else pa.int32()),
        ]
    )


def _chunk(kind: str, n: int, rng: np.random.Generator) -> pa.Table:
    spec = KINDS[kind]
    length = spec["x_len"]
    if kind == "image":  # pixel intensities in [0, 1], mostly background, as images are
        x = rng.random((n, length), dtype=np.float32)
        x[x < 0.6] = 0.0
        y = pa.array(rng.integers(0, 10, n, dtype=np.int32))
    else:  # standardized inputs
        x = rng.standard_normal((n, length), dtype=np.float32)
        y = pa.array(rng.standard_normal(n, dtype=np.float32))
    offsets = pa.array(np.arange(0, (n + 1) * length, length, dtype=np.int32))
    xs = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)), type=schema(kind)[0].type)
    return pa.Table.from_arrays([xs, y], schema=schema(kind))


def generate(root: Path, kind: str, rows: int, files: int, row_group_mb: int, seed: int) -> dict:
    """Write the split and its manifest (or reuse them); returns the manifest."""
    out = split_dir(root, kind, rows)
    wanted = params(kind, rows, files, row_group_mb, seed)
    found = reusable(out, wanted)
    if found is not None:
        return found
    (out / "_manifest.json").unlink(missing_ok=True)  # no stale manifest beside half-written data
    train = out / "train"
    train.mkdir(parents=True, exist_ok=True)
    for old in train.glob("*.parquet"):
        old.unlink()
    started = time.perf_counter()
    row_bytes = KINDS[kind]["x_len"] * 4 + 4
    group_rows = max(1, row_group_mb * 2**20 // row_bytes)
    chunk_rows = group_rows * max(1, CHUNK_ROWS // group_rows)  # whole row groups per write
    rng = np.random.default_rng(seed)
    per_file = [rows // files + (i < rows % files) for i in range(files)]
    for i, n in enumerate(per_file):
        path = train / f"part-{i:05d}.parquet"
        with pq.ParquetWriter(
            path, schema(kind), compression="snappy", use_dictionary=["y"]
        ) as writer:
            done = 0
            while done < n:
                table = _chunk(kind, min(chunk_rows, n - done), rng)
                writer.write_table(table, row_group_size=group_rows)
                done += table.num_rows
    metas = [pq.ParquetFile(p).metadata for p in sorted(train.glob("*.parquet"))]
    manifest = {
        **wanted,
        "row_groups": sum(m.num_row_groups for m in metas),
        "row_group_rows": group_rows,
        "bytes_on_disk": sum(p.stat().st_size for p in train.glob("*.parquet")),
        "decoded_bytes": rows * row_bytes,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line: write (or reuse) one synthetic split and print its manifest."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=sorted(KINDS), default="sequence")
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--row-group-mb", type=int, default=16)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--root", type=Path, default=Path("/tmp/deepspark-bench/features"))
    args = p.parse_args(argv)
    m = generate(args.root, args.kind, args.rows, args.files, args.row_group_mb, args.seed)
    print(json.dumps(m, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
