"""Pictures a class sends, on several workers (app/class_pictures_postgres.py): two apps with
their own process memory on one PostgreSQL database, a student on one and the teacher on the
other; the limits hold when students submit at once through two instances (in memory: one
instance, the same bounds); a session's end or expiry takes its queue with it; nothing is kept
in the process. The route-level tests on both backends: test_class_pictures.py."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_class_pictures import STUDENT, photo

from app.class_pictures import (
    ClassPictureError,
    ClassPictureLimits,
    InMemoryClassPictures,
    get_class_pictures,
)
from app.datasets.service import Datasets, get_datasets
from app.deps import settings_dep
from app.main import create_app
from app.session_limits import HubLimits
from app.sessions import get_hub
from app.settings import Settings
from cnncore.datasets.user_images import PreparedPicture

SIZE = 1000  # PNG bytes of every picture the queue-level tests send


def picture(seed: int) -> PreparedPicture:
    """A picture as the queue holds it (the queue never decodes it: any bytes do)."""
    return PreparedPicture("p", seed.to_bytes(4, "big") * (SIZE // 4), f"{seed:016x}", 8, 6)


@pytest.fixture
def postgres(postgres_url):
    """`make(limits)`: a `PostgresClassPictures` on the test's database, as another worker would
    open it; `sessions(n)`: n class session codes (their rows are what links reference)."""
    from app.class_pictures_postgres import PostgresClassPictures
    from app.sessions_postgres import PostgresHub

    loop = asyncio.new_event_loop()
    hub = PostgresHub(postgres_url, HubLimits.from_settings(Settings()), loop, poll_seconds=0.2)
    opened = []

    def make(limits: ClassPictureLimits) -> PostgresClassPictures:
        opened.append(PostgresClassPictures(postgres_url, limits, pool_size=8))
        return opened[-1]

    def sessions(count: int) -> list[str]:
        return [hub.create("/teach", {})[0].code for _ in range(count)]

    yield SimpleNamespace(make=make, sessions=sessions, hub=hub, url=postgres_url)
    for queues in opened:
        queues.close()
    hub.close()
    loop.close()


@pytest.fixture(params=["memory", "postgres"])
def two_workers(request):
    """`(limits) → (first, second, codes)`: two workers' queues (in memory: the one process's,
    twice) and a factory of session codes."""
    if request.param == "memory":
        made = iter(range(10**6))

        def in_memory(limits):
            queues = InMemoryClassPictures(limits)
            return queues, queues, lambda n: [f"CODE{next(made)}" for _ in range(n)]

        return in_memory
    shared = request.getfixturevalue("postgres")
    return lambda limits: (shared.make(limits), shared.make(limits), shared.sessions)


def at_once(calls: list) -> list:
    """Run every call in its own thread, released together; each call's result or refusal
    (any other exception is raised)."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        try:
            return call()
        except ClassPictureError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def overrides(worker: SimpleNamespace, settings: Settings) -> dict:
    """One app's dependencies: its worker's own (FastAPI reads a lambda's defaults as query
    parameters, so no `w=worker` defaults)."""
    return {get_datasets: lambda: worker.datasets, settings_dep: lambda: settings,
            get_class_pictures: lambda: worker.queues, get_hub: lambda: worker.hub}  # fmt: skip


def test_a_student_on_one_worker_and_the_teacher_on_another(postgres, tmp_path):
    """Two apps (two workers' process memory) on one database and one data folder."""
    settings = Settings(data_dir=tmp_path, database_url=postgres.url)
    limits = ClassPictureLimits.from_settings(settings)
    loop = asyncio.new_event_loop()
    workers = []
    from app.sessions_postgres import PostgresHub

    for _ in range(2):
        application = create_app(settings)
        worker = SimpleNamespace(
            datasets=Datasets.from_settings(settings), queues=postgres.make(limits),
            hub=PostgresHub(postgres.url, HubLimits.from_settings(settings), loop, 0.2),
        )  # fmt: skip
        application.dependency_overrides.update(overrides(worker, settings))
        worker.client = TestClient(application)
        workers.append(worker)
    teacher, student = workers
    try:
        session = teacher.client.post("/api/sessions", json={"page": "/teach", "state": {}}).json()
        code, headers = session["code"], {"X-Teacher-Token": session["teacher_token"]}
        made = teacher.client.post(
            "/api/datasets", json={"name": "pets", "classes": ["cats", "dogs"]}
        ).json()
        headers_owner = headers | {"X-Dataset-Token": made["owner_token"]}
        linked = teacher.client.put(f"/api/sessions/{code}/dataset", json={"dataset": made["id"]},
                                    headers=headers_owner)  # fmt: skip
        assert linked.status_code == 200, linked.text
        dogs = linked.json()["classes"][1]["id"]
        # the student's worker knows the link, and takes the picture
        assert student.client.get(f"/api/sessions/{code}/dataset").json()["dataset"] == made["id"]
        sent = student.client.post(f"/api/sessions/{code}/pictures",
                                   files={"image": ("p.jpg", photo(7))},
                                   data={"class_id": str(dogs), "student": STUDENT,
                                         "name": "Mina"})  # fmt: skip
        assert sent.status_code == 201, sent.text
        # the teacher's worker lists it and serves its PNG (the student's worker serves the same)
        (waiting,) = teacher.client.get(f"/api/sessions/{code}/pictures/pending",
                                        headers=headers).json()  # fmt: skip
        assert (waiting["id"], waiting["name"], waiting["class_id"]) == (
            sent.json()["id"],
            "Mina",
            dogs,
        )
        png = teacher.client.get(waiting["url"])
        assert png.status_code == 200 and png.content == student.client.get(waiting["url"]).content
        accepted = teacher.client.post(f"/api/sessions/{code}/pictures/{waiting['id']}/accept",
                                       headers=headers_owner)  # fmt: skip
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["images"] == 1
        # the student's worker tells the outcome; the dataset holds the picture, from the class
        mine = student.client.get(f"/api/sessions/{code}/pictures",
                                  params={"student": STUDENT}).json()  # fmt: skip
        assert [(p["id"], p["status"]) for p in mine] == [(waiting["id"], "accepted")]
        images = student.client.get(f"/api/datasets/{made['id']}/images").json()
        assert [(i["class_id"], i["source"]) for i in images] == [(dogs, "class")]
        # the session ends on the student's worker's hub: the queue goes for both
        student.client.post(
            f"/api/sessions/{code}/pictures",
            files={"image": ("p.jpg", photo(8))},
            data={"class_id": str(dogs), "student": STUDENT, "name": "Mina"},
        )
        assert teacher.queues.held > 0
        assert student.client.delete(f"/api/sessions/{code}", headers=headers).status_code == 204
        assert teacher.queues.held == 0 and teacher.queues.codes() == []
    finally:
        for worker in workers:
            worker.hub.close()
            worker.datasets.close()
        loop.close()


def test_limits_hold_when_students_submit_at_once_through_two_workers(two_workers):
    first, second, sessions = two_workers(ClassPictureLimits(per_student=3, per_session=10,
                                                             decided=4, links=3))  # fmt: skip
    (code,) = sessions(1)
    first.link(code, "dataset-a")
    # 6 students try 4 pictures each at once, half through each worker: the session takes
    # exactly 10, at most 3 of each student
    tries = [(f"student-{i:04d}aaaa", n) for i in range(6) for n in range(4)]
    outcomes = at_once([
        lambda s=s, n=n: (first, second)[n % 2].submit(code, s, s, 0, picture(n))
        for s, n in tries
    ])  # fmt: skip
    taken = [o for o in outcomes if not isinstance(o, ClassPictureError)]
    assert len(taken) == 10
    assert {o.kind for o in outcomes if isinstance(o, ClassPictureError)} <= {
        "class_pictures_per_student", "class_pictures_per_session"}  # fmt: skip
    waiting = second.pending(code)
    assert sorted(s.id for s in waiting) == sorted(s.id for s in taken)
    students = sorted({s for s, _ in tries})
    assert all(len(first.mine(code, student)) <= 3 for student in students)
    assert first.held == second.held == 10 * SIZE
    # decided outcomes kept: the session's 4 newest of the 10 rejected
    for i, submission in enumerate(waiting):
        (first, second)[i % 2].decide(code, submission.id, "rejected")
    assert first.held == 0
    outcomes = [s.status for student in students for s in second.mine(code, student)]
    assert outcomes == ["rejected"] * 4
    # the bytes, every session together: 16 sessions take one picture each at once, and
    # there is room for exactly 5
    first.limits = second.limits = ClassPictureLimits(
        per_student=3, per_session=10, total_bytes=5 * SIZE + SIZE // 2, decided=4, links=20
    )
    codes = sessions(16)
    for i, each in enumerate(codes):
        (first, second)[i % 2].link(each, "dataset-a")
    for _round in range(3):
        outcomes = at_once([
            lambda i=i: (first, second)[i % 2].submit(codes[i], STUDENT, "x", 0, picture(i))
            for i in range(16)
        ])  # fmt: skip
        refused = [o for o in outcomes if isinstance(o, ClassPictureError)]
        assert len(refused) == 11 and {o.kind for o in refused} == {"class_pictures_bytes"}
        assert first.held == second.held == 5 * SIZE
        taken = [(c, o) for c, o in zip(codes, outcomes, strict=True) if o not in refused]
        assert sum(len(first.pending(c)) for c in codes) == 5
        for each, submission in taken:  # the teacher decides: room for 5 again
            second.decide(each, submission.id, "accepted")


def test_links_hold_their_limit_at_once_and_relinking_drops_the_queue(two_workers):
    first, second, sessions = two_workers(ClassPictureLimits(links=3))
    codes = sessions(16)
    outcomes = at_once([lambda c=c, i=i: (first, second)[i % 2].link(c, "dataset-a")
                        for i, c in enumerate(codes)])  # fmt: skip
    refused = [o for o in outcomes if isinstance(o, ClassPictureError)]
    assert len(refused) == 13 and {o.kind for o in refused} == {"class_pictures_full"}
    linked = sorted(first.codes())
    assert len(linked) == 3 and sorted(second.codes()) == linked and second.full()
    code = linked[0]
    first.submit(code, STUDENT, "Mina", 0, picture(1))
    second.link(code, "dataset-a")  # the same dataset again: the queue stays
    assert [s.status for s in first.pending(code)] == ["pending"] and first.held == SIZE
    second.link(code, "dataset-b")  # another: what waited for the first goes
    assert first.pending(code) == [] and first.held == 0 and first.dataset_of(code) == "dataset-b"
    first.unlink(code)
    assert second.linked(code) is None and not second.full()
    with pytest.raises(ClassPictureError) as refusal:
        second.submit(code, STUDENT, "Mina", 0, picture(2))
    assert refusal.value.kind == "class_pictures_closed"


def test_an_expired_session_takes_its_queue_and_nothing_stays_in_the_process(postgres):
    queues = postgres.make(ClassPictureLimits(per_student=60, per_session=60, decided=5))
    code, later = postgres.sessions(2)
    queues.link(code, "dataset-a")
    queues.link(later, "dataset-a")
    made = [queues.submit(code, STUDENT, "Mina", 0, picture(i)) for i in range(20)]
    before = dict(vars(queues))
    # the teacher's list carries no PNG; a waiting picture's comes from the database
    assert all(s.picture is None for s in queues.pending(code))
    assert queues.waiting(code, made[0].id).picture.png == picture(0).png
    assert queues.png(code, made[3].id) == picture(3).png
    for submission in made[:12]:
        queues.decide(code, submission.id, "rejected")
    with psycopg.connect(postgres.url) as connection:
        counts = connection.execute(
            "SELECT status, count(*), sum(octet_length(png)) FROM "
            "class_pictures GROUP BY status ORDER BY status"
        ).fetchall()
    assert counts == [("pending", 8, 8 * SIZE), ("rejected", 5, None)]  # 5 outcomes kept
    assert queues.png(code, made[0].id) is None
    assert vars(queues).keys() == before.keys() and queues.held == 8 * SIZE
    # expiry: any worker's hub deletes the idle session, and its link and queue go with it
    with psycopg.connect(postgres.url) as connection:
        connection.execute("UPDATE class_sessions SET last_active = 0 WHERE code = %s", (code,))
    postgres.sessions(1)  # a create expires idle sessions
    assert queues.held == 0 and queues.codes() == [later]
    with pytest.raises(ClassPictureError) as refusal:
        queues.pending(code)
    assert refusal.value.kind == "class_pictures_closed"
    # a session that is gone cannot be linked (its row is what the link references)
    with pytest.raises(ClassPictureError) as refusal:
        queues.link(code, "dataset-a")
    assert refusal.value.status_code == 404


def test_submits_decisions_and_a_relink_at_once_never_fail_otherwise(two_workers):
    """Students submit through both workers while the teacher decides, relinks to another
    dataset and the class's other session unlinks: every call either works or is a
    `ClassPictureError` (no lock cycle, no database error), and what waits is what is held."""
    first, second, sessions = two_workers(ClassPictureLimits(per_student=3, per_session=20))
    code, other = sessions(2)
    first.link(code, "dataset-a")
    second.link(other, "dataset-a")
    early = [first.submit(code, f"student-{i:04d}cccc", "x", 0, picture(i)) for i in range(4)]
    calls = [lambda i=i: (first, second)[i % 2].submit((code, other)[i % 3 == 0],
                                                       f"student-{i:04d}dddd", "x", 0, picture(i))
             for i in range(12)]  # fmt: skip
    calls += [lambda s=s: second.decide(code, s.id, "rejected") for s in early[:2]]
    calls += [lambda: second.link(code, "dataset-b"), lambda: first.unlink(other)]
    at_once(calls)  # any error but a ClassPictureError is raised here
    assert first.dataset_of(code) == "dataset-b" and second.linked(other) is None
    waiting = first.pending(code)
    assert first.held == second.held == SIZE * len(waiting)
    assert not {s.id for s in early} & {s.id for s in waiting}  # the relink dropped them
