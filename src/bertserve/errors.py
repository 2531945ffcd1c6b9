"""The one place where bertserve's exceptions are defined.

Every error a user can cause derives from `BertServeError` and carries a message that says what
went wrong and how to fix it. The CLI prints that message on one line and exits non-zero; the
server maps the HTTP-facing subclasses to a status code and a `{"error": ...}` body.

    BertServeError
    ├── ConfigError          bad flag, unknown config key, impossible combination
    ├── DataError            unreadable or malformed data file (names file, line, problem)
    ├── PretrainedError      a --pretrained name or folder that cannot be loaded
    ├── CheckpointError      a TensorFlow checkpoint that cannot be parsed
    ├── RunFolderError       a run folder that is missing files or is inconsistent
    ├── ExportError          an export that cannot be written or a version folder that cannot be loaded
    │   └── VersionNotFoundError   the version folder does not exist (a load reports NOT_FOUND)
    ├── ServingError         a request the server could not answer; has `.status` (HTTP) and
    │   │                    `.code` (the canonical TF Serving / gRPC status name)
    │   ├── RequestError     the client's fault or the server's state: bad input 400, unknown
    │   │                    model 404, queue full 503, deadline 504 (status chosen by the raiser)
    │   └── EngineError      the inference engine failed on a batch: 500 / INTERNAL
    └── ClientError          a client call that failed: server down, timeout, or an error answer
                             (has `.status`: the HTTP status, or None when no answer came back)
"""

from __future__ import annotations


class BertServeError(Exception):
    """Base class of every error bertserve raises on purpose."""


class ConfigError(BertServeError):
    pass


class DataError(BertServeError):
    pass


class PretrainedError(BertServeError):
    pass


class CheckpointError(BertServeError):
    pass


class RunFolderError(BertServeError):
    pass


class ExportError(BertServeError):
    pass


class VersionNotFoundError(ExportError):
    pass


# The canonical status name (TF Serving's error codes, the same names gRPC uses) for each HTTP status
# the server answers with; REST answers carry the HTTP status, gRPC answers the code.
CODE_OF_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ServingError(BertServeError):
    """A request the server could not answer: `status` is the HTTP status code to answer with,
    `code` the canonical status name (what a gRPC answer carries)."""

    status: int = 500

    @property
    def code(self) -> str:
        return CODE_OF_STATUS.get(self.status, "UNKNOWN" if self.status >= 500 else "INVALID_ARGUMENT")


class RequestError(ServingError):
    """A request the server refuses; `status` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class EngineError(ServingError):
    """The inference engine raised while running a batch: every request in that batch gets this
    (HTTP 500, INTERNAL); the server and the next batch carry on."""

    status = 500


class ClientError(BertServeError):
    """A call from `bertserve.client` that failed; `status` is the server's HTTP status code, or
    None when the server could not be reached or did not answer in time."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
