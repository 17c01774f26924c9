"""Run gcp-storage-emulator with Cloud Storage's generation preconditions, which it ignores.

GCS answers 412 to a write or delete whose `ifGenerationMatch` (0: the object must not exist)
or `ifGenerationNotMatch` does not hold; the emulator (2026.7.19) carries the write out. A lease
taken with `ifGenerationMatch=0`, and a writer fenced by generation, need the 412 to be tested.

Run in the emulator's venv in place of its `gcp-storage-emulator` script, with the same
arguments. The handlers that write or delete an object are wrapped before the server module
takes them: each keeps its request's query for the storage calls it makes, which check it
against the object's current generation. Covered: media and multipart uploads (small objects,
as the client sends them), delete and metadata patch; a resumable upload's preconditions (sent
when the session starts) are not.
"""

from __future__ import annotations

import sys
import threading
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.storage import Storage

_request = threading.local()


class _PreconditionFailed(Exception):
    pass


def _check(storage: Storage, bucket_name: str, object_id: str) -> None:
    query = getattr(_request, "query", None) or {}
    if "ifGenerationMatch" not in query and "ifGenerationNotMatch" not in query:
        return
    try:
        current = int(storage.get_file_obj(bucket_name, object_id)["generation"])
    except NotFound:
        current = 0
    if "ifGenerationMatch" in query and current != int(query["ifGenerationMatch"][0]):
        raise _PreconditionFailed
    if "ifGenerationNotMatch" in query and current == int(query["ifGenerationNotMatch"][0]):
        raise _PreconditionFailed


def _checked(method):
    def checked(self, bucket_name, object_id, *args, **kwargs):
        _check(self, bucket_name, object_id)
        return method(self, bucket_name, object_id, *args, **kwargs)

    return checked


def _with_query(handler):
    def handled(request, response, storage, *args, **kwargs):
        _request.query = request.query
        try:
            return handler(request, response, storage, *args, **kwargs)
        except _PreconditionFailed:
            message = "At least one of the pre-conditions you specified did not hold."
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": message, "errors": [{"reason": "conditionNotMet"}]}})
        finally:
            _request.query = None

    return handled


for _method in ("create_file", "delete_file", "patch_object"):
    setattr(Storage, _method, _checked(getattr(Storage, _method)))
for _handler in ("insert", "delete", "patch"):
    setattr(objects, _handler, _with_query(getattr(objects, _handler)))

from gcp_storage_emulator.__main__ import main  # noqa: E402  (the server takes the handlers now)

if __name__ == "__main__":
    sys.exit(main())
