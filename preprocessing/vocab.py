"""The vocabulary: built from token counts of the train split only."""

import typing

from preprocessing import schema


class Vocabulary(typing.NamedTuple):
    tokens: typing.List[str]  # tokens[i] is the token of id i
    counts: typing.List[int]  # train-split occurrences of tokens[i] (0 for padding, [UNK])
    total_tokens: int  # all train-split token occurrences, in the vocabulary or not
    distinct_tokens: int  # distinct train-split tokens before truncation


def build_vocabulary(counts, *, vocab_size, min_count):
    """Id 0 padding, id 1 [UNK], then tokens by descending count, ties by token so the
    same counts always give the same ids (Counter order depends on arrival order)."""
    kept = sorted(
        ((token, n) for token, n in counts.items() if n >= min_count),
        key=lambda item: (-item[1], item[0]),
    )[: vocab_size - 2]
    return Vocabulary(
        tokens=[schema.PAD_TOKEN, schema.UNK_TOKEN] + [token for token, _ in kept],
        counts=[0, 0] + [n for _, n in kept],
        total_tokens=sum(counts.values()),
        distinct_tokens=len(counts),
    )


def vocab_file_text(vocabulary):
    # Padding is the empty string, so the file starts with an empty line: line i = id i.
    return "".join(token + "\n" for token in vocabulary.tokens)
