"""Dataset rows: classes, pictures, duplicates, limits checked inside the write, versions, and
all-or-nothing adds; every test against SQLite and PostgreSQL (a throwaway server,
tests/app/conftest.py), like the run store's."""

import threading
from dataclasses import replace

import pytest

from app.datasets.store import DatasetLimits, NewImage, open_dataset_store
from cnncore.errors import CNNCoreError

LIMITS = DatasetLimits(max_images=5, max_classes=3, max_bytes=1000, max_pixels=10_000,
                       client_max_datasets=2)  # fmt: skip


@pytest.fixture
def open_store(open_database):
    return lambda: open_database(open_dataset_store)


@pytest.fixture
def store(open_store):
    return open_store()


def image(digest: str, class_id: int | None = 0, size: int = 100, side: int = 10, **kw):
    return NewImage(digest.ljust(24, "0"), class_id, side, side, size, "file", **kw)


def test_create_read_and_count_per_class(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    assert (made.name, made.version, made.images) == ("toys", 1, 0)
    assert [(c.id, c.name, c.images) for c in made.classes] == [(0, "cup", 0), (1, "pen", 0)]
    record, added, duplicates = store.add_images(
        made.id, [image("a"), image("b", 1, size=50, side=20), image("c")], LIMITS
    )
    assert [c.images for c in record.classes] == [2, 1]
    assert (record.images, record.bytes, record.pixels) == (3, 250, 100 + 400 + 100)
    assert record.version == 2 and len(added) == 3 and duplicates == []
    assert store.get(made.id) == record
    assert [i.digest[0] for i in store.images(made.id, 0)] == ["a", "c"]


def test_duplicates_are_reported_with_the_class_holding_them_and_not_added(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    store.add_images(made.id, [image("a", 1)], LIMITS)
    record, added, duplicates = store.add_images(
        made.id, [image("a", 0), image("b", 0), image("b", 0)], LIMITS
    )
    assert [i.digest[0] for i in added] == ["b"]
    assert [(i.digest[0], held) for i, held in duplicates] == [("a", 1), ("b", 0)]
    assert record.images == 2
    unchanged, added, _ = store.add_images(made.id, [image("a", 0)], LIMITS)
    assert added == [] and unchanged.version == record.version  # nothing new: no new version


@pytest.mark.parametrize(
    ("images", "code"),
    [
        ([image(str(i)) for i in range(6)], "dataset_too_many_images"),
        ([image("a", size=600), image("b", size=401)], "dataset_too_many_bytes"),
        ([image("a", side=100), image("b", side=1)], "dataset_too_many_pixels"),
    ],
)
def test_a_limit_refuses_the_whole_add(store, images, code):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    written = []
    with pytest.raises(CNNCoreError) as refused:
        store.add_images(made.id, images, LIMITS, written.extend)
    assert refused.value.code == code
    assert written == [] and store.get(made.id).images == 0 and store.get(made.id).version == 1


def test_a_failed_file_write_adds_no_row(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)

    def fail(_added):
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.add_images(made.id, [image("a")], LIMITS, fail)
    assert store.get(made.id).images == 0


def test_classes_by_name_are_made_once_and_counted_against_the_limit(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup"], LIMITS)
    record, _, _ = store.add_images(
        made.id,
        [
            image("a", None, class_name="pen"),
            image("b", None, class_name="cup"),
            image("c", None, class_name="pen"),
        ],
        LIMITS,
    )
    assert [(c.id, c.name, c.images) for c in record.classes] == [(0, "cup", 1), (1, "pen", 2)]
    with pytest.raises(CNNCoreError) as refused:
        store.add_images(made.id, [image("d", None, class_name="x"),
                                   image("e", None, class_name="y")], LIMITS)  # fmt: skip
    assert refused.value.code == "dataset_too_many_classes"
    assert len(store.get(made.id).classes) == 2  # the class made before the refusal is gone too


def test_classes_rename_delete_and_ids_never_reused(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    store.add_images(made.id, [image("a", 1), image("b", 0)], LIMITS)
    with pytest.raises(CNNCoreError) as taken:
        store.rename_class(made.id, 0, "pen")
    assert taken.value.code == "dataset_class_exists"
    assert store.rename_class(made.id, 0, "mug").classes[0].name == "mug"
    record, gone = store.delete_class(made.id, 1)
    assert [g[0] for g in gone] == ["a"] and [c.id for c in record.classes] == [0]
    assert [c.id for c in store.add_class(made.id, "toy", LIMITS).classes] == [0, 2]
    with pytest.raises(CNNCoreError) as unknown:
        store.move_image(made.id, "b".ljust(24, "0"), 1)
    assert unknown.value.code == "dataset_unknown_class"


def test_move_delete_picture_and_dataset(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    store.add_images(made.id, [image("a"), image("b")], LIMITS)
    moved = store.move_image(made.id, "a".ljust(24, "0"), 1)
    assert [c.images for c in moved.classes] == [1, 1] and moved.version == 3
    assert store.delete_image(made.id, "b".ljust(24, "0")).images == 1
    with pytest.raises(KeyError):
        store.delete_image(made.id, "b".ljust(24, "0"))
    assert store.rename(made.id, "desk").name == "desk"
    assert store.delete(made.id) and store.get(made.id) is None
    assert not store.delete(made.id)
    with pytest.raises(KeyError):
        store.add_images(made.id, [image("c")], LIMITS)


def test_a_client_keeps_at_most_its_quota(store):
    for i in range(2):
        store.create(str(i) * 16, "x", "hash", "1.2.3.4", [], LIMITS)
    with pytest.raises(CNNCoreError) as refused:
        store.create("9" * 16, "x", "hash", "1.2.3.4", [], LIMITS)
    assert refused.value.code == "dataset_client_quota"
    assert store.create("8" * 16, "x", "hash", "5.6.7.8", [], LIMITS).client == "5.6.7.8"


def test_an_owner_keeps_at_most_its_quota_whatever_its_address(store):
    limits = replace(LIMITS, owner_max_datasets=2, client_max_datasets=100)
    store.create("1" * 16, "x", "mine", "1.2.3.4", [], limits)
    store.create("2" * 16, "x", "mine", "5.6.7.8", [], limits)
    with pytest.raises(CNNCoreError) as refused:
        store.create("3" * 16, "x", "mine", "9.9.9.9", [], limits)
    assert (refused.value.code, refused.value.ctx) == ("dataset_owner_quota", {"limit": 2})
    assert store.owner_holds_any("mine") and not store.owner_holds_any("theirs")
    assert store.create("4" * 16, "x", "theirs", "1.2.3.4", [], limits).client == "1.2.3.4"
    assert store.get("3" * 16) is None


def test_the_server_keeps_at_most_its_count_and_bytes(store):
    limits = replace(LIMITS, max_datasets=2, max_total_bytes=250)
    first = store.create("1" * 16, "x", "a", "1.1.1.1", ["cup"], limits)
    second = store.create("2" * 16, "x", "b", "2.2.2.2", ["cup"], limits)
    with pytest.raises(CNNCoreError) as full:
        store.create("3" * 16, "x", "c", "3.3.3.3", [], limits)
    assert (full.value.code, full.value.ctx) == ("datasets_server_full", {"limit": 2})
    store.add_images(first.id, [image("a", size=200)], limits)
    written = []
    with pytest.raises(CNNCoreError) as over:
        store.add_images(second.id, [image("b", size=30), image("c", size=30)], limits,
                         written.append)  # fmt: skip
    assert over.value.code == "datasets_server_bytes" and over.value.field == "files"
    assert over.value.ctx == {"limit": 250, "count": 200, "total": 260}
    assert written == [] and store.get(second.id).images == 0  # refused before any file
    store.add_images(second.id, [image("b", size=50)], limits, written.append)
    assert [i.digest[0] for i in written[0]] == ["b"]  # exactly at the cap: kept
    assert store.delete(first.id)
    store.add_images(second.id, [image("c", size=200)], limits)  # room again


def test_concurrent_adds_from_two_stores_never_pass_a_limit_together(open_store):
    first, second = open_store(), open_store()
    made = first.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup"], LIMITS)
    results: list = []

    def add(store, prefix):
        try:
            results.append(store.add_images(made.id, [image(prefix + str(i)) for i in range(3)],
                                            LIMITS))  # fmt: skip
        except CNNCoreError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=add, args=(s, p)) for s, p in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, (r if isinstance(r, str) else "ok" for r in results))) == [
        "dataset_too_many_images", "ok"]  # fmt: skip
    assert second.get(made.id).images == 3


def test_contents_is_one_version(store):
    made = store.create("d" * 16, "toys", "hash", "1.2.3.4", ["cup", "pen"], LIMITS)
    store.add_images(made.id, [image("a"), image("b", 1)], LIMITS)
    record, images = store.contents(made.id)
    assert record.version == 2 and [(i.digest[0], i.class_id) for i in images] == [
        ("a", 0),
        ("b", 1),
    ]
    assert store.contents("e" * 16) is None
