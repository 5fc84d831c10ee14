"""Bodies of a class building a dataset together (`/api/sessions/{code}/dataset`, `/pictures`)."""

from pydantic import BaseModel, Field

from app.datasets.files import DATASET_ID_PATTERN
from app.quiz import STUDENT_ID


class ClassDatasetLink(BaseModel):
    dataset: str = Field(pattern=DATASET_ID_PATTERN, description="the teacher's dataset")


class ClassOut(BaseModel):
    id: int
    name: str


class ClassDatasetOut(BaseModel):
    dataset: str | None = Field(description="None: the teacher has opened no dataset to the class")
    name: str = ""
    classes: list[ClassOut] = []
    per_student: int = Field(description="pictures a student may have waiting at once")


class ClassPictureForm(BaseModel):
    """The text fields beside the `image` part of a student's picture."""

    class_id: int = Field(ge=0, le=1_000_000)
    student: str = Field(pattern=STUDENT_ID.pattern, description="made by the page, per tab")
    name: str = Field(min_length=1, max_length=40, description="the student's name, as typed")


class SubmissionOut(BaseModel):
    id: str
    class_id: int
    status: str = Field(description="pending, accepted, duplicate (the dataset had it) or rejected")
    url: str | None = Field(None, description="the picture while it waits")


class PendingOut(SubmissionOut):
    name: str = Field(description="the student's name")
    width: int
    height: int


class Decided(BaseModel):
    picture: SubmissionOut
    version: int | None = Field(None, description="the dataset's version after an accept")
    images: int | None = None
