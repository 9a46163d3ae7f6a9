"""Phone-book retrieval: generator determinism and options, the training source, and the digit scorer."""

import itertools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie.eval.phonebook import (
    LAYOUTS,
    RANDOM_DIGIT_ACCURACY,
    PhonebookConfig,
    random_digit_accuracy,
    generate_phonebooks,
    phonebook_examples,
    score_phonebook,
)

ENTRY = re.compile(r"^([A-Z][a-z]+ [A-Z][a-z]+): ([1-9]\d{2}-\d{3}-\d{4})$")


def parse_book(prompt):
    """name -> number from the prompt's "Phonebook:" block (independent of the generator's code)."""
    lines = prompt.split("Phonebook:\n", 1)[1].split("\n\n")[0].split("\n")
    matches = [ENTRY.match(line) for line in lines]
    assert all(matches), lines
    return [(m.group(1), m.group(2)) for m in matches]


@settings(max_examples=25, deadline=None)
@given(
    num_books=st.integers(1, 12),
    min_entries=st.integers(4, 30),
    spread=st.integers(0, 20),
    queries=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 1000),
)
def test_generator_honours_every_option(num_books, min_entries, spread, queries, layout, seed):
    config = PhonebookConfig(num_books, min_entries, min_entries + spread, tuple(queries), layout, seed)
    items = generate_phonebooks(config)
    assert items == generate_phonebooks(config)
    assert len(items) == num_books
    assert len({item["id"] for item in items}) == num_books
    for index, item in enumerate(items):
        book = parse_book(item["prompt"])
        names = [name for name, _ in book]
        assert len(set(names)) == len(names)
        assert min_entries <= len(book) <= min_entries + spread == config.max_entries
        assert item["num_entries"] == len(book)
        assert item["num_queries"] == queries[index % len(queries)]
        numbers = dict(book)
        answer = item["answer"].split(", ")
        assert answer == [numbers[name] for name in item["query_names"]]
        assert len(answer) == item["num_queries"] == len(set(item["query_names"]))
        questions = re.findall(r"What (?:is|are) the phone numbers? for (.+)\? Find (?:it|them) in the phonebook "
                               r"(below|above)\.", item["prompt"])
        expected_where = {"question-context-question": ["below", "above"], "question-context": ["below"],
                          "context-question": ["above"]}[layout]
        assert [where for _, where in questions] == expected_where
        for asked, _ in questions:
            assert all(name in asked for name in item["query_names"])
        starts_with_book = item["prompt"].startswith("Phonebook:")
        assert starts_with_book == (layout == "context-question")


def test_seed_changes_books_and_query_counts_cycle():
    first = generate_phonebooks(PhonebookConfig(num_books=8, num_queries=(1, 2, 4, 8), seed=0))
    second = generate_phonebooks(PhonebookConfig(num_books=8, num_queries=(1, 2, 4, 8), seed=1))
    assert all(a["prompt"] != b["prompt"] for a, b in zip(first, second))
    assert [item["num_queries"] for item in first] == [1, 2, 4, 8] * 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_books=0), "num_books"),
        (dict(min_entries=10, max_entries=5), "min_entries"),
        (dict(min_entries=3, num_queries=(4,)), "num_queries"),
        (dict(num_queries=()), "num_queries"),
        (dict(layout="question-only"), "layout"),
        (dict(number_digits=2), "number_digits"),
        (dict(number_digits=11), "number_digits"),
    ],
)
def test_bad_options_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PhonebookConfig(**kwargs)


def test_training_source_is_deterministic_sharded_and_disjoint_from_eval():
    train = list(itertools.islice(phonebook_examples("train", 0, 1, 3), 6))
    assert train == list(itertools.islice(phonebook_examples("train", 0, 1, 3), 6))
    shard = list(itertools.islice(phonebook_examples("train", 1, 2, 3), 3))
    assert shard == train[1::2]
    validation = list(itertools.islice(phonebook_examples("validation", 0, 1, 3), 6))
    assert not {e["prefix"] for e in train} & {e["prefix"] for e in validation}
    for example in train:
        assert example["text"] == example["prefix"] + "\n" + example["target"]
        numbers = dict(parse_book(example["prefix"]))
        assert set(example["target"].split(", ")) <= set(numbers.values())
    evaluation = generate_phonebooks(PhonebookConfig(num_books=6, min_entries=10, max_entries=40, seed=3))
    assert not {e["prefix"] for e in train} & {item["prompt"] for item in evaluation}
    with pytest.raises(ValueError, match="split"):
        next(phonebook_examples("test", 0, 1, 0))


@pytest.fixture(scope="module")
def items():
    return generate_phonebooks(PhonebookConfig(num_books=12, min_entries=8, max_entries=12, num_queries=(1, 3, 8)))


def test_perfect_and_empty_predictions(items):
    perfect = score_phonebook(items, [item["answer"] for item in items])
    assert perfect["digit_accuracy"] == perfect["number_exact_match"] == perfect["item_exact_match"] == 1.0
    assert set(perfect["by_num_queries"]) == {1, 3, 8}
    assert all(b["num_items"] == 4 for b in perfect["by_num_queries"].values())
    empty = score_phonebook(items, [""] * len(items))
    assert empty["digit_accuracy"] == empty["number_exact_match"] == 0.0
    assert perfect["random_digit_accuracy"] == pytest.approx(0.1 * (1 / 9 + 0.9))


@pytest.mark.parametrize("wrong_digits", [1, 4, 10])
def test_partial_predictions_score_the_changed_digits(items, wrong_digits):
    def corrupt(number):
        digits = [c for c in number if c.isdigit()]
        for i in range(10 - wrong_digits, 10):
            digits[i] = str((int(digits[i]) + 1) % 10)
        return "{}{}{}-{}{}{}-{}{}{}{}".format(*digits)

    predictions = [", ".join(corrupt(n) for n in item["answer"].split(", ")) + "\nand more" for item in items]
    scored = score_phonebook(items, predictions)
    assert scored["digit_accuracy"] == pytest.approx((10 - wrong_digits) / 10)
    assert scored["number_exact_match"] == 0.0


def test_missing_numbers_count_as_wrong_per_query_count(items):
    # Answer only the first number of each item: per bucket k the accuracy is 1/k.
    scored = score_phonebook(items, [item["answer"].split(", ")[0] for item in items])
    for k, bucket in scored["by_num_queries"].items():
        assert bucket["digit_accuracy"] == pytest.approx(1 / k)
        assert bucket["item_exact_match"] == (1.0 if k == 1 else 0.0)
    total_numbers = sum(item["num_queries"] for item in items)
    assert scored["number_exact_match"] == pytest.approx(len(items) / total_numbers)


def test_random_numbers_score_near_the_baseline():
    books = generate_phonebooks(PhonebookConfig(num_books=40, min_entries=32, max_entries=32, num_queries=(32,)))
    rng = random.Random(0)
    guesses = [", ".join(f"{rng.randint(100, 999)}-{rng.randint(0, 999):03d}-{rng.randint(0, 9999):04d}"
                         for _ in range(32)) for _ in books]
    scored = score_phonebook(books, guesses)
    # 12,800 digits; the standard deviation of the mean is below 0.3 percentage points.
    assert abs(scored["digit_accuracy"] - RANDOM_DIGIT_ACCURACY) < 0.015
    assert scored["number_exact_match"] == 0.0


def test_scorer_rejects_mismatched_lengths(items):
    with pytest.raises(ValueError, match="predictions"):
        score_phonebook(items, [""])


@pytest.mark.parametrize("number_digits", [3, 4, 7])
def test_short_numbers_are_plain_digits_in_books_answers_and_the_training_source(number_digits):
    entry = re.compile(rf"^([A-Z][a-z]+ [A-Z][a-z]+): ([1-9]\d{{{number_digits - 1}}})$")
    items = generate_phonebooks(PhonebookConfig(num_books=6, min_entries=2, max_entries=4, num_queries=(1, 2),
                                                number_digits=number_digits))
    train = list(itertools.islice(phonebook_examples("train", 0, 1, 0, min_entries=2, max_entries=4, max_queries=2,
                                                     number_digits=number_digits), 6))
    for prompt, answer in [(i["prompt"], i["answer"]) for i in items] + [(e["prefix"], e["target"]) for e in train]:
        lines = prompt.split("Phonebook:\n", 1)[1].split("\n\n")[0].split("\n")
        book = dict(entry.match(line).groups() for line in lines)
        assert 2 <= len(book) <= 4
        assert set(answer.split(", ")) <= set(book.values())


def test_short_numbers_score_per_digit_against_their_own_random_baseline():
    items = generate_phonebooks(PhonebookConfig(num_books=40, min_entries=8, max_entries=8, num_queries=(8,),
                                                number_digits=4))
    perfect = score_phonebook(items, [item["answer"] for item in items])
    assert perfect["digit_accuracy"] == perfect["number_exact_match"] == 1.0
    assert perfect["random_digit_accuracy"] == pytest.approx(random_digit_accuracy(4)) == (1 / 9 + 0.3) / 4
    last_wrong = [", ".join(n[:3] + str((int(n[3]) + 1) % 10) for n in item["answer"].split(", ")) for item in items]
    assert score_phonebook(items, last_wrong)["digit_accuracy"] == pytest.approx(0.75)
    rng = random.Random(0)
    guesses = [", ".join(str(rng.randint(1000, 9999)) for _ in range(8)) for _ in items]
    # 1,280 digits: the standard deviation of the mean is below one percentage point.
    assert abs(score_phonebook(items, guesses)["digit_accuracy"] - random_digit_accuracy(4)) < 0.04


def test_the_training_source_rejects_a_bad_number_length():
    with pytest.raises(ValueError, match="number_digits"):
        next(phonebook_examples("train", 0, 1, 0, number_digits=2))


def test_scores_are_split_by_entries_per_book_when_items_state_them():
    items = generate_phonebooks(PhonebookConfig(num_books=30, min_entries=1, max_entries=3, num_queries=(1,),
                                                number_digits=4))
    # answer the first number of every book: right on every one-entry book, right by chance on larger ones
    firsts = [re.search(r": (\d{4})$", item["prompt"].split("\n\n")[1], re.M).group(1) for item in items]
    scored = score_phonebook(items, firsts)
    by_entries = scored["by_num_entries"]
    assert set(by_entries) == {item["num_entries"] for item in items} == {1, 2, 3}
    assert by_entries[1]["number_exact_match"] == 1.0
    assert sum(b["num_items"] for b in by_entries.values()) == len(items)
    for n, bucket in by_entries.items():
        subset = [(i, f) for i, f in zip(items, firsts) if i["num_entries"] == n]
        assert bucket == {k: v for k, v in score_phonebook(*zip(*subset)).items()
                          if k in bucket}  # a bucket scores its own books
    without = [{k: v for k, v in item.items() if k != "num_entries"} for item in items]
    assert "by_num_entries" not in score_phonebook(without, firsts)
