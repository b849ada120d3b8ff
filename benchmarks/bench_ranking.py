"""Does ``rank`` put images unlike the training images first? AUROC of "an unseen style ranks higher".

A ``cpu``-preset model (64 px) is trained on shapes of one style (``plain``: see ``_active.py``) with a
plain training loop, then ranks a pool that mixes new images of that style with as many of four
styles it has never seen (``inverted``, ``faint``, ``noisy``, ``small``), all images new. The figure is
the AUROC of the rank (place in :func:`rank_images`' order, diversity term included) for "this image
is of an unseen style": 1 puts every unseen image first, 0.5 is chance. The AUROC of each part of
the score alone (uncertainty, confusion, disagreement) and of the informativeness (no diversity) is
printed beside it, with the model's AP@0.5 on held-out plain images (so that a model too weak to be
sure of anything shows).

``--labeled`` passes the training images as the labeled images (the ranking's ``novelty`` then
counts), as ``rank`` passes a folder's labeled images; without it novelty does not count.

Target (issue 14): AUROC at least 0.8 (``--check`` exits 1 below it).

    nice -n 10 python benchmarks/bench_ranking.py --check
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _active import UNSEEN, ap50, auroc, new_model, styled_sample, train  # noqa: E402
from _common import report  # noqa: E402

from napari_faster_rcnn.core.prediction.ranking import rank_images  # noqa: E402
from napari_faster_rcnn.core.prediction.usefulness import RankingWeights  # noqa: E402

TARGET_AUROC = 0.8


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=256, help="training images of the plain style")
    parser.add_argument("--steps", type=int, default=500, help="training steps (batch 8)")
    parser.add_argument("--pool", type=int, default=128, help="images ranked: half plain, half unseen styles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", metavar="U,C,D,L,DIV[,NOV]",
                        help="RankingWeights(uncertainty, confusion, disagreement, low_confidence, diversity, novelty) "
                             "to try instead of the defaults")
    parser.add_argument("--labeled", action="store_true",
                        help="pass the training images to the ranking as the labeled images (novelty and the k-center "
                             "redundancy against them), as rank does with a folder's labeled images")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the AUROC is below {TARGET_AUROC}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    training = [styled_sample(args.seed, index, "plain") for index in range(args.train)]
    model = train(new_model(args.seed), training, args.steps, args.seed)
    trained = time.perf_counter() - start
    held_out = [styled_sample(args.seed + 1000, index, "plain") for index in range(64)]
    ap = ap50(model, held_out)
    print(f"trained {args.steps} steps in {trained:.0f} s; AP@0.5 on held-out plain images {ap:.3f}", file=sys.stderr)

    half = args.pool // 2
    pool, unseen = [], []
    for index in range(half):
        pool.append(styled_sample(args.seed + 2000, index, "plain")[0])
        unseen.append(False)
    for index in range(args.pool - half):
        pool.append(styled_sample(args.seed + 3000, index, UNSEEN[index % len(UNSEEN)])[0])
        unseen.append(True)
    start = time.perf_counter()
    weights = RankingWeights(*(float(w) for w in args.weights.split(","))) if args.weights else RankingWeights()
    ranking = rank_images(model, pool, batch_size=16, weights=weights,
                          labeled=[image for image, _ in training] if args.labeled else ())
    ranked = time.perf_counter() - start
    index_of = {score.image: int(score.image.split()[-1]) for score in ranking}
    order = np.empty(len(pool))
    parts = {name: np.empty(len(pool)) for name in ("uncertainty", "confusion", "disagreement", "low_confidence",
                                                    "novelty", "informativeness")}
    for score in ranking:
        k = index_of[score.image]
        order[k] = -score.rank  # higher is more useful
        for name in parts:
            parts[name][k] = getattr(score, name)
    unseen = np.array(unseen)
    value = auroc(order, unseen)
    rows = [("", "AUROC (unseen style ranks higher)")]
    rows.append(("rank (the ranking, diversity included)", f"{value:.3f}"))
    for name, values in parts.items():
        rows.append((f"{name} alone", f"{auroc(values, unseen):.3f}"))
    styles = np.array(["plain"] * half + [UNSEEN[i % len(UNSEEN)] for i in range(args.pool - half)])
    for style in UNSEEN:
        chosen = (styles == style) | (styles == "plain")
        rows.append((f"rank, {style} vs plain", f"{auroc(order[chosen], unseen[chosen]):.3f}"))
    top = sum(unseen[index_of[s.image]] for s in ranking[:half])
    rows.append((f"unseen among the top {half}", f"{top} of {half}"))
    report(f"Ranking: a model trained on plain shapes ranks {args.pool} images, half of unseen styles",
           rows, {"auroc": round(value, 4), "ap50_plain": round(ap, 4), "train_steps": args.steps,
                  "train_images": args.train, "pool": args.pool, "rank_seconds": round(ranked, 1), "labeled": args.labeled,
                  "train_seconds": round(trained, 1), "threads": args.threads,
                  "weights": [weights.uncertainty, weights.confusion, weights.disagreement, weights.low_confidence,
                              weights.diversity, weights.novelty],
                  "load_average": [round(v, 2) for v in os.getloadavg()]})
    if args.check and value < TARGET_AUROC:
        print(f"FAILED: AUROC {value:.3f} below {TARGET_AUROC}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
