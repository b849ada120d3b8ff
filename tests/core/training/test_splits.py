import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_faster_rcnn.core.training.samples import TrainingSample
from napari_faster_rcnn.core.training.splits import part_sizes, split_indices, split_samples


def samples(count, folder="/data"):
    return [TrainingSample(f"{folder}/{index:04d}.png") for index in range(count)]


@pytest.mark.parametrize(
    ("count", "ratios", "sizes"),
    [
        (10, (0.8, 0.1, 0.1), (8, 1, 1)),
        (100, (0.7, 0.2, 0.1), (70, 20, 10)),
        (7, (0.8, 0.1, 0.1), (5, 1, 1)),  # 5.6, 0.7, 0.7 -> largest remainders
        (5, (0.8, 0.1, 0.1), (3, 1, 1)),  # every requested part gets one
        (3, (0.8, 0.1, 0.1), (1, 1, 1)),
        (9, (0.75, 0.25), (7, 2, 0)),
        (4, (1.0, 0.0, 0.0), (4, 0, 0)),
        (1, (1.0, 0.0, 0.0), (1, 0, 0)),
    ],
)
def test_part_sizes_round_sensibly(count, ratios, sizes):
    train, validation, test = split_samples(samples(count), ratios, seed=0)
    assert (len(train), len(validation), len(test)) == sizes


@pytest.mark.parametrize(
    ("count", "ratios", "message"),
    [
        (2, (0.8, 0.1, 0.1), "at least 3 samples"),
        (1, (0.9, 0.1), "set the validation ratio to 0"),
        (0, (0.8, 0.2), "no samples"),
        (10, (0.8, 0.1, 0.2), "add up to 1"),
        (10, (1.1, -0.1, 0.0), "validation part must be a number >= 0"),
        (10, (0.0, 0.5, 0.5), "train part must be above 0"),
        (10, (1.0,), "two or three numbers"),
        (10, ("a", "b"), "two or three numbers"),
    ],
)
def test_bad_ratios_and_too_few_samples_are_explained(count, ratios, message):
    with pytest.raises(ValueError, match=message):
        split_samples(samples(count), ratios)


def test_the_split_depends_on_seed_and_names_not_on_order():
    items = samples(50)
    train, validation, test = split_samples(items, seed=7)
    assert split_samples(items, seed=7) == (train, validation, test)
    shuffled = items[::-1]
    assert [sorted(s.image for s in part) for part in split_samples(shuffled, seed=7)] == [
        sorted(s.image for s in part) for part in (train, validation, test)
    ]
    # the same file names in another folder split the same way
    moved = split_samples(samples(50, "/elsewhere"), seed=7)
    names = [[s.image.name for s in part] for part in (train, validation, test)]
    assert [[s.image.name for s in part] for part in moved] == names
    assert split_samples(items, seed=8)[1] != validation
    assert train == sorted(train, key=items.index)  # each part keeps the order of the input


def test_adding_images_moves_few_old_ones():
    before = split_samples(samples(200), seed=1)[0]
    after = split_samples(samples(220), seed=1)[0]
    assert len(set(before) - set(after)) <= 4


@settings(max_examples=100, deadline=None)
@given(st.integers(3, 300), st.floats(0.05, 0.9), st.floats(0.0, 1.0), st.integers(0, 1000))
def test_every_sample_lands_in_exactly_one_part(count, train_ratio, share, seed):
    validation_ratio = (1 - train_ratio) * share
    ratios = (train_ratio, validation_ratio, max(0.0, 1 - train_ratio - validation_ratio))
    parts = split_indices(samples(count), ratios, seed)
    flat = [i for part in parts for i in part]
    assert sorted(flat) == list(range(count))
    sizes = part_sizes(count, ratios)
    assert tuple(map(len, parts)) == sizes
    for size, ratio in zip(sizes, ratios):
        if ratio * count >= 1:  # off by less than one, plus one per part raised to its minimum of one
            assert abs(size - ratio * count) < 1 + sum(0 < r * count < 1 for r in ratios)


def test_plain_paths_and_strings_split_too():
    assert sum(map(len, split_samples([f"{i}.png" for i in range(10)], (0.5, 0.5)))) == 10


def stack_planes(name, count):
    return [TrainingSample(f"/data/{name}.tif", plane=(index,)) for index in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_planes_of_one_stack_never_lie_on_both_sides(seed):
    items = stack_planes("movie_a", 6) + samples(8) + stack_planes("movie_b", 4) + stack_planes("movie_c", 3)
    parts = split_samples(items, (0.7, 0.2, 0.1), seed=seed)
    assert sum(map(len, parts)) == len(items)
    for part in parts:
        assert part  # every part with a ratio gets something
    for stack in ("movie_a", "movie_b", "movie_c"):
        holding = [index for index, part in enumerate(parts) if any(s.image.stem == stack for s in part)]
        assert len(holding) == 1, (stack, holding)


def test_2d_images_split_as_before_groups_existed():
    # one sample per file: the old rule, the first ranked images held out
    items = samples(40)
    train, validation, test = split_samples(items, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(validation), len(test)) == (32, 4, 4)


def test_a_single_stack_cannot_be_split_and_says_what_to_do():
    with pytest.raises(ValueError, match="planes of one stack stay in one part.*validation ratio|ratios to 0"):
        split_samples(stack_planes("movie", 10), (0.8, 0.2, 0.0))
    train, validation, test = split_samples(stack_planes("movie", 10), (1.0, 0.0, 0.0))
    assert len(train) == 10 and not validation and not test
