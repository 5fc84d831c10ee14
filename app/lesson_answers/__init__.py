"""Worked answers of the lessons' check-yourself questions, computed by cnncore when asked.

Each solver takes the numbers the question states (the same numbers fill the question's text in
both languages) and returns `Answer`s: a label (a catalogue key under `lessons.answer.`), the
value as shown, the machine value (for the API and the tests) and the worked lines — the formula
with the numbers substituted, written from the very result the core returned. Nothing here
computes a size, a parameter count or a loss itself: it asks `cnncore` and writes it out.
`layers` answers questions about one layer, `networks` about whole networks.
"""

from app.lesson_answers.common import Answer, matrix_text, num

__all__ = ["Answer", "matrix_text", "num"]
