"""Baseline for the NAB comparison: River's StandardAbsoluteDeviation, out of the box.

    python infra/nab/river_sad.py INPUT.csv OUTPUT.csv

Reads ``timestamp,value`` and writes ``timestamp,value,anomaly_score`` in input
order, score-then-learn. SAD's score is ``|x - mean| / sd`` (unbounded); it is
mapped to [0, 1) by ``s / (1 + s)``, which is monotone, so NAB's threshold
optimisation sees the same ranking. Not part of the package (see
pipeline/detect/README.md, "NAB").
"""

import csv
import sys

from river import anomaly


def main(src: str, dst: str) -> None:
    model = anomaly.StandardAbsoluteDeviation()
    with open(src, newline="") as f, open(dst, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for row in csv.DictReader(f):
            y = float(row["value"])  # SAD scores the target y; it has no features
            s = model.score_one({}, y)
            model.learn_one({}, y)
            writer.writerow([row["timestamp"], row["value"], f"{s / (1.0 + s):.6f}"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
