"""My digits: the folder of flagged images and their labels, its bounds, its CSV checks, and scoring on it."""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_model import config, images, mydigits


def photo(digit_offset: int = 0, size: int = 160) -> bytes:
    """A PNG of a dark stroke on white paper (a "1" leaning by ``digit_offset`` pixels): distinct bytes for
    each offset, and read as a digit by the preprocessing."""
    picture = Image.new("L", (size, size), 245)
    ImageDraw.Draw(picture).line((80 - digit_offset, 25, 80 + digit_offset, 135), fill=20, width=14)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def drawing(size: tuple[int, int] = (280, 280)) -> bytes:
    """A canvas's PNG export: a white stroke on black, RGBA."""
    picture = Image.new("RGBA", size, (0, 0, 0, 255))
    ImageDraw.Draw(picture).line((140, 50, 140, 230), fill=(255, 255, 255, 255), width=20)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def write_labels(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / mydigits.LABELS_FILE).write_text(text)


def folder_state(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != mydigits.LOCK_FILE}


def test_saved_images_and_labels_read_back_as_they_were_saved(tmp_path: Path) -> None:
    folder = tmp_path / "my-digits"
    upload, drawn = photo(), drawing()
    first = mydigits.add(folder, upload, name="seven.png", label=7, source="upload", predicted=1)
    second = mydigits.add(folder, drawn, name="drawing", label=1, source="drawing", predicted=None)
    loaded = mydigits.load(folder)
    assert loaded.entries == (first, second)
    assert loaded.problems == ()
    assert [(entry.label, entry.source, entry.predicted, entry.name) for entry in loaded.entries] == [
        (7, "upload", 1, "seven.png"),
        (1, "drawing", None, "drawing"),
    ]
    assert (folder / first.file).read_bytes() == upload and first.file.endswith(".png")
    assert (folder / second.file).read_bytes() == drawn
    assert loaded.total_bytes == len(upload) + len(drawn)
    with open(folder / mydigits.LABELS_FILE, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == list(mydigits.COLUMNS)
    assert rows[0]["created"].endswith("Z") and rows[0]["label"] == "7"


def test_the_same_image_saved_again_is_relabelled_not_stored_twice(tmp_path: Path) -> None:
    mydigits.add(tmp_path, photo(), name="a.png", label=7, source="upload")
    mydigits.add(tmp_path, photo(), name="a.png", label=4, source="upload")
    [entry] = mydigits.load(tmp_path).entries
    assert entry.label == 4
    assert len([path for path in tmp_path.iterdir() if path.suffix == ".png"]) == 1


def test_a_save_over_the_image_count_is_refused_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mydigits, "MAX_IMAGES", 2)
    for offset in (0, 5):
        mydigits.add(tmp_path, photo(offset), name="x.png", label=1, source="upload")
    before = folder_state(tmp_path)
    with pytest.raises(mydigits.SetFull, match="at most 2 images and has 2"):
        mydigits.add(tmp_path, photo(10), name="x.png", label=1, source="upload")
    assert folder_state(tmp_path) == before
    # Relabelling an image already saved adds none, so it is allowed at the bound.
    mydigits.add(tmp_path, photo(5), name="x.png", label=2, source="upload")
    assert [entry.label for entry in mydigits.load(tmp_path).entries] == [1, 2]


def test_a_save_over_the_size_bound_is_refused_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    first = photo(0)
    monkeypatch.setattr(mydigits, "MAX_SET_BYTES", len(first) + 100)
    mydigits.add(tmp_path, first, name="x.png", label=1, source="upload")
    before = folder_state(tmp_path)
    with pytest.raises(mydigits.SetFull, match=r"at most 0 MB of images .* does not fit"):
        mydigits.add(tmp_path, photo(8), name="y.png", label=1, source="upload")
    assert folder_state(tmp_path) == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"label": 10}, "label must be a digit from 0 to 9; got 10"),
        ({"label": True}, "label must be a digit from 0 to 9; got True"),
        ({"label": "7"}, "label must be a digit from 0 to 9; got '7'"),
        ({"predicted": 12}, "prediction must be a digit"),
        ({"source": "camera"}, "source must be upload or drawing; got 'camera'"),
        ({"data": b""}, "the image is empty"),
        ({"data": b"shopping list: eggs"}, "only a PNG, JPEG, BMP, GIF or WebP image is saved"),
        ({"data": b"\xff\xd8\xff\xe0 jpeg", "source": "drawing"}, "only a PNG is saved"),
        ({"data": b"\x89PNG\r\n\x1a\n" + bytes(images.MAX_DRAWING_BYTES), "source": "drawing"}, "at most 1 MB"),
    ],
)
def test_a_bad_save_is_refused_with_what_is_allowed_and_writes_nothing(tmp_path: Path, arguments, message) -> None:
    folder = tmp_path / "my-digits"
    call = {"data": photo(), "name": "x.png", "label": 3, "source": "upload", **arguments}
    with pytest.raises(mydigits.MyDigitsError, match=message):
        mydigits.add(folder, call.pop("data"), **call)
    assert not folder.exists()


def test_a_missing_folder_is_an_empty_set_or_an_error_when_asked_for(tmp_path: Path) -> None:
    assert mydigits.load(tmp_path / "nowhere").entries == ()
    with pytest.raises(mydigits.MyDigitsError, match="nowhere does not exist"):
        mydigits.load(tmp_path / "nowhere", missing_ok=False)
    with pytest.raises(mydigits.MyDigitsError, match="has no labels.csv"):
        mydigits.load(tmp_path, missing_ok=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(mydigits.MyDigitsError, match="is not a folder"):
        mydigits.load(tmp_path / "file")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with a header naming the columns file and label"),
        ("image,digit\na.png,3\n", "its first line is 'image,digit'"),
        ('file,label\n"a.png,3\n', "not valid CSV"),
    ],
)
def test_a_csv_without_its_header_or_not_csv_at_all_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    write_labels(tmp_path, text)
    with pytest.raises(mydigits.MyDigitsError, match=message):
        mydigits.load(tmp_path)


def test_a_csv_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / mydigits.LABELS_FILE).write_bytes(b"file,label\n\xff\xfe.png,3\n")
    with pytest.raises(mydigits.MyDigitsError, match="is not UTF-8 text"):
        mydigits.load(tmp_path)


def test_each_bad_row_is_skipped_with_its_line_and_reason_and_the_good_ones_kept(tmp_path: Path) -> None:
    for name in ("good.png", "other.png", "third.png"):
        (tmp_path / name).write_bytes(photo())
    (tmp_path.parent / "outside.png").write_bytes(photo())
    (tmp_path / "sub").mkdir()
    write_labels(
        tmp_path,
        "file,label,source\n"
        "good.png,3,upload\n"
        "other.png,12,upload\n"
        "other.png,seven,\n"
        "gone.png,4,upload\n"
        "../outside.png,4,upload\n"
        "/etc/passwd,4,upload\n"
        "sub,4,upload\n"
        "third.png,5,camera\n"
        "third.png,5\n"
        ",5,upload\n"
        "good.png,3,upload\n"
        "\n"
        "third.png,5,drawing\n",
    )
    loaded = mydigits.load(tmp_path)
    assert [(entry.file, entry.label, entry.source) for entry in loaded.entries] == [
        ("good.png", 3, "upload"),
        ("third.png", 5, "drawing"),
    ]
    assert [str(problem) for problem in loaded.problems] == [
        "line 3: label '12' is not a digit from 0 to 9",
        "line 4: label 'seven' is not a digit from 0 to 9",
        "line 5: file 'gone.png' does not exist",
        "line 6: file '../outside.png' is not a name inside the folder",
        "line 7: file '/etc/passwd' is not a name inside the folder",
        "line 8: file 'sub' is not a regular file",
        "line 9: source 'camera' is not upload or drawing",
        "line 10: has 2 fields; the header has 3",
        "line 11: the file is empty",
        "line 12: file 'good.png' is listed again (first on line 2)",
    ]


def test_a_hand_made_set_needs_only_file_and_label(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(photo())
    write_labels(tmp_path, "\ufeffLabel,File\n7,a.png\n")
    [entry] = mydigits.load(tmp_path).entries
    assert (entry.file, entry.label, entry.source, entry.predicted) == ("a.png", 7, "upload", None)


def test_the_digest_changes_with_the_csv_and_with_a_listed_file(tmp_path: Path) -> None:
    entry = mydigits.add(tmp_path, photo(), name="a.png", label=1, source="upload")
    first = mydigits.load(tmp_path).digest
    assert mydigits.load(tmp_path).digest == first
    (tmp_path / entry.file).write_bytes(photo(6) + b"\0")
    second = mydigits.load(tmp_path).digest
    mydigits.add(tmp_path, photo(3), name="b.png", label=1, source="upload")
    assert len({first, second, mydigits.load(tmp_path).digest}) == 3


def test_the_zip_holds_the_csv_and_every_image_and_unpacks_into_the_same_set(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    saved = [
        mydigits.add(folder, photo(), name="a.png", label=7, source="upload", predicted=1),
        mydigits.add(folder, drawing(), name="drawing", label=1, source="drawing", predicted=1),
    ]
    (folder / "notes.txt").write_text("not part of the set")
    archive = zipfile.ZipFile(io.BytesIO(mydigits.zip_bytes(folder)))
    assert sorted(archive.namelist()) == sorted(
        ["my-digits/labels.csv", *(f"my-digits/{entry.file}" for entry in saved)]
    )
    for entry in saved:
        assert archive.read(f"my-digits/{entry.file}") == (folder / entry.file).read_bytes()
    archive.extractall(tmp_path / "unpacked")
    assert mydigits.load(tmp_path / "unpacked" / "my-digits").entries == tuple(saved)


def test_an_empty_set_zips_to_the_csv_header_alone(tmp_path: Path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(mydigits.zip_bytes(tmp_path / "nowhere")))
    assert archive.namelist() == ["my-digits/labels.csv"]
    assert archive.read("my-digits/labels.csv").decode() == ",".join(mydigits.COLUMNS) + "\n"


def test_one_image_can_be_deleted_and_then_all_of_them(tmp_path: Path) -> None:
    first, second, third = (
        mydigits.add(tmp_path, photo(offset), name="x.png", label=offset % 10, source="upload") for offset in (0, 4, 8)
    )
    (tmp_path / "mine.txt").write_text("kept")
    mydigits.remove(tmp_path, second.file)
    assert mydigits.load(tmp_path).entries == (first, third)
    assert not (tmp_path / second.file).exists()
    with pytest.raises(mydigits.MyDigitsError, match="no image"):
        mydigits.remove(tmp_path, second.file)
    assert mydigits.clear(tmp_path) == 2
    assert mydigits.load(tmp_path).entries == ()
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(".")) == ["mine.txt"]
    assert mydigits.clear(tmp_path) == 0


def test_deleting_from_a_damaged_set_names_no_file_of_the_machine(tmp_path: Path) -> None:
    write_labels(tmp_path, "not,a,header\n")
    with pytest.raises(mydigits.MyDigitsError) as raised:
        mydigits.remove(tmp_path, "x.png")
    assert str(tmp_path) not in str(raised.value) and "labels.csv cannot be read" in str(raised.value)


def test_unreadable_rows_are_dropped_at_the_next_save(tmp_path: Path) -> None:
    write_labels(tmp_path, "file,label\ngone.png,3\n")
    entry = mydigits.add(tmp_path, photo(), name="a.png", label=1, source="upload")
    loaded = mydigits.load(tmp_path)
    assert loaded.entries == (entry,) and loaded.problems == ()


def _add_many(folder: str, start: int, count: int) -> None:
    for offset in range(start, start + count):
        mydigits.add(
            folder, photo(offset % 40, size=160 + offset // 40), name=f"{offset}.png", label=1, source="upload"
        )


def test_saves_from_many_threads_at_once_keep_the_csv_whole(tmp_path: Path) -> None:
    threads = [threading.Thread(target=_add_many, args=(str(tmp_path), start, 10)) for start in range(0, 80, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = mydigits.load(tmp_path)
    assert loaded.problems == ()
    assert sorted(entry.name for entry in loaded.entries) == sorted(f"{offset}.png" for offset in range(80))
    assert not list(tmp_path.glob(".tmp-*"))


def test_saves_from_many_processes_at_once_keep_the_csv_whole(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_many, args=(str(tmp_path), start, 12)) for start in range(0, 48, 12)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    loaded = mydigits.load(tmp_path)
    assert loaded.problems == ()
    assert len(loaded.entries) == 48 == len({entry.file for entry in loaded.entries})


def test_each_saved_image_is_prepared_as_the_predict_page_prepares_it(tmp_path: Path) -> None:
    blank = Image.new("L", (64, 64), 255)
    buffer = io.BytesIO()
    blank.save(buffer, "PNG")
    items = [
        (photo(), "upload"),
        (drawing(), "drawing"),
        (buffer.getvalue(), "upload"),
        (drawing((560, 560)), "drawing"),
    ]
    prepared = mydigits.prepare(items)
    assert prepared.finals.shape == (4, 28, 28) and prepared.finals.dtype == np.uint8
    np.testing.assert_array_equal(prepared.finals[0], images.preprocess_file(photo()).final)
    np.testing.assert_array_equal(prepared.finals[1], images.preprocess_drawing(drawing(), (280, 280)).final)
    assert prepared.refusals[:2] == (None, None) and prepared.refusals[3] is None
    with pytest.raises(images.ImageError) as refused:
        images.preprocess_file(buffer.getvalue())
    assert prepared.refusals[2] == str(refused.value)
    assert prepared.accepted.tolist() == [True, True, False, True]
    assert prepared.model_inputs.shape == (3, 28, 28) and prepared.model_inputs.max() <= 1.0


def test_a_score_counts_right_wrong_and_refused_images_against_the_labels() -> None:
    entries = [mydigits.Entry(file=f"{index}.png", label=label) for index, label in enumerate([7, 1, 3, 4])]
    inputs = mydigits.Inputs(np.zeros((4, 28, 28), np.uint8), (None, None, "no digit in it", None))
    probabilities = np.full((3, 10), 0.01)
    probabilities[0, 7] = probabilities[1, 7] = probabilities[2, 4] = 0.91
    result = mydigits.score(entries, inputs, probabilities)
    assert (result.count, result.right, result.refused) == (3, 2, 1)
    assert result.accuracy == pytest.approx(2 / 3)
    assert [(r.entry.file, r.predicted) for r in result.wrong] == [("1.png", 7)]
    assert result.results[0].confidence == pytest.approx(0.91)
    assert result.results[2].refusal == "no digit in it" and not result.results[2].correct
    nothing_read = mydigits.score(entries[:1], mydigits.Inputs(np.zeros((1, 28, 28), np.uint8), ("x",)), [])
    assert math.isnan(nothing_read.accuracy) and nothing_read.count == 0


def test_a_score_refuses_probabilities_that_do_not_match_the_images() -> None:
    entries = [mydigits.Entry(file="a.png", label=1)]
    inputs = mydigits.Inputs(np.zeros((1, 28, 28), np.uint8), (None,))
    with pytest.raises(ValueError, match="expected 1 entries and 1 rows of probabilities; got 1 and 2"):
        mydigits.score(entries, inputs, np.zeros((2, 10)))


def test_the_folder_is_in_the_artifacts_folder_unless_configured(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MNIST_ARTIFACTS", str(tmp_path / "store"))
    monkeypatch.delenv("MNIST_MY_DIGITS", raising=False)
    assert config.my_digits_dir() == tmp_path / "store" / "my-digits"
    monkeypatch.setenv("MNIST_MY_DIGITS", str(tmp_path / "elsewhere"))
    assert config.my_digits_dir() == tmp_path / "elsewhere"


def test_a_save_to_a_set_whose_csv_cannot_be_read_is_refused_without_naming_its_path(tmp_path: Path) -> None:
    write_labels(tmp_path, "image,digit\n")
    with pytest.raises(mydigits.MyDigitsError, match="labels.csv cannot be read, so nothing was saved") as refused:
        mydigits.add(tmp_path, photo(), name="a.png", label=1, source="upload")
    assert str(tmp_path) not in str(refused.value)
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(".")) == ["labels.csv"]
    assert mydigits.clear(tmp_path) == 0 and not (tmp_path / "labels.csv").exists()
