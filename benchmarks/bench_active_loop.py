"""Active loop: labeling in ``rank``'s order against labeling in random order.

A simulated user labels a pool of 512 synthetic 64 px images in rounds of 16 (labeling an image
reveals its ground truth). The pool mixes the ``plain`` style (75%) with three rarer styles
(``inverted``, ``faint``, ``small``, about 8% each; see ``_active.py``); the held-out test images
hold the four styles equally, so a detector must learn the rare ones too. Round 0 labels 16 random
images and trains a ``cpu``-preset model from scratch (``--first-steps``); every later round picks
16 more images, in one of two orders, and fine-tunes the previous model on everything labeled so
far (``--steps``):

- random: the next 16 of a random order of the pool;
- rank: the 16 first of :func:`rank_images` (the default ranking: percentiles of uncertainty, class
  confusion, mirror disagreement, low confidence and novelty against the labeled images, then the
  diversity term among the 48 most informative) over the images not labeled yet, with the model of
  the round before and the images labeled so far passed as ``labeled`` (as ``rank`` passes a
  folder's labeled images).

Experiments: ``--orders`` adds ``balanced``, an oracle that knows each image's style and labels the
styles in turn (each round's next pick: the style with the fewest images labeled so far, random order
within it): the most a ranking could gain here by spreading its picks over the styles the test set
weighs equally, a bound for the target rather than a way of ranking; ``--weights`` tries other
:class:`RankingWeights`; ``--random-share F`` takes that share of each ranked round from the random
order (hybrid); ``--random-from FILE`` takes random order's curves (deterministic) from an earlier
``--save`` of the same settings instead of running it again. The summary's
``mean_ap_after_round_0`` (mean AP@0.5 over the rounds after the first) is a finer, secondary figure.

After each round the model's AP@0.5 on the test images is measured. The figure: the number of
labeled images with which ``rank``'s order first reaches random order's final AP@0.5 (after
``--rounds`` rounds), divided by the number random order itself first reached that AP with, averaged
over the seeds. Below 1, ranking saves labeling; never reached counts as the budget plus one round
(a lower bound, marked ">").

Target (issue 14): at most 0.6 (``--check`` exits 1 above it).

    nice -n 10 python benchmarks/bench_active_loop.py --seeds 0,1,2 --jobs 3 --check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

TARGET_FRACTION = 0.6
ROUND = 16
POOL_STYLES = (("plain", 0.75), ("inverted", 0.25 / 3), ("faint", 0.25 / 3), ("small", 0.25 / 3))
TEST_STYLES = ("plain", "inverted", "faint", "small")


def seed_data(seed: int, pool_size: int, test_size: int):
    """One seed's pool (its styles and ``(image, annotation)`` samples), test samples and random order."""
    from _active import styled_sample

    rng = np.random.default_rng(seed)
    styles = rng.choice([s for s, _ in POOL_STYLES], size=pool_size, p=[p for _, p in POOL_STYLES])
    pool = [styled_sample(seed, index, str(style)) for index, style in enumerate(styles)]
    test = [styled_sample(seed + 5000, index, TEST_STYLES[index % len(TEST_STYLES)]) for index in range(test_size)]
    return styles, pool, test, rng.permutation(pool_size)


def balanced_picks(styles, labeled, order, count: int) -> list[int]:
    """The oracle's ``count`` next picks: each the first image, in ``order``, of the style with the fewest
    images labeled so far among the styles with images left (ties: the styles' order in the test set)."""
    counts = {style: 0 for style in TEST_STYLES}
    for i in labeled:
        counts[str(styles[i])] += 1
    taken = set(labeled)
    remaining = [i for i in order if i not in taken]
    chosen = []
    for _ in range(min(count, len(remaining))):
        left = {str(styles[i]) for i in remaining}
        style = min(left, key=lambda s: (counts[s], TEST_STYLES.index(s)))
        pick = next(i for i in remaining if str(styles[i]) == style)
        chosen.append(pick)
        remaining.remove(pick)
        counts[style] += 1
    return chosen


def one_seed(seed: int, pool_size: int, test_size: int, rounds: int, first_steps: int, steps: int,
             threads: int, random_share: float = 0.0, weights: tuple | None = None, known: dict | None = None,
             orders: tuple = ("random", "rank"), from_base: bool = False) -> dict:
    """The orders for one seed (random first): AP@0.5 after each round, and the seconds it took; ``known``:
    this seed's result of an earlier run with the same settings, whose random order is taken instead of
    run again."""
    import copy

    import torch
    from _active import ap50, new_model, train

    from napari_faster_rcnn.core.prediction.ranking import rank_images
    from napari_faster_rcnn.core.prediction.usefulness import RankingWeights

    torch.set_num_threads(threads)
    ranking_weights = RankingWeights() if weights is None else RankingWeights(*weights)
    styles, pool, test, order = seed_data(seed, pool_size, test_size)
    first = list(order[:ROUND])
    start = time.perf_counter()
    base = train(new_model(seed), [pool[i] for i in first], first_steps, seed)
    first_ap = ap50(base, test)
    result = {"seed": seed, "labeled": [ROUND * (r + 1) for r in range(rounds + 1)], "seconds": {}}
    # both orders train from the same torch random state (the RPN's and the box head's sampling), so that
    # rank's order does not depend on whether random order ran before it (--random-from)
    torch_state = torch.get_rng_state()
    for name in orders:
        torch.set_rng_state(torch_state)
        if name == "random" and known is not None:
            assert known["labeled"] == result["labeled"] and abs(known["random"][0] - first_ap) < 1e-9, "not the same run"
            for key in ("random", "random_styles", "random_final_by_style"):
                if key in known:
                    result[key] = known[key]
            result["seconds"]["random"] = 0.0
            continue
        began = time.perf_counter()
        model = copy.deepcopy(base)
        labeled = list(first)
        aps = [first_ap]
        picked_styles = []
        for round_index in range(1, rounds + 1):
            left = [i for i in range(pool_size) if i not in set(labeled)]
            if name == "random":
                chosen = [i for i in order if i not in set(labeled)][:ROUND]
            elif name == "balanced":
                chosen = balanced_picks(styles, labeled, order, ROUND)
            else:
                explore = int(round(random_share * ROUND))  # the first of the random order not labeled yet
                chosen = [i for i in order if i not in set(labeled)][:explore]
                left = [i for i in left if i not in set(chosen)]
                ranking = rank_images(model, [pool[i][0] for i in left], top=ROUND - explore, batch_size=16,
                                      labeled=[pool[i][0] for i in labeled], weights=ranking_weights)
                chosen += [left[int(score.image.split()[-1])] for score in ranking]
            picked_styles += [str(styles[i]) for i in chosen]
            labeled += chosen
            # fine-tuned from the model of the round before, or (--from-base) from round 0's model, so that
            # every round's model has had the same training and differs by its images only
            start_from = copy.deepcopy(base) if from_base else model
            model = train(start_from, [pool[i] for i in labeled], steps, seed * 100 + round_index)
            aps.append(ap50(model, test))
            print(f"seed {seed} {name} round {round_index}: {len(labeled)} labeled, AP@0.5 {aps[-1]:.3f}",
                  file=sys.stderr, flush=True)
        result[name] = aps
        result[f"{name}_styles"] = {style: picked_styles.count(style) for style, _ in POOL_STYLES}
        # the last model's AP@0.5 on each style of the test images (which styles the order taught)
        result[f"{name}_final_by_style"] = {
            style: round(ap50(model, [test[i] for i in range(test_size) if i % len(TEST_STYLES) == k]), 4)
            for k, style in enumerate(TEST_STYLES)}
        result["seconds"][name] = round(time.perf_counter() - began, 1)
    result["seconds"]["first"] = round(time.perf_counter() - start - sum(result["seconds"].values()), 1)
    return result


def steps_curve(seed: int, first_steps: int, test_size: int, images: int = 64,
                schedule=(100, 100, 100, 300, 300)) -> list[tuple[int, float]]:
    """Round 0's model fine-tuned on one fixed set of ``images`` random images of the pool, in the
    ``schedule``'s chunks of steps: ``(steps so far, AP@0.5)`` after each (how much of a curve the
    training alone makes)."""
    import torch
    from _active import ap50, new_model, train

    _, pool, test, order = seed_data(seed, 512, test_size)
    model = train(new_model(seed), [pool[i] for i in order[:ROUND]], first_steps, seed)
    torch.manual_seed(seed)
    labeled, done, curve = [pool[i] for i in order[:images]], 0, []
    for chunk in schedule:
        model = train(model, labeled, chunk, seed + done)
        done += chunk
        curve.append((done, round(ap50(model, test), 3)))
        print(f"seed {seed}: {images} images, {done} steps: AP@0.5 {curve[-1][1]:.3f}", file=sys.stderr, flush=True)
    return curve


def images_needed(labeled, aps, target: float):
    """The first labeled count whose AP reaches ``target`` (None: never)."""
    for count, ap in zip(labeled, aps):
        if ap >= target - 1e-12:
            return count
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--test", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=4, help="rounds after the first (labeled: 16 x (rounds + 1))")
    parser.add_argument("--first-steps", type=int, default=120, help="steps training the first model (batch 8)")
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps per round (batch 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per seed")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once, in separate processes")
    parser.add_argument("--save", metavar="FILE", help="write every seed's curves as JSON")
    parser.add_argument("--random-from", metavar="FILE",
                        help="take random order's curves from a --save file of the same settings (it is deterministic) "
                             "instead of running it again")
    parser.add_argument("--random-share", type=float, default=0.0, metavar="F",
                        help="an experiment: this share of each ranked round taken from the random order instead "
                             "(hybrid active learning; default 0: rank's order alone)")
    parser.add_argument("--weights", metavar="U,C,D,L,DIV,NOV",
                        help="RankingWeights(uncertainty, confusion, disagreement, low_confidence, diversity, novelty) "
                             "to try instead of the defaults")
    parser.add_argument("--orders", default="rank", metavar="NAMES",
                        help="the orders run besides random, comma-separated: rank (rank_images), balanced (an oracle "
                             "that labels the styles in turn; see above); default rank")
    parser.add_argument("--steps-curve", action="store_true",
                        help="instead: round 0's model fine-tuned on one fixed set of 64 random images for 100, 200, "
                             "300, 600, 900 steps, AP@0.5 after each (what the training alone adds)")
    parser.add_argument("--from-base", action="store_true",
                        help="each round fine-tunes round 0's model (not the round before's) on everything labeled: "
                             "every round's model has had the same steps, so the curves follow the images alone")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when rank's fraction is above {TARGET_FRACTION}")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.steps_curve:
        import torch

        torch.set_num_threads(args.threads)
        curves = {seed: steps_curve(seed, args.first_steps, args.test) for seed in seeds}
        print(json.dumps({"benchmark": "Active loop: AP@0.5 of one fixed set of 64 images against training steps",
                          "curves": curves, "first_steps": args.first_steps, "test": args.test}))
        return 0
    weights = tuple(float(w) for w in args.weights.split(",")) if args.weights else None
    others = [name for name in args.orders.split(",") if name]
    if not others or set(others) - {"rank", "balanced"}:
        parser.error(f"--orders: rank and/or balanced, got {args.orders!r}")
    orders = ("random", *others)
    options = (args.pool, args.test, args.rounds, args.first_steps, args.steps, args.threads, args.random_share,
               weights)
    known = {r["seed"]: r for r in json.loads(Path(args.random_from).read_text())} if args.random_from else {}
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(one_seed, seeds, *([option] * len(seeds) for option in options),
                                    [known.get(seed) for seed in seeds], [orders] * len(seeds),
                                    [args.from_base] * len(seeds)))
    else:
        results = [one_seed(seed, *options, known.get(seed), orders, args.from_base) for seed in seeds]
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))

    from _common import report

    rows = [("seed", "order", "AP@0.5 after " + " ".join(map(str, results[0]["labeled"])), "reaches random's final AP at",
             "fraction", "styles picked", "last AP@0.5 by test style")]
    fractions = {name: [] for name in others}
    budget = ROUND * (args.rounds + 1)
    for result in results:
        target = result["random"][-1]
        random_needed = images_needed(result["labeled"], result["random"], target)
        for name in orders:
            needed = images_needed(result["labeled"], result[name], target)
            fraction = None
            if name != "random":
                fraction = (needed if needed is not None else budget + ROUND) / random_needed
                fractions[name].append(fraction)
            rows.append((result["seed"], name, " ".join(f"{ap:.3f}" for ap in result[name]),
                         needed if needed is not None else f">{budget}",
                         "" if fraction is None else f"{'>' if needed is None else ''}{fraction:.2f}",
                         json.dumps(result[f"{name}_styles"]),
                         json.dumps(result.get(f"{name}_final_by_style", {}))))
    means = {name: round(float(np.mean(values)), 3) for name, values in fractions.items()}
    # a finer, secondary figure: the mean AP@0.5 over the rounds after the first (area under the curve)
    curve = {name: round(float(np.mean([np.mean(r[name][1:]) for r in results])), 4) for name in orders}
    summary = {"fraction_mean": means.get("rank"), "fractions": [round(f, 3) for f in fractions.get("rank", [])]}
    if "balanced" in means:
        summary.update(balanced_fraction_mean=means["balanced"], balanced_fractions=[round(f, 3) for f in fractions["balanced"]])
    report(f"Active loop: rounds of {ROUND} from a pool of {args.pool}, {len(seeds)} seeds", rows,
           {**summary, "mean_ap_after_round_0": curve, "pool": args.pool,
            "rounds": args.rounds, "first_steps": args.first_steps, "steps": args.steps, "test": args.test,
            "random_share": args.random_share, "weights": weights, "from_base": args.from_base,
            "seconds": round(time.perf_counter() - start, 1), "load_average": [round(v, 2) for v in os.getloadavg()]})
    if args.check and "rank" in means and means["rank"] > TARGET_FRACTION:
        print(f"FAILED: rank's order needs {means['rank']:.2f} of random order's images (target at most {TARGET_FRACTION})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
