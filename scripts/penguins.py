#!/usr/bin/env python3
"""The Palmer penguins example: the shipped train/test split, and scikit-learn's pipeline on it.

    python3 scripts/penguins.py split PATH/penguins.csv   # writes data/penguins-{train,test}.csv
    python3 scripts/penguins.py sklearn [TARGET]          # accuracy of impute + one-hot + logistic regression

The split is stratified by species, a quarter of each species held out, drawn with Python's `random`
seeded with 0, rows kept in file order. The scikit-learn pipeline is the reference the README compares
`wgtrain train --missing mean` with: numeric columns filled with their mean and standardised, text
columns filled with their most frequent value and one-hot encoded, then multinomial logistic regression.
TARGET is `species` by default; rows whose target is missing (`sex` has some) are left out of both files,
as `--missing drop` does.
"""
import csv
import random
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
TARGET = "species"


def split(source):
    with open(source, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    target = header.index(TARGET)
    rng = random.Random(0)
    test = set()
    for species in sorted({r[target] for r in rows}):
        members = [i for i, r in enumerate(rows) if r[target] == species]
        rng.shuffle(members)
        test.update(members[: round(len(members) / 4)])
    for name, keep in [("train", lambda i: i not in test), ("test", lambda i: i in test)]:
        with open(DATA / f"penguins-{name}.csv", "w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(header)
            out.writerows(r for i, r in enumerate(rows) if keep(i))


def sklearn(target):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = pd.read_csv(DATA / "penguins-train.csv").dropna(subset=[target])
    test = pd.read_csv(DATA / "penguins-test.csv").dropna(subset=[target])
    features = [c for c in train.columns if c != target]
    text = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    numeric = [c for c in features if c not in text]
    prepare = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                text,
            ),
        ]
    )
    model = make_pipeline(prepare, LogisticRegression(max_iter=1000))
    model.fit(train[features], train[target])
    accuracy = (model.predict(test[features]) == test[target]).mean()
    print(f"{target}: scikit-learn pipeline test accuracy {accuracy:.4f} ({len(test)} rows)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["split"]:
        split(sys.argv[2])
    elif sys.argv[1:2] == ["sklearn"]:
        sklearn(sys.argv[2] if len(sys.argv) > 2 else TARGET)
    else:
        sys.exit(__doc__)
