"""metadata.json: what the job read, kept, rejected and wrote, in one document."""

import json
import posixpath

from common import errors
from common import standardizers
from preprocessing import outputs
from preprocessing import rows
from preprocessing import schema

_PERCENTILES = (50, 90, 95, 99, 99.9)


class ErrorRateExceeded(errors.UserError, RuntimeError):
    pass


class EmptyTrainSplit(errors.UserError, ValueError):
    """No training example is left: a model could not be trained on the output."""


def length_percentiles(histogram):
    """Percentiles of a {length: count} histogram (nearest rank)."""
    total = sum(histogram.values())
    result = {}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for percentile in _PERCENTILES:
        rank = max(1, -(-percentile * total // 100))  # ceil, at least the first row
        seen = 0
        for length, count in ordered:
            seen += count
            if seen >= rank:
                result[f"p{percentile:g}"] = length
                break
    result["max"] = ordered[-1][0]
    return result


def build_metadata(*, cfg, counts, vocabulary, embedding, input_files, split_files, rejected_files,
                   pipeline_options, duplicates=None):
    """The metadata document. `counts` is the job's Counter of rows (see transforms.row_counts);
    `input_files` a list of rows.InputFile (or (path, role)); `duplicates` a
    duplicates.Duplicates."""
    input_files = [rows.InputFile(*input_file) for input_file in input_files]
    per_split = {
        split: {"negative": counts.get(f"rows/{split}/0", 0), "positive": counts.get(f"rows/{split}/1", 0)}
        for split in schema.SPLITS
    }
    for split_counts in per_split.values():
        split_counts["total"] = split_counts["negative"] + split_counts["positive"]
        split_counts["positive_fraction"] = (
            round(split_counts["positive"] / split_counts["total"], 6) if split_counts["total"] else None
        )
    rejected_by_reason = {
        key.split("/", 1)[1]: value for key, value in sorted(counts.items()) if key.startswith("rejected/")
    }
    rejected = sum(rejected_by_reason.values())
    kept = sum(split_counts["total"] for split_counts in per_split.values())
    skipped_neutral = counts.get("skipped_neutral", 0)
    lengths = {int(key.split("/")[1]): value for key, value in counts.items() if key.startswith("train_length/")}
    train_rows = per_split["train"]["total"]
    rows_read = kept + rejected + skipped_neutral
    return {
        "schema_version": schema.SCHEMA_VERSION,
        # Versions come from config, not text.py: the launcher never imports TensorFlow.
        "standardizer": cfg.standardizer_name,
        "standardizer_version": standardizers.STANDARDIZER_VERSIONS[cfg.standardizer_name],
        "max_length": cfg.max_length,
        "vocab_size": len(vocabulary.tokens),
        "vocab": {
            "min_count": cfg.min_count,
            "requested_size": cfg.vocab_size,
            "distinct_train_tokens": vocabulary.distinct_tokens,
            "train_token_occurrences": vocabulary.total_tokens,
        },
        "embedding": {"source": cfg.glove, **embedding},
        "counts": {
            "rows_read": rows_read,
            "kept": kept,
            "rejected": rejected,
            "skipped_neutral": skipped_neutral,
            **{split: per_split[split]["total"] for split in schema.SPLITS},
        },
        "label_balance": per_split,
        "rejected_by_reason": rejected_by_reason,
        # Examples repeating the tweet id of another example (found before any is dropped).
        "duplicate_tweet_ids": duplicates.later_copies if duplicates else 0,
        # Test examples whose tweet id a train or val example also has: a test set that
        # overlaps training scores memory, not generalisation.
        "test_ids_in_train": duplicates.test_in_train if duplicates else 0,
        "drop_duplicate_ids": cfg.drop_duplicate_ids,
        # One definition of the rows the rate is of: rows_read, neutral test rows included.
        "error_rate": round(rejected / rows_read, 6) if rows_read else 0.0,
        "train_length_percentiles": length_percentiles(lengths),
        "train_truncated_fraction": round(counts.get("train_truncated", 0) / train_rows, 6) if train_rows else 0.0,
        "val_fraction": cfg.val_fraction,
        "split_rule": "blake2b-64 of the decimal tweet id < val_fraction * 2**64 -> val",
        "files": {
            "train_csv": [path for path, role, _ in input_files if role == "train"],
            "test_csv": [path for path, role, _ in input_files if role == "test"],
            "glove": cfg.glove,
            **{split: sorted(_basenames(split_files[split])) for split in schema.SPLITS},
            "rejected": sorted(_basenames(rejected_files)),
        },
        # How each CSV's bytes were decoded (--encoding; "auto" is decided per file).
        "input_encodings": {path: encoding for path, _, encoding in input_files},
        "pipeline_options": pipeline_options,
    }


def _basenames(paths):
    return [path.rstrip("/").rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] for path in paths]


def check_error_rate(metadata, max_error_rate):
    rate = metadata["error_rate"]
    if rate > max_error_rate:
        worst = sorted(metadata["rejected_by_reason"].items(), key=lambda item: -item[1])[:3]
        raise ErrorRateExceeded(
            f"Expected at most {max_error_rate:.2%} of rows rejected (--max_error_rate). Received "
            f"{rate:.2%} ({metadata['counts']['rejected']} of {metadata['counts']['rows_read']} rows "
            f"read); most common "
            f"reasons: {worst}. The rejected rows are in {schema.REJECTED_DIR}/; no metadata.json "
            "was written, so this output will not be read as complete."
        )


def check_train_split(metadata):
    counts = metadata["counts"]
    if counts["train"]:
        return
    if counts["val"]:
        why = f"all {counts['val']} kept training rows fell in val; add rows or lower --val_fraction"
    elif metadata["rejected_by_reason"]:
        why = f"every row was rejected ({metadata['rejected_by_reason']}; the rows are in {schema.REJECTED_DIR}/)"
    else:
        why = "the files hold no row (are they empty?)"
    raise EmptyTrainSplit(
        f"Expected at least one training example from --train_csv {metadata['files']['train_csv']}. "
        f"Received none of {counts['rows_read']} rows read: {why}. No metadata.json was written, "
        "so this output will not be read as complete."
    )


def to_json(metadata):
    return json.dumps(metadata, indent=2, sort_keys=True) + "\n"


def write_metadata(_, *, cfg, input_files, pipeline_options, counts, vocabulary, embedding, train, val, test,
                   rejected_files, vocab_file, duplicates=None):
    """Builds the metadata from the job's results, checks the error rate, then writes
    metadata.json; returns the metadata. The Beam job's last step (transforms.WriteMetadata)."""
    del vocab_file  # a side input only so that this step waits for vocab.txt
    metadata = build_metadata(
        cfg=cfg,
        counts=counts,
        vocabulary=vocabulary,
        embedding=embedding,
        input_files=input_files,
        split_files={"train": list(train), "val": list(val), "test": list(test)},
        rejected_files=list(rejected_files),
        pipeline_options=pipeline_options,
        duplicates=duplicates,
    )
    check_train_split(metadata)
    check_error_rate(metadata, cfg.max_error_rate)
    outputs.write_text(posixpath.join(cfg.output_dir, schema.METADATA_FILE), to_json(metadata))
    return metadata
