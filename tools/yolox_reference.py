#!/usr/bin/env python3
"""Reference YOLOX decode used to produce models/tests/golden/yolox_reference.jsonl.

Independent of the agent's code: OpenCV for decoding and letterboxing, onnxruntime's Python API for the
model, OpenCV's NMS. Prints one JSON line per image with every detection above 0.3 (all 80 classes).

    pip install onnxruntime==1.31.1 numpy opencv-python-headless
    cd ../shared/data/scenes && python3 tools/yolox_reference.py --model ../../models/yolox_nano_416.onnx coco_*.jpg
"""
import argparse
import json

import cv2
import numpy as np
import onnxruntime as ort

SIZE = 416


def decode(sess, path):
    img = cv2.imread(path)
    h, w = img.shape[:2]
    r = min(SIZE / h, SIZE / w)
    nh, nw = int(round(h * r)), int(round(w * r))
    pad = np.full((SIZE, SIZE, 3), 114, np.uint8)
    pad[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = pad.transpose(2, 0, 1)[None].astype(np.float32)
    out = sess.run(None, {"images": x})[0][0]
    grids, strides = [], []
    for s in (8, 16, 32):
        g = SIZE // s
        yv, xv = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((g * g, 1), s))
    grids, strides = np.concatenate(grids), np.concatenate(strides)
    cxcy = (out[:, :2] + grids) * strides
    wh = np.exp(out[:, 2:4]) * strides
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], 1) / r
    scores = out[:, 4:5] * out[:, 5:]
    found = []
    for c in range(80):
        sc = scores[:, c]
        keep = sc > 0.3
        if not keep.any():
            continue
        b, s = boxes[keep], sc[keep]
        rects = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in b]
        for i in np.array(cv2.dnn.NMSBoxes(rects, s.tolist(), 0.3, 0.45)).flatten():
            found.append({"class": c, "score": round(float(s[i]), 4), "box": [round(float(v), 1) for v in b[i]]})
    found.sort(key=lambda d: -d["score"])
    return w, h, found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    for p in args.images:
        w, h, dets = decode(sess, p)
        print(json.dumps({"file": p.split("/")[-1], "width": w, "height": h, "detections": dets}))


if __name__ == "__main__":
    main()
