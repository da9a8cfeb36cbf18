#!/usr/bin/env python3
"""Checks an ONNX file written by `wgtrain export` against `wgtrain predict`.

    python3 scripts/onnx_check.py MODEL.onnx DATA.csv PREDICTIONS.csv [--tolerance 1e-4]

onnx.checker (with shape inference) must accept the file; ONNX Runtime runs it on DATA.csv's rows, read
the way the model's metadata (`wgtrain.inputs`) says: columns by name, missing cells as NaN, a category by
its value or its index. Its first output must equal PREDICTIONS.csv (what `wgtrain predict` printed for the
same file) within the tolerance, relative to the value where that is above 1; a classifier's `label` must
name the predicted class. Prints one line per check and exits 1 when one fails.
"""

import argparse
import csv
import json
import math
import sys

import numpy as np
import onnx
import onnxruntime

MISSING = {"", "?", "na", "n/a", "nan", "null"}


def cell_value(text, column):
    text = text.strip()
    if text.lower() in MISSING:
        return math.nan
    if column["kind"] == "numeric":
        return float(text)
    categories = column["categories"]
    if column["given_as"] == "value":
        return float(text)
    return float(categories.index(text)) if text in categories else -1.0


def read_inputs(path, columns, input_shape):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        where = [header.index(c["name"]) for c in columns]
        rows = [[cell_value(r[i], c) for i, c in zip(where, columns)] for r in reader if r]
    x = np.array(rows, dtype=np.float32)
    if input_shape:
        x = x.reshape([-1] + list(input_shape))
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("predictions")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    print(f"onnx.checker: ok (opset {opset}, onnx {onnx.__version__})")

    meta = {p.key: p.value for p in model.metadata_props}
    columns = json.loads(meta["wgtrain.inputs"])
    input_shape = json.loads(meta["wgtrain.input_shape"])
    x = read_inputs(args.data, columns, input_shape)

    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {"input": x})
    first = outputs[0]

    with open(args.predictions, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        expected_rows = [r for r in reader if r]
    failures = 0
    if meta["wgtrain.task"] == "classification":
        classes = json.loads(meta["wgtrain.class_names"])
        expected = np.array([[float(v) for v in r[1:]] for r in expected_rows], dtype=np.float64)
        label = outputs[names.index("label")]
        predicted = [classes[i] for i in label]
        wrong = sum(p != r[0] for p, r in zip(predicted, expected_rows))
        print(f"labels: {len(predicted) - wrong}/{len(predicted)} as predict's")
        failures += wrong > 0
    else:
        expected = np.array([[float(v) for v in r] for r in expected_rows], dtype=np.float64)
    if first.shape != expected.shape:
        print(f"FAIL: output shape {first.shape}, predict gave {expected.shape}")
        return 1
    error = np.abs(first.astype(np.float64) - expected) / np.maximum(1.0, np.abs(expected))
    worst = float(error.max()) if error.size else 0.0
    ok = worst <= args.tolerance
    print(
        f"{names[0]}: {first.shape[0]} rows, max error {worst:.3g} "
        f"(tolerance {args.tolerance:g}): {'ok' if ok else 'FAIL'}"
    )
    failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
