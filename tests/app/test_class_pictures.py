"""A class builds a dataset together (issue 15 part 5, app/routes/class_pictures.py): the teacher
links a dataset to the session; students send pictures (checked as dataset uploads, 4xx naming
the file); the queue's limits per student, per session and in bytes; only the teacher accepts
(into the dataset, duplicates found) or rejects; a student cannot write to the dataset.

Every test runs twice: in one process's memory (SQLite) and shared through PostgreSQL (the
sessions, the datasets and the queues in a throwaway server's schema, tests/app/conftest.py).
Two workers on PostgreSQL, limits under concurrency: test_class_pictures_shared.py."""

import asyncio
import dataclasses
import io
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.class_pictures import ClassPictureLimits, InMemoryClassPictures, get_class_pictures
from app.datasets.service import Datasets, get_datasets
from app.deps import settings_dep
from app.main import app
from app.runs.manager import get_run_manager
from app.runs.store import open_run_store
from app.session_limits import HubLimits
from app.sessions import InMemoryHub, get_hub
from app.settings import Settings

client = TestClient(app)
STUDENT, OTHER = "student-aaaa1111", "student-bbbb2222"


LIMITS = ClassPictureLimits(per_student=2, per_session=3, total_bytes=60_000, decided=2, links=2)


@pytest.fixture(params=["memory", "postgres"])
def setup(request, tmp_path):
    """The routes on one backend: in memory (SQLite), or PostgreSQL (as on several workers)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    settings = Settings(data_dir=tmp_path, database_url=url)
    datasets = Datasets.from_settings(settings)
    runs = open_run_store(url, settings.sqlite_path)
    loop = asyncio.new_event_loop()  # the hub's followers' loop: these tests have none
    if url:
        from app.class_pictures_postgres import PostgresClassPictures
        from app.sessions_postgres import PostgresHub

        hub = PostgresHub(url, HubLimits.from_settings(settings), loop, poll_seconds=0.2)
        queues = PostgresClassPictures(url, LIMITS)
    else:
        hub, queues = InMemoryHub(HubLimits.from_settings(settings)), InMemoryClassPictures(LIMITS)
    overrides = {get_datasets: lambda: datasets, settings_dep: lambda: settings,
                 get_run_manager: lambda: SimpleNamespace(store=runs),
                 get_class_pictures: lambda: queues, get_hub: lambda: hub}  # fmt: skip
    app.dependency_overrides.update(overrides)
    yield SimpleNamespace(datasets=datasets, queues=queues, hub=hub)
    for dependency in overrides:
        app.dependency_overrides.pop(dependency, None)
    for opened in (queues, hub, datasets, runs):
        getattr(opened, "close", lambda: None)()
    loop.close()


@pytest.fixture
def linked(setup):
    """A session, a dataset with classes cats and dogs, linked; (code, teacher, dataset, owner)."""
    session = client.post("/api/sessions", json={"page": "/teach", "state": {}}).json()
    made = client.post("/api/datasets", json={"name": "pets", "classes": ["cats", "dogs"]}).json()
    code, teacher, dataset, owner = (session["code"], session["teacher_token"], made["id"],
                                     made["owner_token"])  # fmt: skip
    answer = client.put(f"/api/sessions/{code}/dataset", json={"dataset": dataset},
                        headers={"X-Teacher-Token": teacher, "X-Dataset-Token": owner})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert [c["name"] for c in answer.json()["classes"]] == ["cats", "dogs"]
    return SimpleNamespace(code=code, teacher=teacher, dataset=dataset, owner=owner,
                           classes=[c["id"] for c in answer.json()["classes"]])  # fmt: skip


def photo(seed: int, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def send(code, data, class_id, student=STUDENT, name="Mina"):
    fields = {"class_id": str(class_id), "student": student, "name": name}
    return client.post(f"/api/sessions/{code}/pictures", files={"image": ("p.jpg", data)},
                       data=fields)  # fmt: skip


def teacher(linked, token=None, dataset_token=None):
    headers = {"X-Teacher-Token": token or linked.teacher}
    return headers | ({"X-Dataset-Token": dataset_token} if dataset_token else {})


def test_students_see_the_classes_send_pictures_and_the_teacher_accepts_or_rejects(linked, setup):
    code = linked.code
    seen = client.get(f"/api/sessions/{code}/dataset").json()
    assert seen["dataset"] == linked.dataset and seen["per_student"] == 2
    first = send(code, photo(1), linked.classes[0])
    second = send(code, photo(2), linked.classes[1], student=OTHER, name="Joon")
    assert first.status_code == 201 and second.status_code == 201, first.text
    assert first.json()["status"] == "pending"
    pending = client.get(f"/api/sessions/{code}/pictures/pending", headers=teacher(linked)).json()
    cats, dogs = linked.classes
    assert [(p["name"], p["class_id"]) for p in pending] == [("Mina", cats), ("Joon", dogs)]
    thumbnail = client.get(pending[0]["url"])
    assert thumbnail.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (pending[0]["width"],
                                                              pending[0]["height"])  # fmt: skip
    before = client.get(f"/api/datasets/{linked.dataset}").json()
    accepted = client.post(f"/api/sessions/{code}/pictures/{pending[0]['id']}/accept",
                           headers=teacher(linked, dataset_token=linked.owner))  # fmt: skip
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["picture"]["status"] == "accepted"
    assert accepted.json()["version"] == before["version"] + 1
    rejected = client.post(f"/api/sessions/{code}/pictures/{pending[1]['id']}/reject",
                           headers=teacher(linked))  # fmt: skip
    assert rejected.json()["picture"]["status"] == "rejected"
    # the dataset holds the accepted picture, in its class, from the class (a new version)
    images = client.get(f"/api/datasets/{linked.dataset}/images").json()
    assert [(i["class_id"], i["source"]) for i in images] == [(linked.classes[0], "class")]
    # each student sees their own outcome only
    mine = client.get(f"/api/sessions/{code}/pictures", params={"student": STUDENT}).json()
    theirs = client.get(f"/api/sessions/{code}/pictures", params={"student": OTHER}).json()
    assert [p["status"] for p in mine] == ["accepted"] and mine[0]["url"] is None
    assert [p["status"] for p in theirs] == ["rejected"]
    assert client.get(pending[1]["url"]).status_code == 404  # a decided picture is let go
    # the same picture again: accepted, but the dataset finds it holds it already
    again = send(code, photo(1), linked.classes[0]).json()
    answer = client.post(f"/api/sessions/{code}/pictures/{again['id']}/accept",
                         headers=teacher(linked, dataset_token=linked.owner)).json()  # fmt: skip
    assert answer["picture"]["status"] == "duplicate" and answer["images"] == 1
    assert setup.queues.held == 0


def test_limits_per_student_per_session_and_bytes(linked, setup):
    code = linked.code
    assert send(code, photo(1), linked.classes[0]).status_code == 201
    assert send(code, photo(2), linked.classes[0]).status_code == 201
    third = send(code, photo(3), linked.classes[0])
    assert third.status_code == 429
    assert third.json()["detail"][0] == {
        "loc": ["body", "image"], "type": "class_pictures_per_student", "ctx": {"limit": 2},
        "msg": "you already have 2 pictures waiting for the teacher"}  # fmt: skip
    assert send(code, photo(4), linked.classes[0], student=OTHER).status_code == 201
    full = send(code, photo(5), linked.classes[0], student="student-cccc3333")
    assert full.status_code == 429 and full.json()["detail"][0]["ctx"] == {"limit": 3}
    # a decision frees a place; the held bytes are what the queue keeps, and bounded
    waiting = client.get(f"/api/sessions/{code}/pictures/pending", headers=teacher(linked)).json()
    client.post(f"/api/sessions/{code}/pictures/{waiting[0]['id']}/reject", headers=teacher(linked))
    kept = [client.get(p["url"]).content for p in waiting[1:]]
    assert len(kept) == 2 and setup.queues.held == sum(len(png) for png in kept)
    assert client.get(waiting[0]["url"]).status_code == 404
    big = photo(6, size=(128, 128))  # noise: a large PNG once kept
    setup.queues.limits = dataclasses.replace(LIMITS, total_bytes=setup.queues.held + 10)
    over = send(code, big, linked.classes[0], student="student-dddd4444")
    assert over.status_code == 507 and over.json()["detail"][0]["type"] == "class_pictures_bytes"


def test_bad_pictures_and_fields_are_refused_naming_them(linked):
    code = linked.code
    broken = send(code, b"not a picture at all", linked.classes[0])
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["loc"] == ["body", "image"]
    strip = io.BytesIO()
    Image.new("L", (1, 6000), 128).save(strip, "PNG")
    assert send(code, strip.getvalue(), linked.classes[0]).json()["detail"][0]["loc"] == [
        "body", "image"]  # fmt: skip
    unknown = send(code, photo(1), 999)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "class_id"]
    nameless = send(code, photo(1), linked.classes[0], name="")
    assert nameless.status_code == 422 and nameless.json()["detail"][0]["loc"] == ["body", "name"]
    assert send(code, photo(1), linked.classes[0], student="x").status_code == 422
    assert client.get(f"/api/sessions/{code}/pictures/pending",
                      headers=teacher(linked)).json() == []  # fmt: skip


def test_only_the_teacher_decides_and_a_student_cannot_write_to_the_dataset(linked):
    code = linked.code
    waiting = send(code, photo(1), linked.classes[0]).json()
    accept = f"/api/sessions/{code}/pictures/{waiting['id']}/accept"
    assert client.post(accept).status_code == 401  # no teacher token
    assert client.post(accept, headers={"X-Teacher-Token": "guess"}).status_code == 403
    assert client.post(accept, headers=teacher(linked)).status_code == 401  # no dataset token
    wrong = teacher(linked, dataset_token="guess")
    assert client.post(accept, headers=wrong).status_code == 403
    assert client.post(f"/api/sessions/{code}/pictures/{waiting['id']}/reject").status_code == 401
    assert client.get(f"/api/sessions/{code}/pictures/pending").status_code == 401
    # the student's own way into the dataset: the dataset's routes, which need its token
    direct = client.post(f"/api/datasets/{linked.dataset}/images",
                         files={"files": ("p.jpg", photo(2))}, data={"class_id": "0"})  # fmt: skip
    assert direct.status_code == 401
    assert client.get(f"/api/datasets/{linked.dataset}").json()["images"] == 0
    # linking needs both tokens too
    other = client.post("/api/datasets", json={"name": "mine", "classes": ["a", "b"]}).json()
    link = f"/api/sessions/{code}/dataset"
    body = {"dataset": other["id"]}
    assert client.put(link, json=body, headers=teacher(linked)).status_code == 401
    assert client.put(link, json=body, headers={"X-Dataset-Token": other["owner_token"]},
                      ).status_code == 401  # fmt: skip
    assert client.get(f"/api/sessions/{code}/dataset").json()["dataset"] == linked.dataset


def test_no_dataset_linked_unknown_sessions_and_unlinking(setup, linked):
    session = client.post("/api/sessions", json={"page": "/teach", "state": {}}).json()
    closed = send(session["code"], photo(1), 0)
    assert closed.status_code == 409
    assert closed.json()["detail"][0]["type"] == "class_pictures_closed"
    nothing = client.get(f"/api/sessions/{session['code']}/dataset")
    assert nothing.status_code == 200 and nothing.json()["dataset"] is None
    mine = client.get(f"/api/sessions/{session['code']}/pictures", params={"student": STUDENT})
    assert mine.status_code == 200 and mine.json() == []
    assert client.get("/api/sessions/ZZZZZQ/dataset").status_code == 404
    assert send("ZZZZZQ", photo(1), 0).status_code == 404
    send(linked.code, photo(2), linked.classes[0])
    assert setup.queues.held > 0
    gone = client.delete(f"/api/sessions/{linked.code}/dataset", headers=teacher(linked))
    assert gone.status_code == 204 and setup.queues.held == 0
    assert send(linked.code, photo(3), linked.classes[0]).status_code == 409


def test_links_of_ended_sessions_are_let_go_when_the_links_are_full(setup, linked):
    """The fixture allows 2 links; the linked session ends, so a third can link."""
    made = client.post("/api/datasets", json={"name": "more", "classes": ["a", "b"]}).json()
    tokens = {"X-Dataset-Token": made["owner_token"]}

    def start_and_link():
        session = client.post("/api/sessions", json={"page": "/teach", "state": {}}).json()
        headers = {"X-Teacher-Token": session["teacher_token"], **tokens}
        path = f"/api/sessions/{session['code']}/dataset"
        return session, client.put(path, json={"dataset": made["id"]}, headers=headers)

    assert start_and_link()[1].status_code == 200
    full = start_and_link()[1]
    assert full.status_code == 503 and full.json()["detail"][0]["type"] == "class_pictures_full"
    client.delete(f"/api/sessions/{linked.code}", headers=teacher(linked))
    assert start_and_link()[1].status_code == 200
    assert linked.code not in setup.queues.codes()
