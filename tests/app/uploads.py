"""Uploads in API tests that the server must judge from their headers alone."""

from __future__ import annotations


def declared_upload(client, length: int, path: str = "/api/features"):
    """POST a multipart body of a few bytes whose content-length header claims `length` bytes:
    an over-limit claim must be refused (413) before the server reads the body."""
    return client.post(
        path,
        content=b"--x--\r\n",
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(length),
        },
    )
