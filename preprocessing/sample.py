"""The built-in sample: a small CSV of invented tweets in the official Sentiment140 format.

`make demo` and the tests need data that every fresh clone has, and the real tweets are
Stanford's research data that this repository must not carry. So every tweet here is
composed from the templates and word lists below: no text is copied from any dataset.

The file matches `training.1600000.processed.noemoticon.csv` byte for byte in layout:
six double-quoted fields `polarity,id,date,query,user,text`, `\\n` line endings, no
header, latin-1. `kind="test"` mimics `testdata.manual.2009.06.14.csv` instead: small
ids, UTC dates, a query word and neutral (polarity "2") rows.

The tweets carry what the standardizer has to cope with in the real data: @mentions,
links, hashtags, HTML escapes (`&quot;`, `&amp;`), stretched letters ("soooo"), "!!!",
contractions, commas and doubled quotes inside the text, and one latin-1 letter. Labels
follow the sentiment words, with ~5% flipped and ~10% "X, but Y" tweets whose label is
that of Y, so a bag-of-words model learns them well but not perfectly.
"""

import csv
import datetime
import os
import random

ENCODING = "latin-1"  # what the official files are read as
KINDS = ("train", "test")
NEGATIVE, NEUTRAL, POSITIVE = "0", "2", "4"

LABEL_NOISE = 0.05  # real Sentiment140 labels come from emoticons and are noisy too
MIXED_FRACTION = 0.10  # "X, but Y": the words of both classes, the label of Y

# Malformed-row kinds. The names are the rejection reasons of `preprocessing/rows.py`
# so that a test can compare these counts with the rejected counts in metadata.json.
BAD_KINDS = (
    "wrong_column_count",
    "unknown_label",
    "bad_id",
    "empty_text",
    "empty_after_standardize",
)

# Per kind: (first id, id step range, first date, time zone name, neutral share).
# The real training ids are large and rise with the date; the test set's are 3, 4, 5 ...
_KIND_SETTINGS = {
    "train": (1_000_000, (1, 400), datetime.datetime(2009, 4, 6, 22, 19, 45), "PDT", 0.0),
    "test": (1, (1, 3), datetime.datetime(2009, 5, 11, 3, 17, 40), "UTC", 0.28),
}

# English names spelled out because strftime's %a and %b follow the locale, and the
# file must be byte-identical on every machine.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# ---------------------------------------------------------------------------------------
# Word lists. Sentiment words decide the label; everything else is shared by all classes
# so that a model cannot learn the label from the topic.

_POSITIVE_ADJECTIVES = (
    "great", "awesome", "amazing", "fun", "lovely", "wonderful", "beautiful", "perfect",
    "cool", "nice", "sweet", "fantastic", "brilliant", "good",
)
_NEGATIVE_ADJECTIVES = (
    "terrible", "awful", "boring", "horrible", "annoying", "stupid", "bad", "lame",
    "dreadful", "depressing", "useless", "ugly",
)
_POSITIVE_FEELINGS = ("happy", "excited", "glad", "thankful", "proud", "relaxed", "cheerful")
_NEGATIVE_FEELINGS = ("sad", "bored", "tired", "sick", "upset", "lonely", "stressed", "miserable")
_POSITIVE_VERBS = ("love", "enjoy", "adore", "really like")
_NEGATIVE_VERBS = ("hate", "miss", "can't stand", "really dislike")
_POSITIVE_TAGS = ("#happy", "#win", "#love", "#goodtimes")
_NEGATIVE_TAGS = ("#fail", "#sad", "#ugh", "#worstdayever")

# (query word for the test kind, phrase in the tweet). One latin-1 letter on purpose.
_THINGS = (
    ("phone", "my new phone"), ("coffee", "this coffee"), ("concert", "the concert"),
    ("movie", "that movie"), ("weekend", "the weekend"), ("exam", "the exam"),
    ("pizza", "the pizza"), ("game", "the game"), ("album", "the new album"),
    ("weather", "the weather"), ("class", "class"), ("work", "work"),
    ("traffic", "the traffic"), ("trip", "our trip"), ("book", "this book"),
    ("cafe", "the little café downtown"), ("laptop", "my laptop"), ("show", "the show"),
)
_PLACES = (
    "the beach", "the office", "school", "the mall", "the gym", "my mom's house",
    "the park", "the airport", "the library", "the dentist",
)
_TIMES = ("today", "tonight", "this morning", "right now", "all day", "this week", "again")
_TITLES = ("Blue Sky", "Night Train", "Paper Moon", "The Long Road", "Summer Lights")
_FILLER = ("lol", "btw", "anyway", "just saying", "omg", "haha", "oh well")

# Handles are built from neutral syllables, never from real accounts.
_HANDLE_PARTS = (
    "sunny", "pixel", "river", "maple", "tiny", "blue", "jazz", "nova", "echo", "kiwi",
    "rocket", "velvet", "moss", "cloud", "zig", "lemon", "otter", "panda", "quartz", "willow",
)

# ---------------------------------------------------------------------------------------
# Templates. `{so}` becomes "so", "really", "sooooo" ...; `{thing}` a phrase from _THINGS.

_POSITIVE_CLAUSES = (
    "I {pverb} {thing}",
    "{thing} was {so} {padj}",
    "feeling {so} {pfeel} {time}",
    "just got back from {place}, had a {padj} time",
    "can't wait for {thing}, {so} {pfeel}",
    "thanks {mention} for the tip, you're {padj}",
    "yay {thing} is finally here",
    "what a {padj} day at {place}",
    "{thing} made my day",
    "I'm {so} {pfeel} about {thing}",
    "watching \"{title}\" again, it's {padj}",
    "{thing} &amp; {place}, {padj} combo",
    "don't care what anyone says, {thing} is {padj}",
    "&quot;{title}&quot; is {so} {padj}",
)
_NEGATIVE_CLAUSES = (
    "I {nverb} {thing}",
    "{thing} was {so} {nadj}",
    "feeling {so} {nfeel} {time}",
    "stuck at {place}, {so} {nfeel}",
    "can't sleep, {thing} is {nadj}",
    "don't want to go to {place} {time}",
    "ugh {thing} is {nadj}",
    "my head hurts, {thing} was {nadj}",
    "I'm {so} {nfeel} because of {thing}",
    "{thing} broke {time}, {nadj}",
    "watched \"{title}\", it's {nadj}",
    "{thing} &amp; {place}, {nadj} combo",
    "why is {thing} always {so} {nadj}",
    "&quot;{title}&quot; was {so} {nadj}",
)
_NEUTRAL_CLAUSES = (
    "reading about {thing} {url}",
    "off to {place} {time}",
    "has anyone tried {thing}?",
    "new post about {thing}: {url}",
    "{mention} what time is {thing} tomorrow?",
    "heading to {place}, then {thing}",
    "does {thing} open on sunday",
    "thinking about \"{title}\" and {thing}",
)

# Malformed rows' texts that survive `text.strip()` but standardize to nothing.
_EMPTY_AFTER_STANDARDIZE = ("  ~~ ^^ ", " -- ** ", " *** ### ")
_BAD_IDS = ("12ab34", "n/a", "1e9x")
_UNKNOWN_POLARITIES = ("7", "1", "positive")


def write_sample_csv(path, *, num_rows=4000, seed=0, first_id=None, kind="train", bad_rows=0):
    """Writes invented tweets in the official Sentiment140 CSV format.

    Args:
      path: the CSV file to write; parent directories are created.
      num_rows: how many well-formed rows.
      seed: the same seed writes a byte-identical file.
      first_id: tweet id of the first row; default 1_000_000 for "train", 1 for "test".
      kind: "train" (polarity 0/4, PDT dates, query NO_QUERY) or "test" (polarity 0/2/4,
        UTC dates, a query word, small ids).
      bad_rows: how many malformed rows to insert at seed-chosen positions, cycling
        through BAD_KINDS.

    Returns:
      {"rows": well-formed rows, "negative": n, "positive": n, "neutral": n,
       "bad": {kind: n for kind in BAD_KINDS}}; "rows" + sum of "bad" = lines in the file.

    Raises:
      ValueError: for an unknown kind or a negative count.
    """
    _check_arguments(num_rows=num_rows, bad_rows=bad_rows, kind=kind)
    rng = random.Random(seed)
    default_id, id_step, start_date, zone, neutral_share = _KIND_SETTINGS[kind]
    polarities = iter(_polarities(num_rows, neutral_share, rng))
    bad_positions = set(rng.sample(range(num_rows + bad_rows), bad_rows))
    counts = {"rows": num_rows, "negative": 0, "positive": 0, "neutral": 0}
    counts["bad"] = {bad_kind: 0 for bad_kind in BAD_KINDS}

    tweet_id = default_id if first_id is None else first_id
    date = start_date
    rows = []
    for position in range(num_rows + bad_rows):
        date_text = _format_date(date, zone)
        if position in bad_positions:
            bad_index = sum(counts["bad"].values())
            bad_kind = BAD_KINDS[bad_index % len(BAD_KINDS)]
            rows.append(_bad_row(bad_kind, bad_index // len(BAD_KINDS), tweet_id, date_text, rng))
            counts["bad"][bad_kind] += 1
        else:
            polarity, query, user, text = _good_row(next(polarities), kind, rng)
            rows.append([polarity, str(tweet_id), date_text, query, user, text])
            counts[_COUNT_KEYS[polarity]] += 1
        # Ids and dates rise down the file, as in the official files.
        tweet_id += rng.randint(*id_step)
        date += datetime.timedelta(seconds=rng.randint(1, 30))
    _write_rows(path, rows)
    return counts


_COUNT_KEYS = {NEGATIVE: "negative", NEUTRAL: "neutral", POSITIVE: "positive"}


def _check_arguments(*, num_rows, bad_rows, kind):
    if kind not in _KIND_SETTINGS:
        raise ValueError(f"Expected kind to be one of {list(KINDS)}. Received: {kind!r}.")
    for name, value in (("num_rows", num_rows), ("bad_rows", bad_rows)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"Expected {name} to be a non-negative integer. Received: {value!r}.")


def _polarities(num_rows, neutral_share, rng):
    """Intended classes, balanced exactly between negative and positive, then shuffled.

    Exact balance rather than coin flips keeps small samples (tests use tens of rows)
    from coming out lopsided.
    """
    num_neutral = round(num_rows * neutral_share)
    num_negative = (num_rows - num_neutral) // 2
    num_positive = num_rows - num_neutral - num_negative
    polarities = [NEGATIVE] * num_negative + [NEUTRAL] * num_neutral + [POSITIVE] * num_positive
    rng.shuffle(polarities)
    return polarities


def _good_row(polarity, kind, rng):
    """(written polarity, query, user, text) of one invented tweet of the given class."""
    query, thing = rng.choice(_THINGS)
    text = _decorate(_tweet_text(polarity, thing, rng), polarity, rng)
    if polarity != NEUTRAL and rng.random() < LABEL_NOISE:
        polarity = POSITIVE if polarity == NEGATIVE else NEGATIVE
    return polarity, (query if kind == "test" else "NO_QUERY"), _handle(rng), text


def _tweet_text(polarity, thing, rng):
    """The core sentence(s): one clause of the class, or "other, but this" for a mix."""
    if polarity == NEUTRAL:
        return _fill(rng.choice(_NEUTRAL_CLAUSES), thing, rng)
    own, other = (
        (_POSITIVE_CLAUSES, _NEGATIVE_CLAUSES)
        if polarity == POSITIVE
        else (_NEGATIVE_CLAUSES, _POSITIVE_CLAUSES)
    )
    clause = _fill(rng.choice(own), thing, rng)
    if rng.random() < MIXED_FRACTION:
        return f"{_fill(rng.choice(other), rng.choice(_THINGS)[1], rng)}, but {clause}"
    return clause


def _fill(template, thing, rng):
    # Every slot is drawn even when the template does not use it: the draws then do not
    # depend on the template, which keeps the generator easy to reason about.
    slots = {
        "thing": thing,
        "place": rng.choice(_PLACES),
        "time": rng.choice(_TIMES),
        "title": rng.choice(_TITLES),
        "mention": "@" + _handle(rng),
        "url": _url(rng),
        "so": _intensifier(rng),
        "padj": _stretch(rng.choice(_POSITIVE_ADJECTIVES), rng),
        "nadj": _stretch(rng.choice(_NEGATIVE_ADJECTIVES), rng),
        "pfeel": _stretch(rng.choice(_POSITIVE_FEELINGS), rng),
        "nfeel": _stretch(rng.choice(_NEGATIVE_FEELINGS), rng),
        "pverb": rng.choice(_POSITIVE_VERBS),
        "nverb": rng.choice(_NEGATIVE_VERBS),
    }
    return template.format(**slots)


def _decorate(text, polarity, rng):
    """Adds the noise of real tweets around the sentence: replies, punctuation, tags, links."""
    if rng.random() < 0.3:
        text = f"@{_handle(rng)} {text}"
    text += rng.choice(("", "", ".", "!", "!!!", "...", " !!", "?!"))
    if rng.random() < 0.15:
        text += " " + rng.choice(_FILLER)
    if rng.random() < 0.15:
        tags = {POSITIVE: _POSITIVE_TAGS, NEGATIVE: _NEGATIVE_TAGS}.get(polarity, ("#random",))
        text += " " + rng.choice(tags)
    if rng.random() < 0.12:
        text += " " + _url(rng)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    # Real tweets often end in a space where an emoticon was removed ("noemoticon").
    if rng.random() < 0.2:
        text += " "
    return text


def _intensifier(rng):
    return rng.choice(("so", "so", "really", "very", "so" + "o" * rng.randint(2, 6), "sooo"))


def _stretch(word, rng):
    """Sometimes repeats the last vowel of a word ("great" -> "greeeat"), as tweets do."""
    if rng.random() >= 0.1:
        return word
    for index in range(len(word) - 1, -1, -1):
        if word[index] in "aeiou":
            return word[: index + 1] + word[index] * rng.randint(2, 5) + word[index + 1 :]
    return word


def _handle(rng):
    first, second = rng.sample(_HANDLE_PARTS, 2)
    return rng.choice((f"{first}{second}", f"{first}_{second}", f"{first}{rng.randint(1, 99)}"))


def _url(rng):
    # example.com/.org are reserved for documentation: no link points at a real page.
    code = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz0123456789") for _ in range(5))
    return rng.choice((f"http://pics.example.com/{code}", f"www.example.org/{code}"))


def _format_date(date, zone):
    """'Mon Apr 06 22:19:45 PDT 2009', the official files' date format."""
    return (
        f"{_DAYS[date.weekday()]} {_MONTHS[date.month - 1]} {date.day:02d} "
        f"{date:%H:%M:%S} {zone} {date.year}"
    )


def _bad_row(bad_kind, variant, tweet_id, date_text, rng):
    """Fields of one malformed row; `variant` (0, 1, 2 ...) picks the flavour of the kind."""
    user = _handle(rng)
    text = _fill(rng.choice(_POSITIVE_CLAUSES), rng.choice(_THINGS)[1], rng)
    row = [NEGATIVE, str(tweet_id), date_text, "NO_QUERY", user, text]
    if bad_kind == "wrong_column_count":
        # Alternate one column short (query missing) and one too many (text split).
        return row[:3] + row[4:] if variant % 2 == 0 else row + ["extra"]
    if bad_kind == "unknown_label":
        row[0] = _UNKNOWN_POLARITIES[variant % len(_UNKNOWN_POLARITIES)]
    elif bad_kind == "bad_id":
        row[1] = _BAD_IDS[variant % len(_BAD_IDS)]
    elif bad_kind == "empty_text":
        row[5] = ""
    elif bad_kind == "empty_after_standardize":
        row[5] = _EMPTY_AFTER_STANDARDIZE[variant % len(_EMPTY_AFTER_STANDARDIZE)]
    return row


def _write_rows(path, rows):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    # newline="" hands line endings to the csv writer, which writes "\n" as the official
    # files do (the default "\r\n" would differ on every platform).
    with open(path, "w", encoding=ENCODING, newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows(rows)
