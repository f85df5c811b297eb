"""The project's error tree.

Backends and the pure core raise these; the dispatcher alone decides what happens next:
``Retryable`` -> back off and retry, ``Permanent`` -> dead-letter, ``Fatal`` -> crash loudly.
"""


class MovingDataError(Exception):
    """Root of every error the project raises on purpose."""


class Retryable(MovingDataError):
    """A transient failure: the same input may succeed later (store down, timeout)."""


class Permanent(MovingDataError):
    """The input can never succeed (malformed event, bad ciphertext, missing object)."""


class Fatal(MovingDataError):
    """The process is misconfigured (bad credentials, bad settings): stop it."""


class IntegrityError(Permanent):
    """Bytes do not match what was recorded or authenticated (digest or AEAD tag)."""


class NotFound(Permanent):
    """The object or key asked for does not exist."""


class AccessDenied(Permanent):
    """A store refused one request (403, a KMS denial, an archived object): that event fails,
    not the worker, unless a check of the store's own credentials fails too (then ``Fatal``).
    ``scheme`` names the store (``s3``, ``azure``, ``gs``)."""

    def __init__(self, scheme: str, message: str) -> None:
        super().__init__(message)
        self.scheme = scheme
