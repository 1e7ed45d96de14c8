#!/usr/bin/env python3
"""Run Splink (DuckDB backend) on two agency extracts and score it against truth.

    python splink_bench.py A.csv A.truth.ndjson B.csv B.truth.ndjson \
        [--threshold 0.9] [--json]

Splink links file A to file B (link_only) on family name, given name and date
of birth only, clusters the pairwise predictions at the threshold, and the
clusters are scored pairwise against the ground truth exactly as the Rust side
scores agencylink (see README.md beside this file).

Everything Splink (and DuckDB) writes goes to stderr; stdout carries only the
one-line summary, or with --json one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import sys
import time
import unicodedata

# Seeds and sizes, fixed so that runs are repeatable.
U_SAMPLING_SEED = 42
U_SAMPLING_MAX_PAIRS = 1e7
# Recall assumed for the deterministic rule (exact family name, given name and
# date of birth) when estimating the prior. Extracts from two agencies carry
# typos, nicknames and blanks, so an exact rule misses a fair share of matches.
DETERMINISTIC_RECALL = 0.7


# ------------------------------------------------------------ canonical forms
# The same simple canonicalisation for both files, mirroring agencylink's
# person-name and date canonical forms (crates/core/src/pseudo/canonical.rs).


def canon_name(value: str | None) -> str | None:
    """NFKD, drop combining marks, lower-case, non-letters to single spaces,
    trimmed; None when nothing is left."""
    if value is None:
        return None
    stripped = "".join(
        c
        for c in unicodedata.normalize("NFKD", value)
        if not unicodedata.category(c).startswith("M")
    )
    out: list[str] = []
    gap = False
    for c in stripped.lower():
        if c.isalpha():
            if gap and out:
                out.append(" ")
            gap = False
            out.append(c)
        else:
            gap = True
    return "".join(out) or None


def _is_real_date(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or d < 1:
        return False
    if m in (4, 6, 9, 11):
        days = 30
    elif m == 2:
        days = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    else:
        days = 31
    return d <= days


def canon_dob(value: str | None) -> str | None:
    """`YYYY-MM-DD[...time]` or `D/M/YYYY` (also `-` or `.` as separator) to
    `YYYY-MM-DD`; blank, unparseable, impossible or pre-1900 dates to None."""
    if value is None:
        return None
    s = value.strip()
    if not s:
        return None
    try:
        if len(s) >= 10 and s[4] == "-" and s[7] == "-":
            parts = (s[0:4], s[5:7], s[8:10])
            if not all(p.isdigit() for p in parts):
                return None
            y, m, d = (int(p) for p in parts)
        else:
            sep = next((c for c in s if not c.isdigit()), None)
            if sep not in ("/", "-", "."):
                return None
            bits = s.split(sep)
            if (
                len(bits) != 3
                or not all(b.isdigit() for b in bits)
                or not 1 <= len(bits[0]) <= 2
                or not 1 <= len(bits[1]) <= 2
                or len(bits[2]) != 4
            ):
                return None
            d, m, y = (int(b) for b in bits)
    except ValueError:
        return None
    if y < 1900 or not _is_real_date(y, m, d):
        return None
    return f"{y:04d}-{m:02d}-{d:02d}"


# ------------------------------------------------------------------- inputs


def read_extract(csv_path: str, truth_path: str) -> tuple[list[dict], list[str]]:
    """The canonicalised rows of one extract (unique_id = 1-based data row) and
    the truth person of each row, in file order."""
    rows: list[dict] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        for i, rec in enumerate(csv.DictReader(f), start=1):
            rows.append(
                {
                    "unique_id": i,
                    "family_name": canon_name(rec.get("family_name")),
                    "given_name": canon_name(rec.get("given_name")),
                    "dob": canon_dob(rec.get("dob")),
                }
            )
    person_by_row: dict[int, str] = {}
    with open(truth_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if "row" not in obj:  # e.g. the closing {"summary": ...} line
                continue
            person_by_row[int(obj["row"])] = str(obj["person"])
    missing = [r["unique_id"] for r in rows if r["unique_id"] not in person_by_row]
    if missing or len(person_by_row) != len(rows):
        raise SystemExit(
            f"{truth_path}: truth does not cover the {len(rows)} rows of "
            f"{csv_path} one to one (first row without truth: "
            f"{missing[0] if missing else 'none'}; truth rows: {len(person_by_row)})"
        )
    return rows, [person_by_row[r["unique_id"]] for r in rows]


# -------------------------------------------------------------------- Splink


def dob_comparison(cl, cll):
    """Splink's DateOfBirthComparison levels (null / exact / Levenshtein <= 1 /
    within 1 month / 1 year / 10 years / else) with one more level after
    exact: day and month transposed, the classic DD/MM versus MM/DD slip."""
    fmt = "%Y-%m-%d"
    return cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            cll.CustomLevel(
                "substr(dob_l, 1, 4) = substr(dob_r, 1, 4)"
                " AND substr(dob_l, 6, 2) = substr(dob_r, 9, 2)"
                " AND substr(dob_l, 9, 2) = substr(dob_r, 6, 2)",
                label_for_charts="Day and month transposed",
            ),
            cll.LevenshteinLevel("dob", 1),
            cll.AbsoluteDateDifferenceLevel(
                "dob", input_is_string=True, threshold=1, metric="month",
                datetime_format=fmt,
            ),
            cll.AbsoluteDateDifferenceLevel(
                "dob", input_is_string=True, threshold=1, metric="year",
                datetime_format=fmt,
            ),
            cll.AbsoluteDateDifferenceLevel(
                "dob", input_is_string=True, threshold=10, metric="year",
                datetime_format=fmt,
            ),
            cll.ElseLevel(),
        ],
    )


def run_splink(rows_a: list[dict], rows_b: list[dict], threshold: float):
    """Train a Splink model on the two extracts, predict, cluster at the
    threshold; returns {("a"|"b", row): cluster_id} for every record."""
    import duckdb
    import pyarrow as pa
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect(":memory:")
    # DuckDB's progress bar would draw on the terminal.
    con.execute("SET enable_progress_bar = false")
    db_api = DuckDBAPI(con)

    schema = pa.schema(
        [
            ("unique_id", pa.int64()),
            ("family_name", pa.string()),
            ("given_name", pa.string()),
            ("dob", pa.string()),
        ]
    )
    df_a = db_api.register(
        pa.Table.from_pylist(rows_a, schema=schema), dataset_display_name="a"
    )
    df_b = db_api.register(
        pa.Table.from_pylist(rows_b, schema=schema), dataset_display_name="b"
    )

    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            # Null / exact (with term-frequency adjustment) / Jaro-Winkler
            # >= 0.92, 0.88, 0.7 / else.
            cl.NameComparison("family_name"),
            cl.NameComparison("given_name"),
            dob_comparison(cl, cll),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("dob"),
            block_on("family_name", "given_name"),
            block_on("given_name", "substr(dob, 1, 4)"),
            block_on("substr(family_name, 1, 3)", "substr(dob, 1, 4)"),
            block_on("family_name", "substr(dob, 6, 5)"),
        ],
        retain_intermediate_calculation_columns=False,
    )

    linker = Linker([df_a, df_b], settings, log_level=logging.WARNING)

    linker.training.estimate_probability_two_random_records_match(
        [block_on("family_name", "given_name", "dob")],
        recall=DETERMINISTIC_RECALL,
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=U_SAMPLING_MAX_PAIRS, seed=U_SAMPLING_SEED
    )
    # Names' m from pairs blocked on date of birth; date of birth's m from
    # pairs blocked on both names.
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("dob")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("family_name", "given_name")
    )

    df_predict = linker.inference.predict(threshold_match_probability=threshold)
    df_clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        df_predict, threshold_match_probability=threshold
    )
    out = {}
    for r in df_clusters.as_record_list():
        out[(r["source_dataset"], int(r["unique_id"]))] = r["cluster_id"]
    return out


# ------------------------------------------------------------------ scoring


def pairs_of_groups(groups) -> set[tuple]:
    """All unordered pairs (as sorted tuples) of members within each group."""
    pairs: set[tuple] = set()
    for members in groups:
        ms = sorted(members)
        for i in range(len(ms)):
            for j in range(i + 1, len(ms)):
                pairs.add((ms[i], ms[j]))
    return pairs


def group_by(label_of: dict) -> list[list]:
    groups: dict = {}
    for rec, label in label_of.items():
        groups.setdefault(label, []).append(rec)
    return [g for g in groups.values() if len(g) > 1]


def score(truth: dict, cluster: dict) -> dict:
    true_pairs = pairs_of_groups(group_by(truth))
    # A record Splink did not return is a singleton.
    pred_label = {rec: cluster.get(rec, ("singleton", rec)) for rec in truth}
    pred_pairs = pairs_of_groups(group_by(pred_label))
    correct = len(true_pairs & pred_pairs)
    precision = correct / len(pred_pairs) if pred_pairs else 0.0
    recall = correct / len(true_pairs) if true_pairs else 0.0
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision + recall > 0
        else 0.0
    )
    return {
        "true_pairs": len(true_pairs),
        "predicted_pairs": len(pred_pairs),
        "correct_pairs": correct,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a_csv")
    p.add_argument("a_truth")
    p.add_argument("b_csv")
    p.add_argument("b_truth")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if not 0.0 < args.threshold < 1.0:
        p.error("--threshold must be strictly between 0 and 1")

    rows_a, persons_a = read_extract(args.a_csv, args.a_truth)
    rows_b, persons_b = read_extract(args.b_csv, args.b_truth)
    truth = {("a", i): person for i, person in enumerate(persons_a, start=1)}
    truth.update({("b", i): person for i, person in enumerate(persons_b, start=1)})

    # Keep stdout for our result alone: anything Splink, DuckDB or a library
    # prints goes to stderr, at the file-descriptor level so that output from
    # native code is caught too.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            start = time.perf_counter()
            cluster = run_splink(rows_a, rows_b, args.threshold)
            seconds = time.perf_counter() - start
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)

    result = {
        "linker": "splink",
        "threshold": args.threshold,
        "records": len(truth),
        **score(truth, cluster),
        "seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"splink @ {args.threshold}: {result['records']} records, "
            f"{result['true_pairs']} true pairs, "
            f"{result['predicted_pairs']} predicted, "
            f"{result['correct_pairs']} correct; "
            f"precision {result['precision']:.4f} recall {result['recall']:.4f} "
            f"F1 {result['f1']:.4f} in {result['seconds']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
