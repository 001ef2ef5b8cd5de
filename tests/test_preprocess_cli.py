"""s140-preprocess as a user runs it (subprocess): repeated and comma-separated input
flags, compressed inputs, directories given as files, and a quiet stderr."""

import bz2
import csv
import gzip
import io
import json
import os
import pathlib
import subprocess
import sys

from preprocessing import config
from preprocessing import rows
from preprocessing import schema

REPO = pathlib.Path(__file__).resolve().parents[1]
GLOVE = "happy 1 0 0 0\nsad 0 1 0 0\nday 0 0 1 0\n"


def _csv_bytes(first_id, n, polarities=("0", "4")):
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for i in range(n):
        polarity = polarities[i % len(polarities)]
        words = "happy day" if polarity == "4" else "sad day"
        writer.writerow([polarity, str(first_id + i), "d", "q", "u", words])
    return buffer.getvalue().encode("latin-1")


def _cli(*args):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "preprocessing", *args], capture_output=True, text=True, cwd=REPO,
        timeout=600, env=env,
    )


def test_repeated_and_comma_separated_flags_read_every_file(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(_csv_bytes(100, 30)))
    (tmp_path / "b.csv.bz2").write_bytes(bz2.compress(_csv_bytes(200, 20)))
    (tmp_path / "c.csv").write_bytes(_csv_bytes(300, 10))
    (tmp_path / "t1.csv").write_bytes(_csv_bytes(400, 6, polarities=("0", "2", "4")))
    (tmp_path / "t2.csv").write_bytes(_csv_bytes(500, 4))
    (tmp_path / "glove.txt").write_text(GLOVE)
    out = tmp_path / "out"
    result = _cli(
        f"--train_csv={tmp_path / 'a.csv.gz'}", f"--train_csv={tmp_path / 'b.csv.bz2'},{tmp_path / 'c.csv'}",
        f"--test_csv={tmp_path / 't1.csv'}", f"--test_csv={tmp_path / 't2.csv'}",
        f"--output_dir={out}", f"--glove={tmp_path / 'glove.txt'}", "--num_shards=1", "--max_length=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((out / schema.METADATA_FILE).read_text())
    assert metadata["files"]["train_csv"] == [str(tmp_path / name) for name in ("a.csv.gz", "b.csv.bz2", "c.csv")]
    assert metadata["files"]["test_csv"] == [str(tmp_path / "t1.csv"), str(tmp_path / "t2.csv")]
    counts = metadata["counts"]
    assert counts["train"] + counts["val"] == 60 and counts["test"] == 8 and counts["skipped_neutral"] == 2
    assert counts["rows_read"] == 70 and counts["rejected"] == 0
    noise = [line for line in result.stderr.splitlines() if "oneDNN" in line or "cuInit" in line]
    assert noise == []


def test_a_path_given_twice_is_refused(tmp_path):
    (tmp_path / "a.csv").write_bytes(_csv_bytes(1, 4))
    result = _cli(f"--train_csv={tmp_path / 'a.csv'},{tmp_path / 'a.csv'}", f"--output_dir={tmp_path / 'o'}")
    assert result.returncode != 0
    assert f"--train_csv lists {str(tmp_path / 'a.csv')!r} twice" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_directory_as_train_csv_gives_one_clear_line(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_bytes(_csv_bytes(1, 4))
    out = tmp_path / "out"
    result = _cli(f"--train_csv={tmp_path / 'data'}", f"--output_dir={out}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("s140-preprocess: error:")]
    assert error_lines == [
        f"s140-preprocess: error: Expected --train_csv to name CSV files (paths or globs). Received "
        f"{str(tmp_path / 'data')!r}, a directory. Pass the files in it, e.g. "
        f"--train_csv='{tmp_path / 'data'}/*.csv'."
    ]
    assert not out.exists()
    assert not list(tmp_path.rglob("beam-temp*"))


def test_encoding_flag_reaches_the_config():
    assert config.PreprocessConfig(train_csv=("x",), output_dir="o").encoding == rows.AUTO
    assert config.CSV_ENCODINGS == rows.ENCODINGS == ("auto", "latin-1", "utf-8")
    result = _cli("--train_csv=x.csv", "--output_dir=o", "--encoding=cp1252")
    assert result.returncode != 0
    assert "--encoding" in result.stderr and "auto" in result.stderr


def test_a_forced_encoding_reaches_the_reader(tmp_path):
    from preprocessing import pipeline

    (tmp_path / "train.csv").write_bytes(_csv_bytes(1, 40) + b'"4","99","d","q","u","caf\xe9 happy"\n')
    (tmp_path / "glove.txt").write_text(GLOVE)
    metadata = pipeline.preprocess(config.PreprocessConfig(
        train_csv=(str(tmp_path / "train.csv"),), output_dir=str(tmp_path / "out"),
        glove=str(tmp_path / "glove.txt"), num_shards=1, max_error_rate=0.5, encoding="utf-8",
    ))
    assert metadata["rejected_by_reason"] == {rows.BAD_ENCODING: 1}
    assert metadata["input_encodings"] == {str(tmp_path / "train.csv"): rows.UTF8}
    counts = metadata["counts"]
    assert counts["train"] + counts["val"] + counts["test"] + counts["skipped_neutral"] + counts["rejected"] == counts["rows_read"] == 41


def _in_cli_process(code):
    """Runs `code` (which prints JSON) in a fresh process with the CLI module imported as
    `cli`: each command defines its flags in a process of its own, and other tests of
    this session import other CLIs whose flags share names (--overwrite)."""
    done = subprocess.run(
        [sys.executable, "-c", "import json\nfrom preprocessing import __main__ as cli\n" + code],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_help_lists_this_commands_flags_grouped_with_examples():
    result = _cli("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Try --helpfull" not in result.stdout
    for line in ("Input:", "Output:", "Checks on the data:", "Examples:",
                 "  --train_csv (required)\n      Training CSV paths or globs",
                 "  --output_dir (required)\n      Where the data directory is written.",
                 "  --max_error_rate (default: '0.01')\n      Fail when a larger share of rows is rejected.",
                 "Beam pipeline options (--runner, --project"):
        assert line in result.stdout
    assert result.stdout.index("--train_csv (") < result.stdout.index("--output_dir (")
    # Every flag this command defines is in one group, once.
    grouped, defined = _in_cli_process(
        "print(json.dumps([[n for _, names in cli.FLAG_GROUPS for n in names],"
        " [f.name for f in cli.flags.FLAGS.get_flags_for_module(cli)]]))"
    )
    assert sorted(grouped) == sorted(defined) and len(set(defined)) == 15  # 14 + --standardizer
    assert _cli("-h").stdout == result.stdout


def test_a_run_logs_its_stages_and_rows_done(tmp_path):
    from preprocessing import sample

    sample.write_sample_csv(tmp_path / "train.csv", num_rows=3000, seed=2)
    (tmp_path / "glove.txt").write_text(GLOVE)
    result = _cli(f"--train_csv={tmp_path / 'train.csv'}", f"--output_dir={tmp_path / 'out'}",
                  f"--glove={tmp_path / 'glove.txt'}", "--num_shards=1", "--batch_size=500")
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("Stage 1/3: checking the inputs", "Stage 2/3: the Beam job reads", "Stage 3/3: the job ended"):
        assert stage in result.stderr
    encoding = rows.file_encoding(str(tmp_path / "train.csv"))
    assert f"ReadRows: read 3000 rows of {tmp_path / 'train.csv'} ({encoding})" in result.stderr
    counts = json.loads((tmp_path / "out" / schema.METADATA_FILE).read_text())["counts"]
    assert counts["train"] + counts["val"] + counts["test"] + counts["skipped_neutral"] + counts["rejected"] == counts["rows_read"] == 3000


def test_a_flag_of_the_wrong_type_is_one_line(tmp_path):
    # Seen: a 43-line traceback.
    result = _cli(f"--train_csv={tmp_path / 'x.csv'}", f"--output_dir={tmp_path / 'out'}", "--max_length=abc")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "s140-preprocess: error: flag --max_length=abc: invalid literal for int() with base 10: 'abc'")
    assert not (tmp_path / "out").exists()

