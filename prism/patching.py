"""
JSON Patch helpers shared by the C{models} service and the Python client,
on top of the C{jsonpatch} library.
"""

import json

import jsonpatch
import jsonpointer

__all__ = ["PATCH_ERRORS", "jsonCopy", "sameJSON", "diff"]

PATCH_ERRORS = (
    jsonpatch.JsonPatchException,
    jsonpointer.JsonPointerException,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
)
"""What applying a malformed or failing patch may raise (C{jsonpatch} 1.33 and later)."""


def jsonCopy(value):
    """A deep copy through JSON: no shared objects, and non-JSON values fail here (L{TypeError})."""
    return json.loads(json.dumps(value))


def sameJSON(a, b):
    """Whether C{a} and C{b} are the same JSON value (C{True} is not C{1} here)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def diff(before, after):
    """
    A patch from C{before} to C{after} (JSON values):
    C{jsonpatch.make_patch}, checked by applying it. Where it fails or
    misses (jsonpatch 1.33, the last release for Python 3.9, breaks on some
    changes, and Python's C{True == 1} hides others) the patch replaces the
    whole value instead.

    @return: a list of RFC 6902 operations (empty when nothing changed).
    """
    try:
        ops = jsonCopy(jsonpatch.make_patch(before, after).patch)
        if sameJSON(jsonpatch.JsonPatch(ops).apply(before, in_place=False), after):
            return ops
    except PATCH_ERRORS:
        pass
    return [] if sameJSON(before, after) else [{"op": "replace", "path": "", "value": after}]
